"""Asynchronous successive halving (ASHA, Li et al. 2020): which configurations of a sweep stop early.

Rungs sit at ``grace_steps * reduction_factor**k`` training steps. A run reaches a rung with its first
dev evaluation at or past it. The unit ASHA judges is the *configuration*, not the single seed: its
value at a rung is the mean over those of its seeds that have reached it, and it reaches the rung when
its first seed does. It is stopped there, every seed still queued or running, when that mean is below
the (1 - 1/reduction_factor) quantile of the values of the configurations that reached the rung no
later than it did (itself included). So with a factor of 3 about a third of the configurations go on
past each rung, and none waits for the slower ones: a decision uses what had arrived when it got there,
as ASHA does, and is taken again as more of its seeds arrive.

Why configurations: few-shot results swing by several points between seeds. Judging each seed alone
stops a configuration's unlucky seeds and keeps its lucky ones, and the table's mean over the finished
seeds is then the survivors' mean, too high, ranking that configuration above one that kept all its
seeds. Judged as a whole, a configuration keeps or loses all its seeds, so the mean it shows is a mean.
A curve without a group (``Curve.group`` None) is its own configuration: the per-run rule.

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
STOP_SEEDS = "asha/seeds"   # how many seeds the configuration's value was the mean of
USER_STOP = "sweep/stopped_by_user"
WORST = -1.0          # a NaN evaluation ranks below any accuracy or F1 (and keeps the quantile finite)


@dataclass(frozen=True)
class Curve:
    """One run's dev evaluations: ``evals`` as (step, value, wall_time), any order; ``active``: still
    queued or running and not yet asked to stop (only those can be stopped); ``group``: its
    configuration's key (the runs of one configuration differ by seed only)."""

    run_id: int
    evals: tuple[tuple[int, float, float], ...]
    active: bool = True
    group: str | None = None


@dataclass(frozen=True)
class Stop:
    run_id: int
    step: int          # the evaluation step at which it reached the rung
    rung: int          # the rung (training steps)
    value: float       # the value judged: the run's own, or its configuration's mean over ``seeds`` seeds
    cut: float
    metric: str
    seeds: int = 0     # 0: the run was judged alone (a configuration of one seed)

    @property
    def reason(self) -> str:
        return reason(self.metric, self.step, self.value, self.cut, self.seeds)


def reason(metric: str, step: int, value: float, cut: float, seeds: int = 0) -> str:
    if seeds:
        what = f"its configuration's {metric} {value:.4g} (mean of {seeds} seed{'s' if seeds > 1 else ''} at the rung)"
    else:
        what = f"{metric} {value:.4g}"
    return f"stopped early by ASHA at step {step}: {what} < rung cut {cut:.4g}"


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


@dataclass(frozen=True)
class _Arrival:
    """A configuration at a rung: the mean over its seeds there, when its first seed got there."""

    value: float
    at: float
    seeds: int


def _arrivals(groups: Mapping[str, Sequence[Curve]], rung: int) -> dict[str, _Arrival]:
    out = {}
    for key, members in groups.items():
        got = [a for c in members if (a := _arrival(c.evals, rung)) is not None]
        if got:
            out[key] = _Arrival(value=sum(a[1] for a in got) / len(got), at=min(a[2] for a in got), seeds=len(got))
    return out


def decide(curves: Sequence[Curve], *, grace_steps: int, reduction_factor: int, metric: str = "accuracy") -> list[Stop]:
    """The active runs to stop now: every active run of each configuration that lost at a rung, at the
    first rung where it lost (at most one Stop per run)."""
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.group if c.group is not None else f"run {c.run_id}", []).append(c)
    top = max((e[0] for c in curves for e in c.evals), default=0)
    q = 1.0 - 1.0 / reduction_factor
    at_rungs = {r: _arrivals(groups, r) for r in rungs(grace_steps, reduction_factor, top)}
    stops = []
    for key, members in groups.items():
        if not any(c.active for c in members):
            continue
        for rung, there in at_rungs.items():
            mine = there.get(key)
            if mine is None:
                break
            # the configurations there no later than this one (ties in time by key: a fixed order)
            cut = quantile([a.value for k, a in there.items() if (a.at, k) <= (mine.at, key)], q)
            if mine.value < cut:
                stops += [Stop(run_id=c.run_id, step=_step_at(c, rung), rung=rung, value=mine.value, cut=cut,
                               metric=metric, seeds=mine.seeds if len(members) > 1 else 0)
                          for c in members if c.active]
                break
    return stops


def _step_at(curve: Curve, rung: int) -> int:
    """The step a run is stopped at: its evaluation at the rung, else its last one (a seed that had not
    got there yet), else 0 (one still queued)."""
    arrived = _arrival(curve.evals, rung)
    if arrived is not None:
        return arrived[0]
    return max((e[0] for e in curve.evals), default=0)


def stop_events(stop: Stop, wall_time: float) -> list[dict[str, Any]]:
    """The metric events that record a stop on its run (what ``stop_reason`` reads back)."""
    values = [(STOP_STEP, float(stop.step)), (STOP_VALUE, stop.value), (STOP_CUT, stop.cut)]
    if stop.seeds:
        values.append((STOP_SEEDS, float(stop.seeds)))
    return [{"key": k, "step": stop.step, "value": v, "wall_time": wall_time} for k, v in values]


def early_stop_metric(sweep: Mapping[str, Any] | None) -> str:
    """The metric a sweep's early stopping compares and its table ranks by (``RunConfig.sweep``)."""
    return ((sweep or {}).get("early_stop") or {}).get("metric") or "accuracy"


def stop_reason(metrics: Mapping[str, float], metric: str = "accuracy") -> str | None:
    """Why a sweep stopped a run, from its last metric values; None when nothing of ours stopped it."""
    if STOP_CUT in metrics and STOP_STEP in metrics:
        return reason(metric, int(metrics[STOP_STEP]), metrics.get(STOP_VALUE, math.nan), metrics[STOP_CUT],
                      int(metrics.get(STOP_SEEDS, 0)))
    if metrics.get(USER_STOP):
        return "stopped from the sweep table (the whole configuration)"
    return None
