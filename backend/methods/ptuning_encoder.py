"""P-tuning's encoder: the nn.Module that turns the soft rows into the prompt (LSTM or MLP, residual).

Apart from ``backend/methods/ptuning.py`` so the method's description is read without importing torch.
"""
from __future__ import annotations

import torch
from torch import nn


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
        """The soft rows, always computed in float32, outside any autocast.

        Why: the encoder runs once per forward on a few dozen rows, so its precision costs nothing, while
        under CPU bf16 autocast oneDNN's LSTM has no kernel on CPUs without AVX-512 BF16 (the run crashed:
        "could not create a primitive descriptor for the LSTM forward propagation primitive"), and where it
        has one the prompt itself would be rounded to bf16 before it reaches the model."""
        x = self.embedding.weight[1:].unsqueeze(0)               # 1, S, H: one sequence of soft tokens
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.lstm(x)[0] if self.lstm is not None else x
            out = self.mlp(h)
            if self.residual:
                out = out + x
        return torch.cat([self.embedding.weight[:1], out[0]], dim=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.table())
