"""The seeds sweep: parsing --seeds and summarising the runs of several seeds."""
from __future__ import annotations

import pytest

from backend.errors import ConfigError
from backend.training.run import TrainResult
from backend.sweeps.seeds import parse_seeds, summarize


def test_seeds_parsing_and_summary():
    assert parse_seeds("13, 21,42") == [13, 21, 42]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("13,x")
    res = [TrainResult(status="succeeded", method="lora", seed=s, metrics={"accuracy": a, "macro_f1": a})
           for s, a in ((13, 0.8), (21, 0.9))]
    summary = summarize(res)
    assert summary["seeds"] == [13, 21]
    assert summary["accuracy"]["mean"] == pytest.approx(0.85)
    assert summary["accuracy"]["std"] == pytest.approx(0.0707, abs=1e-4)


def test_a_cancelled_seed_without_metrics_is_not_counted_and_one_seed_has_no_std():
    """``train --seeds 13,21``: seed 21 cancelled before its final evaluation has no score. n is 1, and
    the one value has no spread: std None, not 0.0 (which would read as a perfectly stable result)."""
    res = [TrainResult(status="succeeded", method="lora", seed=13, metrics={"accuracy": 0.8, "macro_f1": 0.7}),
           TrainResult(status="cancelled", method="lora", seed=21, metrics={})]
    summary = summarize(res)
    assert summary["n"] == 1 and summary["seeds"] == [13]
    assert summary["unscored"] == [{"seed": 21, "status": "cancelled"}]
    assert summary["accuracy"] == {"mean": 0.8, "std": None, "n": 1, "values": [0.8]}
