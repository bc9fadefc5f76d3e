"""BitFit (Ben Zaken et al. 2022): train only the bias terms of the PLM."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.errors import ConfigError
from backend.methods.base import Method, MethodContext

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class BitFit(Method):
    name = "bitfit"
    label = "BitFit (biases only)"
    description = "only the model's bias terms train (models with biases: BERT, GPT-2, not Llama or T5)"
    default_lr = 1e-3
    serving = "biases"

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        biases = [p for n, p in pm.plm.named_parameters() if n.endswith(".bias") or n == "bias"]
        if not biases:
            arch = type(pm.plm).__name__
            raise ConfigError(f"bitfit trains bias terms, but {arch} has none (Llama/SmolLM2 and T5 use "
                              "bias-free layers); use lora, ia3 or adapter instead", field="method")
        for p in biases:
            p.requires_grad_(True)
