"""The studio's handle on the job runner: submit / cancel / resume, and a worker loop on a thread.

Training runs in child processes (``backend.jobs``: one process per run, metrics streamed to storage);
this object only claims queued runs and starts those processes, so the studio stays responsive and a
crashed run never takes the page down. The queue lives in the database, so runs queued by the CLI or by
another studio on the same database are picked up too.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from backend.config import RunConfig

log = logging.getLogger(__name__)

IDLE_POLL_S = 10.0   # full queue poll of an idle runner (reaps dead runs); news wakes it sooner
NICENESS = 10   # training children yield the CPU to the page: a keystroke preview must not wait on them


def _background_child() -> None:  # pragma: no cover - runs in the child between fork and exec
    from backend.jobs.worker import _die_with_parent

    _die_with_parent()
    try:
        os.nice(NICENESS)
    except OSError:
        pass


def _studio_worker(store: Any, **kwargs: Any) -> Any:
    """The job runner's Worker, with children started at a lower CPU priority than the studio."""
    from backend.jobs import Worker
    from backend.jobs.runner import spawn

    class StudioWorker(Worker):
        def _spawn(self, run_id: int) -> Any:
            return spawn(self.store, run_id, self.log_dir, preexec_fn=_background_child)

    return StudioWorker(store, **kwargs)


def sqlite_files(url: str) -> tuple[Path, Path] | None:
    """The database file and its write-ahead log for a ``sqlite:///`` URL; None for anything else (an
    in-memory or server database: nothing on disk to watch)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path), Path(path + "-wal")


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class JobRunner:
    """Claims queued runs and starts their processes on a daemon thread.

    Why it rarely queries while idle: a studio with nothing to do must not burn CPU. A submit or resume
    through this object wakes the loop at once; runs queued by another process (the CLI, a second studio)
    change the SQLite file, which the loop notices with two ``stat`` calls every ``poll_s``; a full poll
    (which also reaps runs whose process died) happens every ``poll_s`` while children run or the file
    changed, and every ``idle_poll_s`` otherwise. A server database (PostgreSQL) has no file to watch,
    so there the loop polls every ``poll_s``, as before."""

    def __init__(self, store: Any, *, log_dir: Path | None = None, concurrency: int | None = None,
                 poll_s: float = 1.0, idle_poll_s: float = IDLE_POLL_S, project: str | None = None,
                 executor: str = "local", ray_address: str | None = None) -> None:
        self.store = store
        self.project = project
        self.poll_s = poll_s
        self.idle_poll_s = max(poll_s, idle_poll_s)
        if executor == "ray":    # queued runs go to a Ray cluster as tasks (backend.jobs.ray_executor)
            from backend.jobs.ray_executor import RayWorker

            self.worker = RayWorker(store, address=ray_address, concurrency=concurrency, log_dir=log_dir)
        else:
            self.worker = _studio_worker(store, concurrency=concurrency, log_dir=log_dir)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._wait_s = 30.0    # how long stop() lets children checkpoint before they are killed
        self._thread: threading.Thread | None = None
        self._db_files = sqlite_files(getattr(store, "url", ""))
        self.wakeups = 0       # loop iterations (each at most two stat calls when idle)
        self.polls = 0         # full polls of the queue (database queries)

    def start(self) -> JobRunner:
        """Run the worker loop in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="studio-job-worker", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            self._claim_and_watch()
        finally:
            self._end_children()

    def _end_children(self) -> None:
        """SIGTERM the children and wait for their runs' ends, from this thread, before it returns.

        Why here: a cold child's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked it ends, and
        this thread forked it; ended first, it would SIGKILL the children before any SIGTERM (their runs
        failed "killed by SIGKILL", not cancelled after a last checkpoint)."""
        try:
            self.worker.stop(self._wait_s)
        except Exception:  # noqa: BLE001 - shutting down: say it, the reaper fails what is left
            log.exception("stopping the job runner's children failed")

    def _claim_and_watch(self) -> None:
        last_poll, stamp, woken = float("-inf"), None, True
        while not self._stop.is_set():
            self.wakeups += 1
            now = time.monotonic()
            changed = self._db_files is None or self._stamp() != stamp
            if woken or changed or self.worker.children or now - last_poll >= self.idle_poll_s:
                self.polls += 1
                try:
                    self.worker.poll()
                except Exception:  # noqa: BLE001 - a database hiccup must not stop the queue for good
                    log.exception("job worker poll failed; retrying")
                last_poll, stamp = now, self._stamp()   # after the poll: our own writes are not news
            woken = self._wake.wait(self.poll_s)
            self._wake.clear()

    def _stamp(self) -> tuple[tuple[int, int] | None, ...]:
        """What changes when any process commits to the SQLite file (the WAL file in WAL mode)."""
        return tuple(_file_stamp(p) for p in self._db_files or ())

    def submit(self, cfg: RunConfig, parent_run_id: int | None = None) -> int:
        from backend.jobs import submit

        run_id = submit(self.store, cfg, project=cfg.project or self.project,   # the session's project first
                        parent_run_id=parent_run_id)
        self._wake.set()
        return run_id

    def cancel(self, run_id: int) -> None:
        from backend.jobs import cancel

        cancel(self.store, run_id)

    def resume(self, run_id: int) -> int:
        from backend.jobs import resume

        new_id = resume(self.store, run_id)
        self._wake.set()
        return new_id

    def log_tail(self, run_id: int, lines: int = 40) -> list[str]:
        """The last lines its process printed (warnings, tracebacks); empty if it wrote nothing here."""
        if self.worker.log_dir is None:
            return []
        from backend.jobs.paths import log_file

        path = log_file(Path(self.worker.log_dir), self.store, run_id)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-lines:]

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop claiming runs and end the running children: SIGTERM, then ``wait_s`` seconds for each to
        checkpoint and record ``cancelled`` (their runs can be resumed later), then SIGKILL.

        The worker thread does that itself as it ends (``_end_children``); this waits for it."""
        self._wait_s = wait_s
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            self._end_children()
        else:
            self._thread.join(timeout=wait_s + 30)   # a poll in flight, then the children's ends (and kills)
