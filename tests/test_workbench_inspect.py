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
