"""Verbalizer heads: the soft verbalizer (WARP, Hambardzumyan et al. 2021).

Each label word gets a trainable vector initialised from its row of the LM head (plus the head's bias),
so training starts exactly at the manual verbalizer's scores and moves from there. The head produces
``PromptModel.label_logits`` (the (B, R) label-row logits), so multi-token rules, aggregation and
calibration keep working unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from backend.prompt_model import PromptModel


class SoftVerbalizer(nn.Module):
    def __init__(self, pm: PromptModel) -> None:
        super().__init__()
        head = pm.plm.get_output_embeddings()
        rows = pm.label_rows
        self.weight = nn.Parameter(head.weight.detach()[rows].clone().float())
        bias = getattr(head, "bias", None)
        init = bias.detach()[rows].clone().float() if bias is not None else torch.zeros(len(rows))
        self.bias = nn.Parameter(init.to(self.weight.device))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.float() @ self.weight.T + self.bias


def attach_soft_verbalizer(pm: PromptModel) -> SoftVerbalizer:
    """Install the head as ``pm.soft_verbalizer`` (saved and moved with the PromptModel; its
    ``label_logits`` reads from it)."""
    head = SoftVerbalizer(pm)
    pm.soft_verbalizer = head
    return head
