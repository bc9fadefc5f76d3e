"""The worker: claims queued runs from a (shared) database and runs each in its own process.

Two workers never get the same run: ``Store.claim_next_run`` is one atomic transaction (``SKIP LOCKED``
on PostgreSQL, the write lock on SQLite). Children die with their worker (``PR_SET_PDEATHSIG``), their
heartbeats stop, and any worker's periodic ``reap_dead_runs`` marks the run failed with the reason (at
once for a dead pid on this machine, after ``stale_after_s`` without a heartbeat for other machines).
``Worker.stop`` sends SIGTERM: each child saves a last checkpoint and ends its run as cancelled.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from backend.jobs.runner import RunProcess, reap, spawn

STALE_AFTER_S = 90.0
log = logging.getLogger(__name__)


def default_concurrency() -> int:
    """One run at a time on CPU (runs compete for the same cores); one per GPU otherwise."""
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Worker:
    def __init__(self, store: Any, *, concurrency: int | None = None, name: str | None = None,
                 log_dir: Path | None = None, stale_after_s: float = STALE_AFTER_S) -> None:
        self.store = store
        self.concurrency = concurrency or default_concurrency()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.log_dir = log_dir
        self.stale_after_s = stale_after_s
        self.children: dict[int, RunProcess] = {}

    def poll(self) -> list[int]:
        """Reap finished children, fail stale runs, start claimed runs in free slots; returns started ids."""
        for run_id, proc in list(self.children.items()):
            code = proc.poll()
            if code is not None:
                del self.children[run_id]
                reap(self.store, run_id, code)
        self.store.reap_dead_runs(self.stale_after_s, exclude=self.children)   # ours: reaped above, by exit code
        if self.children:
            self._supervise()
        started = []
        while len(self.children) < self.concurrency:
            run_id = self.store.claim_next_run(self.name)
            if run_id is None:
                break
            self.children[run_id] = self._spawn(run_id)
            started.append(run_id)
        return started

    def _supervise(self) -> None:
        """Sweeps with early stopping: the runs that lost at an ASHA rung are asked to stop. A failure
        here is logged, never allowed to stop the queue."""
        from backend.sweeps.supervise import supervise

        try:
            supervise(self.store)
        except Exception:  # noqa: BLE001 - early stopping is an optimisation; the runs go on without it
            log.exception("sweep supervisor failed; the sweep's runs continue")

    def _spawn(self, run_id: int) -> RunProcess:
        return spawn(self.store, run_id, self.log_dir, preexec_fn=_die_with_parent)

    def run(self, *, once: bool = False, poll_s: float = 1.0, stop: Callable[[], bool] | None = None) -> None:
        """Loop forever (or, with ``once``, until the queue is empty and every child has finished; or until
        ``stop()`` is true)."""
        while not (stop is not None and stop()):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a database hiccup: dying here would take the children with us
                log.exception("worker poll failed; its runs go on, retrying in %.0f s", poll_s)
            if once and not self.children and not self.store.list_runs(status="queued", limit=1):
                return
            time.sleep(poll_s)

    def stop(self, wait_s: float = 30.0) -> None:
        """SIGTERM every child, give them ``wait_s`` seconds to checkpoint and record ``cancelled``, then
        SIGKILL what is left (its run is marked failed with that reason).

        Why wait: the children die with this process (``PR_SET_PDEATHSIG``), so returning at once would
        kill them in the middle of their last checkpoint."""
        for proc in self.children.values():
            proc.terminate()
        deadline = time.monotonic() + wait_s
        for run_id, proc in list(self.children.items()):
            try:
                code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            del self.children[run_id]
            reap(self.store, run_id, code)


def worker_main(db_url: str, concurrency: int | None = None, once: bool = False, *,
                log_dir: str | None = None, poll_s: float = 1.0, make_worker: Callable[..., Any] | None = None) -> int:
    """``python -m backend worker --db URL``: returns the process exit status. ``make_worker``: another
    Worker class (``--executor ray``: ``backend.jobs.ray_executor.RayWorker``)."""
    from storage import open_store

    from backend.jobs.signals import StopOnSignal

    store = open_store(db_url)
    worker = (make_worker or Worker)(store, concurrency=concurrency, log_dir=Path(log_dir) if log_dir else None)
    with StopOnSignal() as stop:     # SIGTERM / Ctrl-C: stop claiming, let the children end their runs
        try:
            worker.run(once=once, poll_s=poll_s, stop=stop)
        except KeyboardInterrupt:    # a second signal: do not wait for them
            worker.stop(wait_s=0)
            return 130
        if stop():
            worker.stop()
            return stop.exit_code or 130
    return 0
