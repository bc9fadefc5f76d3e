"""Running a sweep on this machine: its trials queued through the job queue (``backend.jobs``), each an
ordinary run in its own process, with ASHA applied by the worker's poll (``backend.sweeps.supervise``).

Why the job queue and not a loop here: a sweep's runs are then exactly the runs a single training
makes (recorded, resumable, cancellable, visible in the Runs tab while they go), a crashed trial is one
failed run and not a dead sweep, and the studio's runner, a ``python -m backend worker`` on another
machine sharing the database, or ``run_sweep`` below can all execute them.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from backend.errors import ConfigError
from backend.sweeps.expand import Trial, expand, tag
from backend.sweeps.spec import SweepSpec
from backend.sweeps.table import ACTIVE, rows


def check_new(store: Any, spec: SweepSpec) -> None:
    """A sweep's name is its runs' tag: a second sweep of the same name would mix two tables."""
    if store.list_runs(tag=tag(spec.name), limit=1):
        raise ConfigError(f"name: a sweep named {spec.name!r} already has runs in this database; give the "
                          "new one another name", field="sweep")


def queue_sweep(store: Any, spec: SweepSpec, *, project: str | None = None,
                submit: Callable[[Any], int] | None = None, trials: list[Trial] | None = None) -> list[int]:
    """Queue every trial (configurations in grid order, seeds within); returns the run ids. ``submit``:
    how one config is queued (default ``backend.jobs.submit``; the studio passes its runner's)."""
    from backend.jobs.queue import submit as queue_submit

    check_new(store, spec)
    trials = trials if trials is not None else expand(spec)
    send = submit or (lambda cfg: queue_submit(store, cfg, project=project))
    return [send(t.config) for t in trials]


def sweep_runs(store: Any, name: str) -> list[Any]:
    return store.list_runs(tag=tag(name), limit=None, newest_first=False)


def run_sweep(store: Any, spec: SweepSpec, *, concurrency: int = 1, poll_s: float = 0.5,
              stop: Callable[[], bool] | None = None, on_change: Callable[[list[dict[str, Any]]], None] | None = None,
              log_dir: Any = None, project: str | None = None) -> dict[str, Any]:
    """Queue the sweep and work the queue here until every run of it has ended (the worker takes the
    oldest queued run first, so runs queued before the sweep run too). ``stop()`` true: the running
    children are asked to end (checkpointed, cancelled) and the sweep's queued runs are cancelled.
    ``on_change`` gets the table whenever a run's status changed. Returns the run ids and the table."""
    from backend.jobs.worker import Worker

    ids = queue_sweep(store, spec, project=project)
    worker = Worker(store, concurrency=concurrency, log_dir=log_dir)
    seen: dict[int, str] = {}
    try:
        while True:
            if stop is not None and stop():
                break
            worker.poll()
            runs = sweep_runs(store, spec.name)
            now = {r.id: r.status for r in runs}
            if now != seen:
                seen = now
                if on_change is not None:
                    on_change(rows(runs))
            if not any(s in ACTIVE for s in now.values()):
                break
            time.sleep(poll_s)
    finally:
        if worker.children:
            worker.stop()
        for r in sweep_runs(store, spec.name):
            if r.status == "queued":
                store.request_cancel(r.id)
    return {"sweep": spec.name, "runs": ids, "table": rows(sweep_runs(store, spec.name))}
