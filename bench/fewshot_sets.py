"""The few-shot protocol the workbench benchmarks share: K training rows per class (seed 13) from a
dataset's train file, and at most N evaluation rows spread over its eval file, none of which repeats a
training row (TREC's test set repeats some training questions)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from backend.data import load_examples, sample_k_shot
from backend.data.fingerprint import example_key

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SEED = 13


def few_shot_split(name: str, eval_file: str, classes: list[str], shots: int, eval_limit: int) -> tuple[list[Any], list[Any]]:
    """(training rows, evaluation rows) of ``../shared/datasets/<name>``."""
    train = sample_k_shot(load_examples(str(DATA / name / "train.jsonl"), label_names=classes).examples, shots, SEED)
    seen = {example_key(e) for e in train}
    rows = [e for e in load_examples(str(DATA / name / eval_file), label_names=classes).examples
            if example_key(e) not in seen]
    step = max(1, len(rows) // eval_limit)
    return train, [rows[i] for i in range(0, len(rows), step)][:eval_limit]


def start() -> tuple[Any, Any, list[float]]:
    """The embedded model, its encoding settings and the load average at the start (the benches report it),
    after checking the datasets are there."""
    from backend.batching import EncodeSettings
    from backend.models import load_model

    if not DATA.exists():
        sys.exit("../shared/datasets is absent")
    lm = load_model()
    return lm, EncodeSettings(profile=lm.kind, max_length=256), [round(x, 2) for x in os.getloadavg()]
