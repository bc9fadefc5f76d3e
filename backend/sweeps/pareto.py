"""The Pareto front of a sweep's configurations: the ones no other beats on both the metric (higher is
better) and a cost (lower is better: trainable parameters, seconds per step, peak memory).

Why a front and not a ranking: "best accuracy" alone hides that a configuration two points lower may
train 100x fewer parameters; the front is the short list worth choosing from (PEFT's method comparison
draws the same plot). Pure: rows in, the keys on the front out.

Why survivors are kept off it: a configuration with a failed or stopped seed has a mean over the seeds
that got through, the lucky ones; on the front it would push honest configurations off with a number it
never earned. The plot still draws it, marked, and says why it is not on the front.
"""
from __future__ import annotations

from typing import Any, Sequence

COST_AXES = {"trainable": "trainable parameters", "seconds_per_step": "seconds per step",
             "peak_memory_mb": "peak memory (MB)"}


def survivors_only(row: dict[str, Any]) -> bool:
    """True when the row's mean leaves out seeds that failed or were stopped (a survivors' mean)."""
    return bool(row.get("stopped") or row.get("failed"))


def front(rows: Sequence[dict[str, Any]], cost: str, value: str = "mean") -> list[str]:
    """Keys of the rows on the front of (``cost`` low, ``value`` high), in increasing cost; rows missing
    either number are left out (a configuration with no finished seed has no mean yet), and so are rows
    whose mean is a survivors' mean (``survivors_only``)."""
    points = sorted(((float(r[cost]), -float(r[value]), r["key"]) for r in rows
                     if r.get(cost) is not None and r.get(value) is not None and not survivors_only(r)))
    keys, best = [], None
    for c, neg_v, key in points:
        v = -neg_v
        if best is None or v > best:
            keys.append(key)
            best = v
    return keys
