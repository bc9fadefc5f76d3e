"""One run in its own OS process: ``python -m backend.jobs.child --run ID`` (database URL in
``$PROMPT_STUDIO_DB_URL``, or ``--db URL``).

Why a process per run: a crash, an out-of-memory kill or a ``kill -9`` takes down only this run; the
worker (or the studio) that started it sees the exit and marks the run failed with the reason. The
child sends heartbeats, reads the cancel flag before every optimizer step, streams metric events to
storage, and at the end attaches the trained files to the run as artifacts.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from backend.liveness import keep_alive
from backend.jobs.signals import StopOnSignal

log = logging.getLogger(__name__)
DB_ENV = "PROMPT_STUDIO_DB_URL"   # the database URL of a cold child: in its environment, never in argv (ps shows argv)


class CancelFlag:
    """``cancel_requested`` read from the database, at most every ``min_interval_s`` seconds; ``also``
    (a stop signal's flag) cancels too, without a database read."""

    def __init__(self, store: Any, run_id: int, min_interval_s: float = 0.2,
                 also: Callable[[], bool] | None = None) -> None:
        self.store, self.run_id, self.min_interval_s = store, run_id, min_interval_s
        self.also = also
        self._last = 0.0
        self._value = False

    def __call__(self) -> bool:
        if self.also is not None and self.also():
            return True
        now = time.monotonic()
        if not self._value and now - self._last >= self.min_interval_s:
            self._last = now
            self._value = self.store.cancel_requested(self.run_id)
        return self._value


def attach_outputs(store: Any, run_id: int, out_dir: Path) -> None:
    """Every file of the final folder (and the result) becomes an artifact of the run."""
    final = out_dir / "final"
    for path in sorted(p for p in final.rglob("*") if p.is_file()):
        kind = "adapter" if "adapter" in path.relative_to(final).parts else "weights"
        if path.suffix == ".json":
            kind = "config" if path.name == "run.json" else kind
        store.attach_artifact(run_id, kind, str(path.relative_to(final)), path)
    if (out_dir / "result.json").exists():
        store.attach_artifact(run_id, "report", "result.json", out_dir / "result.json")


def execute(store: Any, run_id: int, *, terminal: bool = False, stop: StopOnSignal | None = None,
            claimed: bool = False) -> str:
    """Run ``run_id`` here if this process owns it; returns its final status (or, when it does not own
    it, the status the run has, untouched).

    Who owns it: ``claimed`` says the caller holds the run's claim (the worker that claimed it and
    started this child, a Ray task after ``start_queued``, the CLI that created it ``running``); then it
    must still be ``running``. Otherwise a queued run is claimed here (queued -> running, checked under
    the row lock). Why refuse the rest: a run another process claimed, or one already ended (reaped,
    cancelled), trained here too would be two processes writing one record.

    Heartbeats go out while it runs (from before the heavy imports: a slow start must not look like a
    dead process). SIGTERM / SIGINT (caught here, or by the caller's ``stop``) end it as ``cancelled``
    after a last checkpoint, with the signal in its history.
    """
    from storage.errors import InvalidTransition

    info = store.get_run(run_id)
    owned = info.status == "running" if claimed else False
    if not claimed and info.status == "queued":
        try:
            info, owned = store.set_status(run_id, "running"), True
        except InvalidTransition:    # claimed (or cancelled) by another process since the read
            info = store.get_run(run_id)
    if not owned:
        log.warning("run %s is %s%s: not running it here", run_id, info.status,
                    f" (worker {info.worker}, host {info.host}, pid {info.pid})" if info.status == "running" else "")
        return info.status
    with keep_alive(store, run_id), (stop or StopOnSignal()) as stop:
        return _execute(store, run_id, info, terminal, stop)


def _execute(store: Any, run_id: int, info: Any, terminal: bool, stop: StopOnSignal) -> str:
    from backend.config import RunConfig
    from backend.errors import StudioError
    from backend.jobs.paths import existing_run_dir, run_dir
    from backend.training import TerminalSink

    from backend.workbench.jobbase import job_runner

    workbench_job = job_runner(info.method)   # a prompt comparison or a template search, not a training run
    if workbench_job is not None:
        return workbench_job(store, run_id, should_stop=CancelFlag(store, run_id, also=stop))
    out_dir = run_dir(store, run_id, info.config)
    resume = None
    if info.parent_run_id is not None and "resume" in info.tags:
        parent = existing_run_dir(store, info.parent_run_id, store.get_run(info.parent_run_id).config)
        if parent.exists() and not out_dir.exists():
            shutil.copytree(parent, out_dir)
        resume = out_dir
    try:
        cfg = RunConfig.from_dict(info.config)
    except StudioError as exc:
        store.set_status(run_id, "failed", error=str(exc))
        return "failed"
    if resume is None:
        cfg.train.output_dir = str(out_dir)
    try:
        return train_recorded(store, run_id, cfg, out_dir=out_dir, echo=TerminalSink() if terminal else None,
                              cancel_check=CancelFlag(store, run_id, also=stop), note=stop,
                              resume_from=resume).status
    except BaseException:  # noqa: BLE001 - train_recorded has recorded it on the run
        return "failed"


def train_recorded(store: Any, run_id: int, cfg: Any, *, out_dir: Path, echo: Any = None,
                   note: StopOnSignal | None = None, **kwargs: Any) -> Any:
    """``run_training`` for a recorded run (job child, CLI, sweep): its lineage written when the model is
    loaded (``backend.recording``), metric events streamed to storage, the trained files attached, the
    final status set (``note``: a stop signal to name in its history). Any error marks the run failed (a
    user error by its message, a crash with its traceback) and is raised again; returns the TrainResult."""
    from storage.sink import StoreSink

    from backend.errors import StudioError
    from backend.training import TeeSink, run_training
    from backend.training.run import recorder

    sink = StoreSink(store, run_id, flush_every=20, flush_interval_s=1.0)
    try:
        result = run_training(cfg, sink=TeeSink(sink, echo), record=recorder(store, run_id, cfg), **kwargs)
        sink.flush()
        attach_outputs(store, run_id, out_dir)
        store.set_status(run_id, result.status, note=_end_note(store, run_id, cfg, result.status, note))
        return result
    except StudioError as exc:
        _fail(store, sink, run_id, str(exc))
        raise
    except BaseException as exc:  # noqa: BLE001 - record any crash on the run before raising it again
        _fail(store, sink, run_id, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        raise


def _end_note(store: Any, run_id: int, cfg: Any, status: str, note: StopOnSignal | None) -> str | None:
    """What the history says about the end: the stop signal, or why a sweep stopped the run (ASHA at a
    rung, or its configuration stopped from the table: ``backend.sweeps.asha.stop_reason``)."""
    if note is not None and note():
        return note.note
    sweep = getattr(cfg, "sweep", None)
    if status != "cancelled" or not sweep:
        return None
    from backend.sweeps.asha import early_stop_metric, stop_reason

    return stop_reason(store.get_run(run_id).metrics, early_stop_metric(sweep))


def _fail(store: Any, sink: Any, run_id: int, message: str) -> None:
    try:
        sink.flush()
    finally:
        fail_if_running(store, run_id, lambda _info: message)


def fail_if_running(store: Any, run_id: int, error: Callable[[Any], str]) -> str:
    """Fail ``run_id`` with ``error(info)`` if it is still ``running``; returns the status it ends with.

    Why the InvalidTransition is caught: the read and the write are two transactions, and in between
    another process may end the run (a reaper failing it, its own process recording its end). That end
    stands (the record is the truth); raising here would instead stop the caller (a worker's poll loop,
    whose other children would die with it)."""
    from storage.errors import InvalidTransition

    info = store.get_run(run_id)
    if info.status != "running":
        return info.status
    try:
        return store.set_status(run_id, "failed", error=error(info)).status
    except InvalidTransition:
        status = store.get_run(run_id).status
        log.info("run %s was ended as %s by another process before this one recorded its end", run_id, status)
        return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backend.jobs.child")
    p.add_argument("--db", help=f"database URL (default: ${DB_ENV}, how the runner passes it: a password on "
                                "the command line would show in ps)")
    p.add_argument("--artifacts")
    p.add_argument("--run", type=int, required=True)
    args = p.parse_args(argv)
    url = args.db or os.environ.get(DB_ENV)
    if not url:
        p.error(f"no database: pass --db or set {DB_ENV}")
    return run(url, args.artifacts, args.run)


def run(url: str, artifacts: str | None, run_id: int) -> int:
    """The child's work, cold (``main``) or forked warm (``backend.jobs.warm``); returns its exit status."""
    from storage import open_store

    store = open_store(url, Path(artifacts) if artifacts else None)
    with StopOnSignal() as stop:     # from the start: a SIGTERM while loading still ends the run cleanly
        status = execute(store, run_id, stop=stop, claimed=True)   # its worker claimed the run for it
    if stop.exit_code is not None:
        return stop.exit_code
    return 0 if status in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
