"""IA3 through PEFT (learned rescaling of keys, values and the feed-forward activations)."""
from __future__ import annotations

from typing import Any

from peft import IA3Config

from backend.method_options import METHOD_OPTIONS
from backend.methods.base import Method, MethodContext
from backend.methods.peft_util import wrap_with_peft
from backend.prompt_model import PromptModel


class IA3(Method):
    name = "ia3"
    default_lr = 3e-3
    uses_peft = True
    options = METHOD_OPTIONS[name]

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        wrap_with_peft(pm, IA3Config(target_modules=opts["target_modules"],
                                     feedforward_modules=opts["feedforward_modules"]))
