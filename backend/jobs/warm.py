"""Run children forked from a warm process that has already imported torch, transformers and PEFT.

Why: a run's own interpreter spent its first seconds importing them (7-8 s on the 2-core test VM) before
it loaded a model or trained a step, and every run of a sweep paid it again. multiprocessing's forkserver
is the standard tool for this: one single-threaded server process, started with the first run, imports
the modules once and forks a child per run, which starts with the imports done. A child is still its own
process (a crash or a ``kill -9`` takes down only its run), started at the caller's priority settings, with
its output in the run's log and the database URL handed over a socket, never in argv or the environment.

What a fork cannot redo: libraries read some environment variables once, when imported (libgomp's
``OMP_WAIT_POLICY``, huggingface_hub's offline switch and cache paths). The server keeps the environment of
the moment it started, so a run is forked only while this process's environment is still that one; after
any change a run starts cold, as a fresh interpreter (``runner.spawn``), never with stale settings. The same
for the code: a child runs what the server imported, so once the checkout's version (``git describe``, what
a run's lineage records) differs from the server's, runs start cold too.
"""
from __future__ import annotations

import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from backend.openmp import sleeping_waits

ROOT = Path(__file__).resolve().parents[2]
# what the server imports once; a module that fails to import is skipped there (the child imports it itself)
PRELOAD = ("torch", "transformers", "peft", "storage", "backend.jobs.child", "backend.training",
           "backend.methods.build", "backend.recording")
WARM_NOTE = "started warm: forked from the job server with torch and transformers already imported"


class _Server:
    """multiprocessing's forkserver is one per process, so the record of what it started with (this
    process's environment and the checkout's version) is too: the only module-level state here, and it
    mirrors the server's own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: tuple[dict[str, str], str] | None = None


_SERVER = _Server()


def available() -> bool:
    return sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()


def started() -> bool:
    """Whether this process's job server is up: a run started before it is, starts it (and waits for it)."""
    return _SERVER.state is not None


class WarmChild:
    """A forked run child behind the part of ``subprocess.Popen`` the workers use."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode        # non-blocking; negative: killed by that signal, as Popen says

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"run process {self.pid}", timeout or 0.0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


def start(run_id: int, url: str, artifacts: str, log_path: Path | None,
          preexec_fn: Callable[[], None] | None = None) -> WarmChild | None:
    """Fork ``run_id``'s child from the warm server (started, with sleeping OpenMP waits, on the first
    call); it dies with this process. None when it cannot start warm here (not Linux, or the environment
    or the checkout's version changed since the server started): start it cold then.

    As everywhere multiprocessing forks from a server, the child imports the caller's main module first:
    a script that starts runs must keep its work under ``if __name__ == "__main__":``."""
    if not available():
        return None
    from backend.recording import describe_code

    with _SERVER.lock:
        sleeping_waits()         # the server's torch must load libgomp with it (backend/openmp.py)
        state = (dict(os.environ), describe_code())
        if _SERVER.state is None:
            multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
            _SERVER.state = state
        elif state != _SERVER.state:
            return None
        process = multiprocessing.get_context("forkserver").Process(
            target=_child_main,
            # the log as the caller names it from its own folder (a cold child's is opened by the caller)
            args=(run_id, url, artifacts, str(log_path.absolute()) if log_path else None, preexec_fn, os.getpid()),
            name=f"prompt-studio-run-{run_id}", daemon=True)
        process.start()
    return WarmChild(process)


def _die_with(pid: int) -> None:
    """SIGKILL this process when process ``pid`` ends, as a cold child dies with its worker
    (``PR_SET_PDEATHSIG``): a forked child's parent is the job server, which outlives the worker while any
    of its children runs (they hold its lifeline). Waits on a pidfd; polls once a second without one."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):       # no pidfd here, or ``pid`` is gone already
            fd = None
        if fd is not None:
            select.select([fd], [], [])
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="die-with-spawner", daemon=True).start()


def _child_main(run_id: int, url: str, artifacts: str, log_path: str | None,
                preexec_fn: Callable[[], None] | None, spawner: int) -> None:   # pragma: no cover - forked child
    # daemon for the parent (its exit stops us rather than waiting for a whole run), but a run may start
    # processes of its own, which multiprocessing refuses a daemon
    multiprocessing.current_process().daemon = False
    if preexec_fn is not None:
        preexec_fn()                     # first: a lower priority is per thread, and threads inherit it
    _die_with(spawner)
    os.chdir(ROOT)                       # where a cold child runs
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(WARM_NOTE, flush=True)
    from backend.jobs.child import run

    sys.exit(run(url, artifacts, run_id))
