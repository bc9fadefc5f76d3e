"""Paired statistics for prompts scored on the same rows: bootstrap intervals and McNemar's exact test.

Why paired: two prompts evaluated on the same dev rows differ far less than two independent samples
would, so intervals are drawn with the same resampled row indices for every prompt (a difference is
then read on one resample at a time), and the significance test looks only at the rows where the two
disagree (McNemar). Exact rather than chi-square: few-shot dev sets are small and the discordant counts
smaller still, where the chi-square approximation is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95


def resample_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement; share one draw across every prompt compared."""
    if n < 1:
        raise ValueError("no rows to resample")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def accuracy_samples(gold: Sequence[int], pred: Sequence[int], idx: np.ndarray) -> np.ndarray:
    """Accuracy on each resample: (n_boot,)."""
    correct = np.asarray(gold) == np.asarray(pred)
    return correct[idx].mean(axis=1)


def macro_f1_samples(gold: Sequence[int], pred: Sequence[int], n_classes: int, idx: np.ndarray) -> np.ndarray:
    """Macro-F1 on each resample: (n_boot,). One bincount per resample over gold x pred cells."""
    g, p = np.asarray(gold)[idx], np.asarray(pred)[idx]            # (B, n)
    b = idx.shape[0]
    cells = (np.arange(b)[:, None] * n_classes + g) * n_classes + p
    conf = np.bincount(cells.ravel(), minlength=b * n_classes * n_classes).reshape(b, n_classes, n_classes)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    predicted, support = conf.sum(axis=1), conf.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + support > 0, 2 * tp / (predicted + support), 0.0)
    return f1.mean(axis=1)


def interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


MAX_CONFUSION_CLASSES = 64    # above: accuracy's interval only (n_boot x classes² cells would not fit)


def confusion_intervals(confusion: Sequence[Sequence[int]], n_boot: int = 1000, seed: int = 0,
                        confidence: float = CONFIDENCE) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of accuracy and macro-F1 from a confusion matrix (rows gold) alone.

    Why from the matrix: drawing n rows with replacement is drawing n cells from the matrix's own
    frequencies (one multinomial draw per resample), so every stored run has its interval without its
    per-row predictions, in memory of n_boot x classes² rather than n_boot x rows. The same resampling as
    ``accuracy_samples`` / ``macro_f1_samples``, so one run's interval here and in a comparison agree up
    to the bootstrap's own noise."""
    conf = np.asarray(confusion, dtype=np.int64)
    n = int(conf.sum()) if conf.size else 0
    if n == 0:
        return {}
    k = conf.shape[0]
    rng = np.random.default_rng(seed)
    if k > MAX_CONFUSION_CLASSES:
        correct = rng.binomial(n, np.trace(conf) / n, size=n_boot) / n
        return {"accuracy": interval(correct, confidence)}
    draws = rng.multinomial(n, (conf / n).ravel(), size=n_boot).reshape(n_boot, k, k)
    tp = np.diagonal(draws, axis1=1, axis2=2).astype(float)
    predicted, support = draws.sum(axis=1), draws.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + support > 0, 2 * tp / (predicted + support), 0.0)
    return {"accuracy": interval(tp.sum(axis=1) / n, confidence), "macro_f1": interval(f1.mean(axis=1), confidence)}


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
