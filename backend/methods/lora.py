"""LoRA through PEFT (low-rank updates of the attention / MLP projections)."""
from __future__ import annotations

from typing import Any

from peft import LoraConfig

from backend.method_options import METHOD_OPTIONS
from backend.methods.base import Method, MethodContext
from backend.methods.peft_util import wrap_with_peft
from backend.prompt_model import PromptModel


class LoRA(Method):
    name = "lora"
    default_lr = 5e-4
    uses_peft = True
    options = METHOD_OPTIONS[name]

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        wrap_with_peft(pm, LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=opts["dropout"],
                                      target_modules=opts["target_modules"]))
