"""Full fine-tuning: every PLM weight trains (the reference the parameter-efficient methods aim at)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.methods.base import Method, MethodContext

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class Full(Method):
    name = "full"
    label = "Full fine-tuning (every weight)"
    description = "every weight of the model trains: the most memory, the reference the others aim at"
    default_lr = 2e-5
    serving = "own-copy"

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        for p in pm.plm.parameters():
            p.requires_grad_(True)
