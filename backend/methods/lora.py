"""LoRA through PEFT (low-rank updates of the attention / MLP projections)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.methods.base import Method, MethodContext, modules_option
from backend.schema import Option

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class LoRA(Method):
    name = "lora"
    label = "LoRA (low-rank updates to the attention weights)"
    description = "low-rank updates of the attention / MLP projections (PEFT)"
    default_lr = 5e-4
    uses_peft = True
    serving = "peft-host"
    options = {
        "r": Option(int, 8, min=1, max=4096, label="Rank",
                    doc="size of each update; raise it (16, 32) when the task needs more capacity"),
        "alpha": Option(float, 16, gt=0, max=1e6, label="Alpha (scale)",
                        doc="the update is scaled by alpha / r; keep it about 2 x r"),
        "dropout": Option(float, 0.0, min=0, lt=1, label="Dropout", advanced=True,
                          doc="dropout on the update's input; 0.05-0.1 against overfitting on larger data"),
        "target_modules": modules_option("which projections get updates; empty: PEFT's default for the model, or "
                                         "its attention's query and value projections where PEFT has none"),
    }

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        from peft import LoraConfig

        from backend.methods.peft_util import lora_targets, wrap_with_peft

        wrap_with_peft(pm, LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=opts["dropout"],
                                      target_modules=lora_targets(pm, opts["target_modules"])))
