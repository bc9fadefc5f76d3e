"""Soft-prompt inspector: nearest vocabulary rows by cosine, drift from the rebuilt initialisation."""
from __future__ import annotations

import pytest
import torch

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.training import MemorySink, RunData, run_training
from backend.workbench.inspect import drift, inspect_run, nearest_tokens
from backend.prompts.example import Example
from tests.tiny import tiny_model


def test_nearest_tokens_and_drift_on_known_vectors(smol_tok):
    emb = torch.randn(len(smol_tok), 16)
    near = nearest_tokens(emb[[5, 9]] * 3.0, emb, smol_tok, k=2)
    assert [n[0]["id"] for n in near] == [5, 9] and near[0][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    same = drift(emb[:3], emb[:3])
    assert all(d["cosine_to_init"] == pytest.approx(1.0) and d["relative_change"] == 0 for d in same)
    doubled = drift(emb[:2] * 2, emb[:2])
    assert all(d["relative_change"] == pytest.approx(1.0) for d in doubled)
    with pytest.raises(ConfigError, match="differ"):
        drift(emb[:2], emb[:3])


def _rows(opening: str) -> list[Example]:
    words = [("great fun", "positive"), ("awful mess", "negative"), ("lovely film", "positive"),
             ("boring junk", "negative")]
    return [Example(guid=i, text_a=f"{opening} {w}", label=lab) for i, (w, lab) in enumerate(words * 2)]


DATA = RunData(train=_rows("this was a"), dev=_rows("honestly, a"))


def _train(kind_tok, method: dict, tmp_path) -> tuple:
    lm = tiny_model("masked", kind_tok)
    cfg = RunConfig.from_dict({"model": "tiny", "data": {"eval": "x"}, "template": "{text_a} It was {mask}.",
                               "verbalizer": {"negative": ["bad"], "positive": ["good"]}, "method": method,
                               "train": {"steps": 3, "batch_size": 4, "lr": 0.05, "output_dir": str(tmp_path)}})
    res = run_training(cfg, sink=MemorySink(), loaded=lm, data=DATA)
    assert res.status == "succeeded"
    return lm, tmp_path


def test_a_trained_prompt_tuning_run_is_inspected(bert_tok, tmp_path):
    lm, out = _train(bert_tok, {"name": "prompt-tuning", "num_tokens": 3, "init": "labels"}, tmp_path)
    report = inspect_run(out, lm, k=3)
    assert report["method"] == "prompt-tuning" and report["soft_tokens"] == 3
    for tok in report["tokens"]:
        assert len(tok["nearest"]) == 3
        assert tok["initial_nearest"]["cosine"] == pytest.approx(1.0, abs=1e-4)   # labels init: vocab rows
        assert tok["relative_change"] > 0 and tok["cosine_to_init"] < 1.0          # it trained


def test_a_run_without_soft_tokens_is_refused_with_the_reason(bert_tok, tmp_path):
    lm, out = _train(bert_tok, {"name": "bitfit"}, tmp_path)
    with pytest.raises(ConfigError, match="no soft tokens"):
        inspect_run(out, lm)


def test_drift_over_training_is_read_from_the_recorded_trajectory(bert_tok, tmp_path):
    from backend.training.trajectory import TRAJECTORY, read_trajectory

    lm = tiny_model("masked", bert_tok)
    cfg = RunConfig.from_dict({"model": "tiny", "data": {"eval": "x"}, "template": "{text_a} It was {mask}.",
                               "verbalizer": {"negative": ["bad"], "positive": ["good"]},
                               "method": {"name": "prompt-tuning", "num_tokens": 2, "init": "vocab"},
                               "train": {"steps": 4, "batch_size": 4, "lr": 0.3, "eval_every": 2,
                                         "output_dir": str(tmp_path)}})
    assert run_training(cfg, sink=MemorySink(), loaded=lm, data=DATA).status == "succeeded"
    path = read_trajectory(tmp_path / "final" / TRAJECTORY)
    assert [s for s, _ in path] == [0, 2, 4] and path[0][1].shape == (2, lm.model.config.hidden_size)
    report = inspect_run(tmp_path, lm, k=2)
    assert report["initialisation"] == "recorded when training started"
    steps = report["trajectory"]
    assert [s["step"] for s in steps] == [0, 2, 4]
    assert steps[0]["mean_relative_change"] == 0 and steps[0]["mean_cosine_to_init"] == pytest.approx(1.0)
    assert steps[2]["mean_relative_change"] > steps[1]["mean_relative_change"] > 0   # it keeps moving
    # a run without a trajectory (trained before it was kept) still gets its start rebuilt
    (tmp_path / "final" / TRAJECTORY).unlink()
    again = inspect_run(tmp_path, lm, k=2)
    assert again["initialisation"].startswith("rebuilt") and again["trajectory"] == []
    for a, b in zip(report["tokens"], again["tokens"]):
        assert a["relative_change"] == pytest.approx(b["relative_change"], rel=1e-5)
