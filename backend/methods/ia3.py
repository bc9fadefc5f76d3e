"""IA3 through PEFT (learned rescaling of keys, values and the feed-forward activations)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.methods.base import Method, MethodContext, modules_option

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class IA3(Method):
    name = "ia3"
    label = "IA3 (learned rescaling of activations)"
    description = "learned rescaling of keys, values and feed-forward activations (PEFT): the fewest parameters"
    default_lr = 3e-3
    uses_peft = True
    serving = "peft-host"
    options = {
        "target_modules": modules_option("which layers get rescaled; empty: PEFT's default for the model"),
        "feedforward_modules": modules_option("which of them are feed-forward layers (their inputs are "
                                              "rescaled); empty: PEFT's default", "Feed-forward modules"),
    }

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        from peft import IA3Config

        from backend.methods.peft_util import ia3_targets, wrap_with_peft

        targets, feedforward = ia3_targets(pm, opts["target_modules"], opts["feedforward_modules"])
        wrap_with_peft(pm, IA3Config(target_modules=targets, feedforward_modules=feedforward))
