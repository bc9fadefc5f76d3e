"""Full fine-tuning: every PLM weight trains (the reference the parameter-efficient methods aim at)."""
from __future__ import annotations

from typing import Any

from backend.methods.base import Method, MethodContext
from backend.prompt_model import PromptModel


class Full(Method):
    name = "full"
    default_lr = 2e-5

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        for p in pm.plm.parameters():
            p.requires_grad_(True)
