"""Paired statistics for prompts scored on the same rows: intervals and McNemar's exact test.

Why paired: two prompts evaluated on the same dev rows differ far less than two independent samples
would, so intervals are drawn with the same resampled row indices for every prompt (a difference is
then read on one resample at a time), and the significance test looks only at the rows where the two
disagree (McNemar). Exact rather than chi-square: few-shot dev sets are small and the discordant counts
smaller still, where the chi-square approximation is wrong.

Accuracy is a proportion, so its interval is Wilson's score interval, not a bootstrap: a percentile
bootstrap of 20/20 right says (1.0, 1.0), a certainty 20 rows cannot give, and of 19/20 says 0.85-1.0
where the truth reaches down to ~0.75. Macro-F1 has no such closed form and keeps the (paired)
bootstrap, but where the resamples cannot spread (every row right, or a handful of rows) it has no
interval (None) rather than a zero-width one: a wrong number shown confidently is worse than none.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb, sqrt
from statistics import NormalDist
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
MIN_BOOTSTRAP_ROWS = 10   # below: too few rows for a percentile bootstrap to cover 95% (it runs narrow)


def resample_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement; share one draw across every prompt compared."""
    if n < 1:
        raise ValueError("no rows to resample")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _macro_f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Macro-F1 over the last axis, averaged over the classes present in gold or predictions (as
    scikit-learn does): a class absent from both says nothing about the prompt and must not count as F1=0
    (a perfect classifier on rows of one of two classes would score 0.5)."""
    present = predicted + support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2 * tp / (predicted + support), 0.0)
        return np.where(present.any(axis=-1), f1.sum(axis=-1) / present.sum(axis=-1), 0.0)


def macro_f1_samples(gold: Sequence[int], pred: Sequence[int], n_classes: int, idx: np.ndarray) -> np.ndarray:
    """Macro-F1 on each resample: (n_boot,), over the classes present in that resample's gold or
    predictions. One bincount per resample over gold x pred cells."""
    g, p = np.asarray(gold)[idx], np.asarray(pred)[idx]            # (B, n)
    b = idx.shape[0]
    cells = (np.arange(b)[:, None] * n_classes + g) * n_classes + p
    conf = np.bincount(cells.ravel(), minlength=b * n_classes * n_classes).reshape(b, n_classes, n_classes)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    return _macro_f1(tp, conf.sum(axis=1), conf.sum(axis=2))


def interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_interval(samples: np.ndarray, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile interval of a metric's bootstrap samples over ``n`` rows, or None where it would claim
    a certainty the rows do not have: fewer than ``MIN_BOOTSTRAP_ROWS`` rows, or no spread at all
    (every row right: every resample scores the same, and (1.0, 1.0) would read as "exactly 1")."""
    if n < MIN_BOOTSTRAP_ROWS:
        return None
    lo, hi = interval(samples, confidence)
    return None if hi - lo <= 0 else (lo, hi)


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (``correct`` of ``n``): never zero-width, honest at 0/n and
    n/n (20/20 gives 0.84-1.0, 1/1 gives 0.21-1.0) and close to nominal coverage on small n, where the
    normal approximation and the percentile bootstrap are not."""
    if n < 1:
        raise ValueError("no rows: a proportion of nothing has no interval")
    if not 0 <= correct <= n:
        raise ValueError(f"{correct} right of {n} rows is not a proportion")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return lo, hi


def accuracy_interval(gold: Sequence[int], pred: Sequence[int],
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Accuracy's interval on these rows: Wilson's, the one every table, run and view shows."""
    correct = np.asarray(gold) == np.asarray(pred)
    return wilson_interval(int(correct.sum()), int(correct.size), confidence)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, kept as None). Why: a table
    of hundreds of comparisons shows a few p < 0.05 by chance alone; Holm's adjusted p controls the
    chance of any false "better" across the whole table, with no assumption about how tests relate."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(tested)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


MAX_CONFUSION_CLASSES = 64    # above: accuracy's interval only (n_boot x classes² cells would not fit)


def confusion_intervals(confusion: Sequence[Sequence[int]], n_boot: int = 1000, seed: int = 0,
                        confidence: float = CONFIDENCE) -> dict[str, tuple[float, float] | None]:
    """Accuracy's Wilson interval and macro-F1's bootstrap interval from a confusion matrix (rows gold)
    alone; macro-F1's is None where the bootstrap cannot give one (see ``bootstrap_interval``), and
    left out above ``MAX_CONFUSION_CLASSES``. No rows: no intervals ({}).

    Why from the matrix: drawing n rows with replacement is drawing n cells from the matrix's own
    frequencies (one multinomial draw per resample), so every stored run has its interval without its
    per-row predictions, in memory of n_boot x classes² rather than n_boot x rows. The same resampling as
    ``macro_f1_samples``, so one run's interval here and in a comparison agree up to the bootstrap's own
    noise."""
    conf = np.asarray(confusion, dtype=np.int64)
    n = int(conf.sum()) if conf.size else 0
    if n == 0:
        return {}
    out: dict[str, tuple[float, float] | None] = {"accuracy": wilson_interval(int(np.trace(conf)), n, confidence)}
    k = conf.shape[0]
    if k > MAX_CONFUSION_CLASSES:
        return out
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, (conf / n).ravel(), size=n_boot).reshape(n_boot, k, k)
    tp = np.diagonal(draws, axis1=1, axis2=2).astype(float)
    out["macro_f1"] = bootstrap_interval(_macro_f1(tp, draws.sum(axis=1), draws.sum(axis=2)), n, confidence)
    return out


@dataclass(frozen=True)
class McNemar:
    only_a: int          # rows the first prompt gets right and the second wrong
    only_b: int          # rows the second gets right and the first wrong
    p_value: float       # exact two-sided binomial test on the discordant rows

    def to_dict(self) -> dict[str, float | int]:
        return {"only_a": self.only_a, "only_b": self.only_b, "p_value": self.p_value}


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """McNemar's exact test: under "equally good", each discordant row favours either prompt with p=1/2."""
    if len(a_correct) != len(b_correct):
        raise ValueError("McNemar's test compares two prompts on the same rows")
    only_a = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return McNemar(only_a, only_b, 1.0)
    tail = sum(comb(n, i) for i in range(k + 1))          # exact integers: no underflow for large n
    return McNemar(only_a, only_b, min(1.0, 2 * tail / 2 ** n))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of class scores (numpy: the workbench combines scores off the model)."""
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
