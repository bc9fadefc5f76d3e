"""The worker: claims queued runs from a (shared) database and runs each in its own process.

Two workers never get the same run: ``Store.claim_next_run`` is one atomic transaction (``SKIP LOCKED``
on PostgreSQL, the write lock on SQLite). Children die with their worker (``PR_SET_PDEATHSIG``), their
heartbeats stop, and any worker's periodic ``fail_stale_runs`` marks the run failed with the reason.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from backend.jobs.runner import reap, spawn

STALE_AFTER_S = 90.0


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
        self.children: dict[int, subprocess.Popen] = {}

    def poll(self) -> list[int]:
        """Reap finished children, fail stale runs, start claimed runs in free slots; returns started ids."""
        for run_id, proc in list(self.children.items()):
            code = proc.poll()
            if code is not None:
                del self.children[run_id]
                reap(self.store, run_id, code)
        self.store.fail_stale_runs(self.stale_after_s)
        started = []
        while len(self.children) < self.concurrency:
            run_id = self.store.claim_next_run(self.name)
            if run_id is None:
                break
            self.children[run_id] = self._spawn(run_id)
            started.append(run_id)
        return started

    def _spawn(self, run_id: int) -> subprocess.Popen:
        return spawn(self.store, run_id, self.log_dir, preexec_fn=_die_with_parent)

    def run(self, *, once: bool = False, poll_s: float = 1.0) -> None:
        """Loop forever (or, with ``once``, until the queue is empty and every child has finished)."""
        while True:
            self.poll()
            if once and not self.children and not self.store.list_runs(status="queued", limit=1):
                return
            time.sleep(poll_s)

    def stop(self) -> None:
        for proc in self.children.values():
            proc.terminate()


def worker_main(db_url: str, concurrency: int | None = None, once: bool = False, *,
                log_dir: str | None = None, poll_s: float = 1.0) -> int:
    """``python -m backend worker --db URL``: returns the process exit status."""
    from storage import open_store

    store = open_store(db_url)
    worker = Worker(store, concurrency=concurrency, log_dir=Path(log_dir) if log_dir else None)
    try:
        worker.run(once=once, poll_s=poll_s)
    except KeyboardInterrupt:
        worker.stop()
        return 130
    return 0
