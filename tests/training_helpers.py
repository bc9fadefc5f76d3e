"""Training data and helpers shared by the tests that train tiny models (training loop, serving).

One place for them, so a test module imports helpers from here and never from another test module.
"""
from __future__ import annotations

import random

from backend.config import RunConfig
from backend.prompts.example import Example
from backend.training import MemorySink, RunData, run_training
from tests.tiny import tiny_model

TEMPLATE = {"masked": "{text_a} {soft} It was {mask}.", "causal": "{text_a} {soft} It was {mask}"}


def examples(n: int, seed: int, opening: str = "this was a") -> list[Example]:
    """``n`` labelled rows whose label words are easy to learn; ``opening`` keeps two sets' rows apart."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lab = rng.choice(["negative", "positive"])
        w = rng.choice(["great fun", "lovely film"] if lab == "positive" else ["awful mess", "boring junk"])
        out.append(Example(guid=i, text_a=f"{opening} {w}", label=lab))
    return out


# dev rows open differently, so no dev row is a training row (run_training refuses that)
DATA = RunData(train=examples(12, 0), dev=examples(8, 1, opening="honestly, a"))


def train_config(kind: str, method: dict, tmp_path, **train) -> RunConfig:
    """A small training RunConfig for a tiny model of ``kind``; ``train`` overrides the train options."""
    return RunConfig.from_dict({"model": "tiny", "data": {"eval": "x"}, "template": TEMPLATE[kind],
                                "verbalizer": {"negative": ["bad"], "positive": ["good"]}, "method": method,
                                "train": {"steps": 4, "batch_size": 4, "output_dir": str(tmp_path), **train}})


def train_tiny(kind, tok, method, tmp_path, **train):
    """Train a fresh tiny model on ``DATA``; returns (TrainResult, its MemorySink, the LoadedModel)."""
    lm = tiny_model(kind, tok)
    sink = MemorySink()
    res = run_training(train_config(kind, method, tmp_path, **train), sink=sink, loaded=lm, data=DATA)
    return res, sink, lm
