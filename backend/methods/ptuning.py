"""P-tuning (Liu et al. 2021): the template's soft tokens are produced by an LSTM or MLP encoder.

The whole encoder (input rows, LSTM, MLP) is a submodule of the PromptModel, so it is saved with the run
and training resumes exactly (PEFT saves only the encoder's output). With ``residual`` (default) the
encoder's last layer starts at zero, so step 0 sees the vocabulary-initialised rows — the frozen model
reads real tokens from the start and the reparameterisation only learns a correction.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backend.method_options import METHOD_OPTIONS
from backend.methods.base import Method, MethodContext
from backend.methods.soft import init_rows, soft_prefix
from backend.prompt_model import PromptModel

class PTuningEncoder(nn.Module):
    """``forward(soft_token_ids)`` -> rows, like the nn.Embedding it replaces (row 0 unused)."""

    def __init__(self, rows: torch.Tensor, encoder: str, hidden: int, residual: bool) -> None:
        super().__init__()
        dim = rows.shape[1]
        self.embedding = nn.Embedding.from_pretrained(rows.detach().clone().float(), freeze=False)
        self.encoder = encoder
        self.residual = residual
        if encoder == "lstm":
            self.lstm = nn.LSTM(dim, hidden // 2, num_layers=2, bidirectional=True, batch_first=True)
            mlp_in = hidden
        else:
            self.lstm = None
            mlp_in = dim
        self.mlp = nn.Sequential(nn.Linear(mlp_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        if residual:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    @property
    def weight(self) -> torch.Tensor:
        """The current soft rows (what PromptModel would read from an nn.Embedding)."""
        return self.table()

    def table(self) -> torch.Tensor:
        x = self.embedding.weight[1:].unsqueeze(0)               # 1, S, H: one sequence of soft tokens
        h = self.lstm(x)[0] if self.lstm is not None else x
        out = self.mlp(h)
        if self.residual:
            out = out + x
        return torch.cat([self.embedding.weight[:1], out[0]], dim=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.table())


class PTuning(Method):
    name = "p-tuning"
    trains_soft_tokens = True
    default_lr = 3e-3
    options = METHOD_OPTIONS[name]

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        """Templates without soft tokens get ``num_tokens`` prepended (P-tuning needs some to encode)."""
        from backend.prompts.template import parse_template

        return text if parse_template(text).has_soft else soft_prefix(opts["num_tokens"]) + text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        assert pm.soft_embedding is not None  # template_text guarantees soft tokens
        ids = [i for i in range(1, pm.template.num_soft_tokens + 1) if i not in pm.template.soft_init]
        init_rows(pm, ids, opts["init"], opts["init_text"], ctx.tokenizer)
        rows = pm.soft_embedding.weight
        hidden = opts["hidden_size"] or rows.shape[1]
        enc = PTuningEncoder(rows, opts["encoder"], hidden, opts["residual"]).to(rows.device)
        pm.soft_embedding = enc  # type: ignore[assignment]  # same call contract as nn.Embedding
