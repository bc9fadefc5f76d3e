"""Start a run's child process and turn an abnormal exit into a failed run with the reason."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from backend.jobs.child import DB_ENV, fail_if_running
from backend.jobs.paths import log_file
from backend.openmp import sleeping_waits

ROOT = Path(__file__).resolve().parents[2]


class RunProcess(Protocol):
    """What the workers use of a run's process: a ``subprocess.Popen`` (cold) or a ``warm.WarmChild``."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


def spawn(store: Any, run_id: int, log_dir: Path | None = None, preexec_fn: Any = None,
          warm: bool = True) -> RunProcess:
    """The process of ``run_id``: forked from the warm job server where it can be (``backend.jobs.warm``),
    else ``python -m backend.jobs.child``; ``preexec_fn`` runs in it first. Output goes to
    ``paths.log_file``."""
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_file(log_dir, store, run_id)
    if warm:
        from backend.jobs import warm as warm_start

        first = not warm_start.started()
        t0 = time.perf_counter()
        child = warm_start.start(run_id, store.url, str(store.artifacts.root), log_path, preexec_fn)
        if child is not None:   # the first one waited while the server imported torch (~5 s here)
            _record_start(store, run_id, cold=first, server_s=time.perf_counter() - t0 if first else 0.0)
            return child
    process = spawn_cold(store, run_id, log_path, preexec_fn)
    _record_start(store, run_id, cold=True)
    return process


COLD_START = "run/cold_start"   # 1: the run's process imported torch itself, or waited for the job server to
SERVER_WAIT = "run/job_server_s"   # seconds its start waited for the job server to import torch (its first run)


def _record_start(store: Any, run_id: int, *, cold: bool, server_s: float = 0.0) -> None:
    """Say on the run how its process started: the cost card prices the next run's start from runs that
    started the way it will (a cold start takes ~5 s more here), and a run that waited for the job server
    also tells what a warm start would have taken."""
    now = time.time()
    try:
        store.append_metrics(run_id, [{"key": COLD_START, "value": float(cold), "step": 0, "wall_time": now},
                                      {"key": SERVER_WAIT, "value": server_s, "step": 0, "wall_time": now}])
    except Exception:  # noqa: BLE001 - the process is started: losing its handle would orphan it; a price can wait
        logging.getLogger(__name__).warning("run %s: how its process started was not recorded", run_id, exc_info=True)


def spawn_cold(store: Any, run_id: int, log_path: Path | None = None, preexec_fn: Any = None) -> subprocess.Popen:
    """``python -m backend.jobs.child`` for ``run_id``. The database URL (and its password) goes through
    the child's environment: any user can read argv."""
    cmd = [sys.executable, "-m", "backend.jobs.child", "--run", str(run_id),
           "--artifacts", str(store.artifacts.root)]
    out: Any = subprocess.DEVNULL
    if log_path is not None:
        out = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env[DB_ENV] = store.url
    sleeping_waits(env)   # the child trains at a lower priority than whatever shares its cores
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
                            preexec_fn=preexec_fn)


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the run's process was killed by {name}" + (" (out of memory or kill -9)" if code == -9 else "")
    return f"the run's process exited with status {code}"


def reap(store: Any, run_id: int, code: int) -> str:
    """After a child exits: a run it left 'running' failed, and we say how it died; returns the run's
    status (another process's end stands: ``fail_if_running``)."""
    return fail_if_running(store, run_id, lambda _info: exit_reason(code))
