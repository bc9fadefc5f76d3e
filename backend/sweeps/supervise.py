"""The sweep supervisor: reads the running sweeps' evaluation events from storage, asks ASHA
(``backend.sweeps.asha.decide``) which runs lost at a rung, and asks those runs to stop.

Why here and stateless: every job worker (the studio's, ``python -m backend worker``, the CLI's sweep)
calls ``supervise`` from its poll loop while it has runs going, so early stopping works wherever the
runs execute, and needs no process of its own that could die. A stop is written on the run first
(metric events ``asha/*`` at the step it lost: the reason, readable from storage alone) and then as the
ordinary cancel request, which the run's process honours before its next optimizer step and records as
``cancelled`` with the reason in its history. Imports no job code (the worker imports this).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from backend.sweeps.asha import STOP_CUT, USER_STOP, Curve, Stop, decide, stop_events, stop_reason
from backend.sweeps.expand import tag
from backend.sweeps.table import latest_per_seed, sweep_of

ACTIVE = ("queued", "running")


def supervise(store: Any, *, now: Callable[[], float] = time.time) -> list[Stop]:
    """One pass over the sweeps with early stopping that have a running run; returns the stops made."""
    rules: dict[str, dict[str, Any]] = {}
    for r in store.list_runs(status="running", limit=None):
        sweep = (r.config or {}).get("sweep") or {}
        # a sweep run through Ray Tune has Tune's ASHA deciding (backend.sweeps.ray_tune): not decided twice
        if sweep.get("early_stop") and sweep.get("name") and sweep.get("executor") != "ray-tune":
            rules[sweep["name"]] = sweep["early_stop"]
    made = []
    for name, rule in rules.items():
        made += _supervise_sweep(store, name, rule, now)
    return made


def _supervise_sweep(store: Any, name: str, rule: dict[str, Any], now: Callable[[], float]) -> list[Stop]:
    """Judge the sweep's configurations: each one's seeds (the newest run of each: a resumed seed counts
    once) make its curve group, queued seeds included, so a losing configuration's seeds that have not
    started yet are cancelled with it."""
    metric = rule.get("metric", "accuracy")
    key = f"eval/{metric}"
    curves = []
    for r in latest_per_seed(store.list_runs(tag=tag(name), limit=None, newest_first=False)):
        events = [] if r.status == "queued" else store.get_metrics(r.id, keys=[key])
        evals = tuple((int(e["step"]), _num(e["value"]), float(e["wall_time"])) for e in events)
        active = r.status in ACTIVE and not r.cancel_requested and STOP_CUT not in r.metrics
        curves.append(Curve(run_id=r.id, evals=evals, active=active, group=sweep_of(r).get("key")))
    stops = decide(curves, grace_steps=int(rule.get("grace_steps", 10)),
                   reduction_factor=int(rule.get("reduction_factor", 3)), metric=metric)
    made = []
    for stop in stops:
        if store.get_run(stop.run_id).status not in ACTIVE:   # it ended meanwhile: nothing to stop
            continue
        store.append_metrics(stop.run_id, stop_events(stop, now()))
        store.request_cancel(stop.run_id, why=stop.reason)
        made.append(stop)
    return made


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def stop_configuration(store: Any, name: str, key: str, *, now: Callable[[], float] = time.time) -> list[int]:
    """Stop every queued or running run of configuration ``key`` of sweep ``name`` (the table's "stop
    this configuration"); returns their ids. Queued ones are cancelled at once, running ones stop before
    their next step; each carries the reason."""
    stopped = []
    for r in store.list_runs(tag=tag(name), limit=None, newest_first=False):
        if r.status not in ACTIVE or sweep_of(r).get("key") != key:
            continue
        store.append_metrics(r.id, [{"key": USER_STOP, "step": 0, "value": 1.0, "wall_time": now()}])
        store.request_cancel(r.id, why=stop_reason({USER_STOP: 1.0}))
        stopped.append(r.id)
    return stopped
