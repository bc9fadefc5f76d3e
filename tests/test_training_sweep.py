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
