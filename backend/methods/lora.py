"""LoRA through PEFT (low-rank updates of the attention / MLP projections)."""
from __future__ import annotations

from typing import Any

from peft import LoraConfig

from backend.errors import ConfigError
from backend.methods.base import Method, MethodContext
from backend.methods.peft_util import wrap_with_peft
from backend.prompt_model import PromptModel


class LoRA(Method):
    name = "lora"
    default_lr = 5e-4
    uses_peft = True
    options = {"r": (int, 8), "alpha": ((int, float), 16), "dropout": (float, 0.0),
               "target_modules": ((list, str), None)}

    def validate(self, opts: dict[str, Any]) -> None:
        if opts["r"] < 1:
            raise ConfigError("method.r: must be at least 1")
        if not 0.0 <= opts["dropout"] < 1.0:
            raise ConfigError("method.dropout: must be in [0, 1)")

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        wrap_with_peft(pm, LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=opts["dropout"],
                                      target_modules=opts["target_modules"]))
