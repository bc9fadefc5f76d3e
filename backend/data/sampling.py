"""Sampling rows, reproducible from the seed alone: exactly K examples per class (few-shot training), or at
most N rows taken class by class (what a search over a large split may read).

Each class is drawn with its own RNG seeded from (seed, class), so the picks for one class do not shift
when another class gains or loses examples; string seeds go through sha512 in ``random``, which is stable
across processes, machines and Python versions (unlike ``hash()``). The result keeps dataset order.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from itertools import zip_longest
from typing import Any

from backend.errors import ConfigError, DatasetError
from backend.prompts.example import Example


def _label_of(example: Example) -> Hashable:
    return example.label


def sample_k_shot(examples: Sequence[Example], k: int, seed: int,
                  label_key: Callable[[Example], Hashable] = _label_of) -> list[Example]:
    """K examples of every class (classes = distinct ``label_key`` values), in dataset order."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"shots must be a positive whole number, got {k!r}", field="shots")
    by_class: dict[Hashable, list[int]] = {}
    for i, ex in enumerate(examples):
        key = label_key(ex)
        if key is None:
            raise DatasetError(f"row {i} has no label; k-shot sampling needs labelled data", row=i)
        by_class.setdefault(key, []).append(i)
    if not by_class:
        raise DatasetError("no examples to sample from")
    chosen: list[int] = []
    for key, indices in by_class.items():
        if len(indices) < k:
            raise DatasetError(f"class {key!r} has only {len(indices)} examples, fewer than shots={k}")
        rng = random.Random(f"{seed}:{type(key).__name__}:{key}")
        chosen.extend(rng.sample(indices, k))
    return [examples[i] for i in sorted(chosen)]


def stratified_sample(key: Sequence[Any], cap: int, seed: int = 0) -> list[int]:
    """Indices of at most ``cap`` rows (``key``: each row's group, e.g. its class), taken in turn from each
    group (each shuffled with ``seed``), in the rows' own order. Why in turn: a class with few rows keeps
    all of them, where a plain sample of a skewed split could leave it out."""
    if len(key) <= cap:
        return list(range(len(key)))
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(key):
        groups.setdefault(k, []).append(i)
    rng = random.Random(seed)
    for members in groups.values():
        rng.shuffle(members)
    picked: list[int] = []
    for turn in zip_longest(*groups.values()):
        picked += [i for i in turn if i is not None][:cap - len(picked)]
        if len(picked) >= cap:
            break
    return sorted(picked)
