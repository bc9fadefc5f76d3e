"""Checkpoint swaps survive a kill at any point: a resume finds a complete checkpoint, never none."""
from __future__ import annotations

import os

import torch
from torch import nn

from backend.training.checkpoint import CKPT, has_checkpoint, load_checkpoint, save_checkpoint


def _model_and_opt(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return model, opt


def test_a_kill_between_the_two_renames_resumes_from_the_old_checkpoint(tmp_path):
    model, opt = _model_and_opt(0)
    save_checkpoint(tmp_path, model, opt, None, {"step": 7})
    # What a kill right after ``checkpoint -> .checkpoint.old`` leaves: the old one, no current one.
    os.replace(tmp_path / CKPT, tmp_path / f".{CKPT}.old")
    assert has_checkpoint(tmp_path)
    fresh, fresh_opt = _model_and_opt(1)
    assert load_checkpoint(tmp_path, fresh, fresh_opt, None) == {"step": 7}
    assert torch.equal(fresh.weight, model.weight)
    # the next save keeps a checkpoint at every moment and ends with a plain checkpoint/ only
    save_checkpoint(tmp_path, fresh, fresh_opt, None, {"step": 8})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CKPT]
    assert load_checkpoint(tmp_path, *_model_and_opt(2), None) == {"step": 8}

