"""The shipped demo datasets are well-formed, balanced and disjoint; real datasets load when present."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from backend.data import BUILTIN_DEFAULT, builtin_datasets, load_examples

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_builtins_listed():
    found = builtin_datasets()
    assert {"movie-reviews", "nli-mini"} <= set(found)
    assert BUILTIN_DEFAULT == "builtin:movie-reviews"
    assert all((d / "train.jsonl").is_file() and (d / "dev.jsonl").is_file() for d in found.values())


@pytest.mark.parametrize("name,labels,text_b", [
    ("movie-reviews", ["negative", "positive"], False),
    ("nli-mini", ["contradiction", "entailment", "neutral"], True),
])
def test_builtin_is_balanced_and_disjoint(name, labels, text_b):
    train = load_examples(f"builtin:{name}", split="train")
    dev = load_examples(f"builtin:{name}", split="dev")
    for data in (train, dev):
        assert data.label_names == labels
        counts = Counter(e.label for e in data.examples)
        assert len(set(counts.values())) == 1, counts         # balanced
        assert all(e.text_a.strip() for e in data.examples)
        assert all(bool(e.text_b) == text_b for e in data.examples)
        assert len({(e.text_a, e.text_b) for e in data.examples}) == len(data.examples)  # no duplicates
    assert not {(e.text_a, e.text_b) for e in train.examples} & {(e.text_a, e.text_b) for e in dev.examples}


def test_movie_reviews_size():
    assert len(load_examples(BUILTIN_DEFAULT).examples) == 64
    assert len(load_examples(BUILTIN_DEFAULT, split="dev").examples) == 64


@pytest.mark.parametrize("name,split", [("sst2", "dev"), ("cb", "dev"), ("agnews", "test"), ("trec", "test")])
def test_shared_benchmark_sets_load(name, split):
    if not (SHARED / name).is_dir():
        pytest.skip("../shared absent")
    data = load_examples(str(SHARED / name), split=split, limit=200)
    assert 0 < len(data.examples) <= 200
    assert len(data.label_names) >= 2
