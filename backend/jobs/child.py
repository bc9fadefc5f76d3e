"""One run in its own OS process: ``python -m backend.jobs.child --db URL --run ID``.

Why a process per run: a crash, an out-of-memory kill or a ``kill -9`` takes down only this run; the
worker (or the studio) that started it sees the exit and marks the run failed with the reason. The
child sends heartbeats, reads the cancel flag before every optimizer step, streams metric events to
storage, and at the end attaches the trained files to the run as artifacts.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from backend.jobs.liveness import keep_alive
from backend.jobs.signals import StopOnSignal


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


def execute(store: Any, run_id: int, *, terminal: bool = False, stop: StopOnSignal | None = None) -> str:
    """Run ``run_id`` here (status must be queued or running); returns its final status.

    Heartbeats go out while it runs (from before the heavy imports: a slow start must not look like a
    dead process). SIGTERM / SIGINT (caught here, or by the caller's ``stop``) end it as ``cancelled``
    after a last checkpoint, with the signal in its history.
    """
    info = store.get_run(run_id)
    if info.status == "queued":
        store.set_status(run_id, "running")
    with keep_alive(store, run_id), (stop or StopOnSignal()) as stop:
        return _execute(store, run_id, info, terminal, stop)


def _execute(store: Any, run_id: int, info: Any, terminal: bool, stop: StopOnSignal) -> str:
    from storage.sink import StoreSink

    from backend.config import RunConfig
    from backend.errors import StudioError
    from backend.jobs.paths import run_dir
    from backend.training import TeeSink, TerminalSink, run_training

    out_dir = run_dir(store, run_id, info.config)
    resume = None
    if info.parent_run_id is not None and "resume" in info.tags:
        parent = run_dir(store, info.parent_run_id, store.get_run(info.parent_run_id).config)
        if parent.exists() and not out_dir.exists():
            shutil.copytree(parent, out_dir)
        resume = out_dir
    sink = StoreSink(store, run_id, flush_every=20, flush_interval_s=1.0)
    try:
        cfg = RunConfig.from_dict(info.config)
        if resume is None:
            cfg.train.output_dir = str(out_dir)
        result = run_training(cfg, sink=TeeSink(sink, TerminalSink() if terminal else None),
                              cancel_check=CancelFlag(store, run_id, also=stop), resume_from=resume)
        sink.flush()
        attach_outputs(store, run_id, out_dir)
        store.set_status(run_id, result.status, note=stop.note if stop() else None)
        return result.status
    except StudioError as exc:
        _fail(store, sink, run_id, str(exc))
        return "failed"
    except BaseException as exc:  # noqa: BLE001 - record any crash on the run before exiting
        _fail(store, sink, run_id, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        return "failed"


def _fail(store: Any, sink: Any, run_id: int, message: str) -> None:
    try:
        sink.flush()
    finally:
        if store.get_run(run_id).status == "running":
            store.set_status(run_id, "failed", error=message)


def main(argv: list[str] | None = None) -> int:
    from storage import open_store

    p = argparse.ArgumentParser(prog="python -m backend.jobs.child")
    p.add_argument("--db", required=True)
    p.add_argument("--artifacts")
    p.add_argument("--run", type=int, required=True)
    args = p.parse_args(argv)
    store = open_store(args.db, Path(args.artifacts) if args.artifacts else None)
    with StopOnSignal() as stop:     # from the start: a SIGTERM while loading still ends the run cleanly
        status = execute(store, args.run, stop=stop)
    if stop.exit_code is not None:
        return stop.exit_code
    return 0 if status in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
