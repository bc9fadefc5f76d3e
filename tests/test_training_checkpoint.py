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



def test_a_resume_continues_only_on_the_parents_model_revision_and_training_rows():
    """A resumed run reloads its rows and model from the config: a file edited since (or the model folder
    rewritten) made it continue the checkpoint on rows / weights it never saw, recorded as its own."""
    from types import SimpleNamespace

    import pytest

    from backend.errors import ConfigError, DatasetError
    from backend.prompts.example import Example
    from backend.training.run import check_resumed

    rows = [Example(guid=i, text_a=f"row {i}", label="a") for i in range(4)]
    parent = SimpleNamespace(id=1, model_revision="r1" * 32, dataset_snapshot_id=5, config={"model": "m"})
    snap = SimpleNamespace(row_counts={"train_rows": [[0, 3]]})
    store = SimpleNamespace(get_run=lambda i: parent, get_dataset_snapshot=lambda i: snap)
    child = SimpleNamespace(parent_run_id=1, tags=["resume"])
    check_resumed(store, child, SimpleNamespace(revision="r1" * 32), rows)              # as recorded: fine
    with pytest.raises(DatasetError, match="reads differently now than when it trained"):
        check_resumed(store, child, SimpleNamespace(revision="r1" * 32), rows[:3])
    with pytest.raises(ConfigError, match="cannot be continued on another model"):
        check_resumed(store, child, SimpleNamespace(revision="r2" * 32), rows)
    check_resumed(store, SimpleNamespace(parent_run_id=1, tags=[]), SimpleNamespace(revision="x"), [])  # not a resume


def test_every_recorded_training_checks_its_resume_before_recording(monkeypatch):
    from types import SimpleNamespace

    import pytest

    import backend.training.run as run

    def refuse(store, info, loaded, train):
        raise RuntimeError(f"checked run {info.id}")

    monkeypatch.setattr(run, "check_resumed", refuse)
    record = run.recorder(SimpleNamespace(get_run=lambda i: SimpleNamespace(id=i)), 7, None)
    with pytest.raises(RuntimeError, match="checked run 7"):     # before its lineage is written
        record(SimpleNamespace(), SimpleNamespace(train=[]), None)
