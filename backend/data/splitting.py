"""Train / dev from one source, and the guarantee that no run evaluates on a row it trained on.

A single uploaded file used as both training and evaluation data measures memorisation, not accuracy.
``split_train_dev`` carves a dev part out of one source: stratified by label (each class keeps its share),
reproducible from the seed alone (each class drawn with its own RNG seeded from (seed, class), like
K-shot sampling), and with identical inputs kept on the same side, so a file that repeats a row (even
under another label) cannot leak it into the dev part. ``check_disjoint`` is the check every run makes by
the input the model is shown (``input_key``: texts and meta, not the label), whatever the files are called.
"""
from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from backend.data.fingerprint import input_key
from backend.errors import ConfigError, DatasetError
from backend.prompts.example import Example

if TYPE_CHECKING:   # annotation only: the config is built on the engine, not the other way round
    from backend.config import DataConfig

DEFAULT_DEV_FRACTION = 0.2
SNIPPET = 60


def check_fraction(dev_fraction: Any) -> float:
    """The dev fraction as a float strictly between 0 and 1; ConfigError naming data.dev_fraction otherwise."""
    if isinstance(dev_fraction, bool) or not isinstance(dev_fraction, (int, float)) \
            or not 0 < float(dev_fraction) < 1:
        raise ConfigError(f"data.dev_fraction must be a number between 0 and 1 (e.g. 0.2), got {dev_fraction!r}",
                          field="dev_fraction")
    return float(dev_fraction)


def one_source(data: DataConfig) -> tuple[str, str | None]:
    """The single source (and split of it) that ``data.dev_fraction`` divides into train and dev.

    Here, next to the split, because loading the rows (pipeline) and recording where they came from
    (recording) both need the same answer."""
    sources = {s for s in (data.train, data.eval) if s}
    splits = {s for s in (data.train_split, data.eval_split) if s}
    if len(sources) != 1 or len(splits) > 1:
        raise ConfigError("data.dev_fraction splits one source into train and dev, but data.train/data.eval "
                          f"(splits {sorted(splits) or 'none'}) name different data; drop dev_fraction, or "
                          "give the same source once", field="dev_fraction")
    return sources.pop(), (splits.pop() if splits else None)


def split_train_dev(examples: Sequence[Example], dev_fraction: float, seed: int
                    ) -> tuple[list[Example], list[Example]]:
    """(train, dev) from one source, each in dataset order; DatasetError when either part would be empty."""
    fraction = check_fraction(dev_fraction)
    groups: dict[str, list[int]] = {}          # identical inputs travel together, whatever their labels
    for i, ex in enumerate(examples):
        groups.setdefault(input_key(ex), []).append(i)
    by_class: dict[Hashable, list[str]] = {}
    for key, members in groups.items():
        by_class.setdefault(examples[members[0]].label, []).append(key)
    dev_rows: set[int] = set()
    for label, keys in by_class.items():
        n_dev = int(len(keys) * fraction + 0.5)
        n_dev = min(max(n_dev, 1), len(keys) - 1) if len(keys) > 1 else 0
        rng = random.Random(f"dev-split:{seed}:{type(label).__name__}:{label}")
        for key in rng.sample(keys, n_dev):
            dev_rows.update(groups[key])
    train = [ex for i, ex in enumerate(examples) if i not in dev_rows]
    dev = [ex for i, ex in enumerate(examples) if i in dev_rows]
    if not train or not dev:
        raise DatasetError(f"cannot split {len(examples)} rows into train and dev with dev fraction {fraction:g}: "
                           "each part needs at least one row (add rows, or give separate train and dev files)")
    return train, dev


def describe(dev_fraction: float | None, seed: int, n_train: int, n_dev: int) -> str:
    """How a run's train and dev rows were made, in one line (the Data tab's card and the Runs tab)."""
    if dev_fraction is None:
        return f"train {n_train} / dev {n_dev} (separate splits, checked disjoint)"
    return (f"train {n_train} / dev {n_dev} (one source split {1 - dev_fraction:.0%} / {dev_fraction:.0%}, "
            f"stratified by label, seed {seed})")


def _row(ex: Example, position: int) -> str:
    where = ex.guid if isinstance(ex.guid, int) else position
    text = ex.text_a if len(ex.text_a) <= SNIPPET else ex.text_a[:SNIPPET] + "..."
    return f"row {where}: {text!r}"


def check_disjoint(train: Sequence[Example], evaluation: Sequence[Example]) -> None:
    """DatasetError when any evaluation row is the input of a training row (the run would score rows it
    learned from); the label does not count: the same text under two labels is one input to the model."""
    trained = {input_key(ex) for ex in train}
    shared = [(i, ex) for i, ex in enumerate(evaluation) if input_key(ex) in trained]
    if shared:
        i, ex = shared[0]
        raise DatasetError(f"{len(shared)} of the {len(evaluation)} evaluation rows are also training rows "
                           f"(e.g. {_row(ex, i)}); pick a dev split or a different file, or set "
                           "data.dev_fraction to split one source")
