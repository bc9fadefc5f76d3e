"""Job test helpers: a tiny model and data on disk that job children load, and a config that trains on them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny import tiny_model


@pytest.fixture(scope="module")
def assets(tmp_path_factory, bert_tok):
    """A tiny masked model and a train / dev JSONL pair on disk, as a job child loads them (no dev row is a
    training row)."""
    root = tmp_path_factory.mktemp("jobs")
    lm = tiny_model("masked", bert_tok)
    lm.model.save_pretrained(root / "model")
    bert_tok.save_pretrained(root / "model")
    rows = [{"text_a": f"this was a {w}", "label": lab} for w, lab in
            [("great fun", "positive"), ("awful mess", "negative"), ("lovely film", "positive"),
             ("boring junk", "negative")] * 3]
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dev = [dict(r, text_a=f"{r['text_a']}, number {i}") for i, r in enumerate(rows)]   # no training row in dev
    (root / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in dev))
    return root


def job_config(assets: Path, steps: int, out: Path) -> dict:
    """A LoRA training config on ``assets`` of ``steps`` steps writing to ``out``."""
    return {"model": str(assets / "model"), "template": "{text_a} {soft} It was {mask}.",
            "verbalizer": {"negative": ["bad"], "positive": ["good"]},
            "data": {"train": str(assets / "data.jsonl"), "eval": str(assets / "dev.jsonl")},
            "method": {"name": "lora"}, "train": {"steps": steps, "batch_size": 4, "output_dir": str(out),
                                                   "eval_every": None}}
