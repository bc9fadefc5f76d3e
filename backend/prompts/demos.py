"""In-context demonstrations (LM-BFF): which training rows are shown before the input, chosen per input.

Why selection lives here and not in ``wrap``: wrap stays a pure function of (template, example, demos),
so the same chosen demonstrations give the same tokens whoever wraps them (preview, evaluation, bench),
and the choice itself (random, seeded per input; or the most similar rows by sentence embedding) can be
tested on its own. Nothing here holds global state: a ``DemoPool`` is built once per pool by its caller
(its embeddings computed once, by the caller's embedder, which memoizes by content hash) and is frozen.

The pool is training rows only. A row whose input is identical to the input being scored is never its
demonstration (``input_key``), and ``build_pool`` also drops every pool row identical to any evaluation
row, so an evaluation can never show a scored row, labelled, in its own prompt.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from backend.choices import DEMO_SELECTIONS
from backend.data.fingerprint import input_key
from backend.data.labels import class_index
from backend.errors import ConfigError
from backend.prompts.example import Example

Embed = Callable[[list[str]], Any]   # texts -> (n, d) array of unit vectors


@dataclass(frozen=True)
class Demo:
    """One demonstration: a training row and the label word shown for it in place of the mask."""

    example: Example
    word: str
    row: int = -1          # index of the row in the pool's ``examples`` (lineage)


@dataclass(frozen=True)
class DemoPool:
    examples: tuple[Example, ...]             # every candidate row, in pool order (excluded ones included)
    classes: tuple[str, ...]
    words: tuple[str, ...]                    # per class: the word shown in place of the mask
    by_class: tuple[tuple[int, ...], ...]     # usable rows of each class
    keys: tuple[str, ...]                     # input_key of each row
    excluded: tuple[int, ...] = ()            # rows left out: identical to an evaluation row, or unlabelled
    vectors: Any = None                       # (n, d) unit vectors when built for similar selection
    embed: Embed | None = None

    @property
    def usable(self) -> int:
        return sum(len(rows) for rows in self.by_class)


def embed_text(example: Example) -> str:
    """The text a row is compared by: both fields, as the model reads them."""
    return f"{example.text_a} {example.text_b}".strip()


def build_pool(examples: Sequence[Example], classes: Sequence[str], words: Sequence[str], *,
               exclude: Sequence[Example] = (), embed: Embed | None = None) -> DemoPool:
    """The training rows as a demonstration pool, grouped by class; rows identical to one in ``exclude``
    (the evaluation rows) are left out and listed. With ``embed``, every row is embedded once, here."""
    if len(words) != len(classes):
        raise ConfigError(f"demonstrations need one label word per class ({len(classes)}), got {len(words)}")
    banned = {input_key(e) for e in exclude}
    keys = tuple(input_key(e) for e in examples)
    groups: list[list[int]] = [[] for _ in classes]
    excluded = []
    for row, (ex, key) in enumerate(zip(examples, keys)):
        c = class_index(ex.label, list(classes)) if ex.label is not None else None
        if c is None or key in banned:
            excluded.append(row)
            continue
        groups[c].append(row)
    vectors = None
    if embed is not None and examples:
        vectors = embed([embed_text(e) for e in examples])
    return DemoPool(examples=tuple(examples), classes=tuple(classes), words=tuple(words),
                    by_class=tuple(tuple(g) for g in groups), keys=keys, excluded=tuple(excluded),
                    vectors=vectors, embed=embed)


def _pick(pool: DemoPool, query: Example, k: int, selection: str, seed: int, qvec: Any) -> tuple[Demo, ...]:
    qkey = input_key(query)
    rng = random.Random(f"{seed}\0{qkey}")      # per input, independent of the order inputs come in
    chosen: list[tuple[float, int, int]] = []    # (-similarity, row, class)
    for c, rows in enumerate(pool.by_class):
        candidates = [r for r in rows if pool.keys[r] != qkey]
        if selection == "random":
            chosen.extend((0.0, r, c) for r in rng.sample(candidates, min(k, len(candidates))))
        else:
            sims = pool.vectors[candidates] @ qvec if candidates else []
            ranked = sorted(zip((-float(s) for s in sims), candidates))[:k]
            chosen.extend((s, r, c) for s, r in ranked)
    if selection == "random":
        rng.shuffle(chosen)       # no class always nearest the input
    else:
        chosen.sort()             # most similar first: dropped last when the prompt is too long
    return tuple(Demo(example=pool.examples[r], word=pool.words[c], row=r) for _, r, c in chosen)


def select_demos(pool: DemoPool, queries: Sequence[Example], k: int, selection: str = "random",
                 seed: int = 13) -> list[tuple[Demo, ...]]:
    """Up to ``k`` demonstrations per class for every query: ``random`` (seeded per query) or ``similar``
    (the ``k`` rows of each class nearest the query by cosine of sentence embeddings)."""
    if selection not in DEMO_SELECTIONS:
        raise ConfigError(f"demos.selection must be one of {', '.join(DEMO_SELECTIONS)}, got {selection!r}")
    if k <= 0 or not queries:
        return [() for _ in queries]
    qvecs: Any = [None] * len(queries)
    if selection == "similar":
        if pool.embed is None or pool.vectors is None:
            raise ConfigError("similar demonstrations need the pool built with a sentence embedder")
        qvecs = pool.embed([embed_text(q) for q in queries])
    return [_pick(pool, q, k, selection, seed, v) for q, v in zip(queries, qvecs)]


@dataclass(frozen=True)
class DemoChooser:
    """A pool and how to choose from it, as the one callable evaluation takes (inputs -> their demos)."""

    pool: DemoPool
    k: int
    selection: str = "random"
    seed: int = 13

    def __call__(self, queries: Sequence[Example]) -> list[tuple[Demo, ...]]:
        return select_demos(self.pool, queries, self.k, self.selection, self.seed)

    def describe(self) -> dict[str, Any]:
        """What a run records: the settings, the pool and the rows left out of it (by pool row)."""
        return {"k_per_class": self.k, "selection": self.selection, "seed": self.seed,
                "pool_rows": len(self.pool.examples), "usable_rows": self.pool.usable,
                "excluded_rows": list(self.pool.excluded),
                "pool_guids": [e.guid for e in self.pool.examples]}
