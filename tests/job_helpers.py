"""Job test helpers: a tiny model and data on disk that job children load, and a config that trains on them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny import tiny_model


def write_assets(root: Path, tok, repeat: int) -> Path:
    """A tiny masked model and a train / dev JSONL pair under ``root`` (``data.jsonl``, ``dev.jsonl``: 4 x
    ``repeat`` rows each, no dev row a training row), as a job child or the CLI loads them."""
    tiny_model("masked", tok).model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    rows = [{"text_a": f"this was a {w}", "label": lab} for w, lab in
            [("great fun", "positive"), ("awful mess", "negative"), ("lovely film", "positive"),
             ("boring junk", "negative")] * repeat]
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dev = [dict(r, text_a=f"{r['text_a']}, number {i}") for i, r in enumerate(rows)]   # no training row in dev
    (root / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in dev))
    return root


@pytest.fixture(scope="module")
def assets(tmp_path_factory, bert_tok):
    """``write_assets`` with 12 rows a file, once per test module."""
    return write_assets(tmp_path_factory.mktemp("jobs"), bert_tok, repeat=3)


def job_config(assets: Path, steps: int, out: Path) -> dict:
    """A LoRA training config on ``assets`` of ``steps`` steps writing to ``out``."""
    return {"model": str(assets / "model"), "template": "{text_a} {soft} It was {mask}.",
            "verbalizer": {"negative": ["bad"], "positive": ["good"]},
            "data": {"train": str(assets / "data.jsonl"), "eval": str(assets / "dev.jsonl")},
            "method": {"name": "lora"}, "train": {"steps": steps, "batch_size": 4, "output_dir": str(out),
                                                   "eval_every": None}}
