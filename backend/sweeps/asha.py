"""Asynchronous successive halving (ASHA, Li et al. 2020): which runs of a sweep stop early.

Rungs sit at ``grace_steps * reduction_factor**k`` training steps. A run reaches a rung with its first
dev evaluation at or past it; it is stopped there when its metric is below the (1 - 1/reduction_factor)
quantile of the values recorded at that rung by the runs that reached it no later than it did (itself
included). So with a factor of 3 about a third of the runs go on past each rung, and no run waits for
the slower ones: a decision uses what had arrived when the run got there, as ASHA does.

Why pure and stateless: the decision is a function of the runs' stored evaluation events (step, value,
time), so any process that can read storage (the studio's job runner, a CLI worker, a test) makes the
same decision, and a restart loses nothing. ``backend.sweeps.supervise`` feeds it from storage and asks
the losing runs to stop; the run's own process then ends it as ``cancelled`` with ``reason``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

# Metric events a stopped run carries (written at the step it stopped), from which its reason is told.
STOP_STEP, STOP_VALUE, STOP_CUT = "asha/stopped_at", "asha/value", "asha/rung_cut"
USER_STOP = "sweep/stopped_by_user"
WORST = -1.0          # a NaN evaluation ranks below any accuracy or F1 (and keeps the quantile finite)


@dataclass(frozen=True)
class Curve:
    """One run's dev evaluations: ``evals`` as (step, value, wall_time), any order; ``active``: still
    queued or running and not yet asked to stop (only those can be stopped)."""

    run_id: int
    evals: tuple[tuple[int, float, float], ...]
    active: bool = True


@dataclass(frozen=True)
class Stop:
    run_id: int
    step: int          # the evaluation step at which it reached the rung
    rung: int          # the rung (training steps)
    value: float
    cut: float
    metric: str

    @property
    def reason(self) -> str:
        return reason(self.metric, self.step, self.value, self.cut)


def reason(metric: str, step: int, value: float, cut: float) -> str:
    return f"stopped early by ASHA at step {step}: {metric} {value:.4g} < rung cut {cut:.4g}"


def rungs(grace_steps: int, reduction_factor: int, up_to: int) -> list[int]:
    """The rung steps below or at ``up_to``: grace, grace*rf, grace*rf^2, ..."""
    out, r = [], grace_steps
    while r <= up_to:
        out.append(r)
        r *= reduction_factor
    return out


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), ``q`` in [0, 1]."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _arrival(evals: Iterable[tuple[int, float, float]], rung: int) -> tuple[int, float, float] | None:
    """The first evaluation at or past ``rung`` (NaN counts as ``WORST``)."""
    past = [e for e in evals if e[0] >= rung]
    if not past:
        return None
    step, value, at = min(past, key=lambda e: (e[0], e[2]))
    return step, (WORST if value is None or math.isnan(value) else float(value)), at


def decide(curves: Sequence[Curve], *, grace_steps: int, reduction_factor: int, metric: str = "accuracy") -> list[Stop]:
    """The active runs to stop now, each at the first rung where it lost (at most one Stop per run)."""
    top = max((e[0] for c in curves for e in c.evals), default=0)
    q = 1.0 - 1.0 / reduction_factor
    arrivals = {r: {c.run_id: a for c in curves if (a := _arrival(c.evals, r)) is not None}
                for r in rungs(grace_steps, reduction_factor, top)}
    stops = []
    for c in curves:
        if not c.active:
            continue
        for rung, at_rung in arrivals.items():
            mine = at_rung.get(c.run_id)
            if mine is None:
                break
            # the runs there no later than this one (ties in time by run id: a fixed order)
            earlier = [a[1] for rid, a in at_rung.items() if (a[2], rid) <= (mine[2], c.run_id)]
            cut = quantile(earlier, q)
            if mine[1] < cut:
                stops.append(Stop(run_id=c.run_id, step=mine[0], rung=rung, value=mine[1], cut=cut, metric=metric))
                break
    return stops


def stop_events(stop: Stop, wall_time: float) -> list[dict[str, Any]]:
    """The metric events that record a stop on its run (what ``stop_reason`` reads back)."""
    return [{"key": k, "step": stop.step, "value": v, "wall_time": wall_time}
            for k, v in ((STOP_STEP, float(stop.step)), (STOP_VALUE, stop.value), (STOP_CUT, stop.cut))]


def stop_reason(metrics: Mapping[str, float], metric: str = "accuracy") -> str | None:
    """Why a sweep stopped a run, from its last metric values; None when nothing of ours stopped it."""
    if STOP_CUT in metrics and STOP_STEP in metrics:
        return reason(metric, int(metrics[STOP_STEP]), metrics.get(STOP_VALUE, math.nan), metrics[STOP_CUT])
    if metrics.get(USER_STOP):
        return "stopped from the sweep table (the whole configuration)"
    return None
