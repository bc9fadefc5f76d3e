"""``python -m backend train CONFIG [--seeds ...] [--resume RUN_ID] [--db URL | --no-db]``.

Trains in this process with a progress bar on stderr and prints the result JSON on stdout. With a
database (the default), the run is recorded like a worker's run: status, metric events, artifacts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from backend.cli.common import open_store, with_project
from backend.config import SEED, load_config
from backend.errors import ConfigError
from backend.outputs import check_output_dir
from backend.schema import check
from backend.jobs.signals import StopOnSignal
from backend.training.events import MemorySink, TerminalSink
from backend.training.run import run_training
from backend.sweeps.seeds import parse_seeds, run_seeds


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume, or sweep seeds); the exit status says how the run ended (see ``_execute``)."""
    if args.resume is not None:
        return _resume(args)
    cfg = with_project(load_config(args.config), args)
    if cfg.train.output_dir:          # before any work: the weights must have somewhere to go
        check_output_dir(cfg.train.output_dir, "train.output_dir")
    # Under ``accelerate launch`` / torchrun every rank runs this command: train in this process (a
    # database run per rank would be wrong), and only rank 0 shows progress and prints the result.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    seeds = args.seeds or (",".join(str(s) for s in cfg.train.seeds) if cfg.train.seeds else None)
    if seeds:
        seeds = check(parse_seeds(seeds), list[int], "--seeds", SEED)
        store = None if args.no_db or distributed else open_store(args)   # each seed a recorded run
        out = run_seeds(cfg, seeds, sink_for_seed=lambda _s: TerminalSink(), store=store)
        print(json.dumps(out, indent=2, default=str))
        return 0
    if args.no_db or distributed:
        first = int(os.environ.get("RANK", "0")) == 0
        result = run_training(cfg, sink=TerminalSink() if first else MemorySink())
        if first:
            print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0 if result.status == "succeeded" else 1
    from backend.pipeline import load_train_dev

    load_train_dev(cfg)   # data mistakes (dev rows that are training rows...) exit 2 before a run is recorded
    with StopOnSignal() as stop:    # a SIGTERM from here on ends the run as cancelled, not as a lie
        store = open_store(args)
        from backend.jobs import submit

        return _execute(store, submit(store, cfg), stop)


def _execute(store: Any, run_id: int, stop: StopOnSignal) -> int:
    from backend.jobs.child import execute

    status = execute(store, run_id, terminal=True, stop=stop)
    info = store.get_run(run_id)
    print(json.dumps({"run_id": run_id, "status": status, "error": info.error, "metrics": info.metrics},
                     indent=2, default=str))
    if status == "failed":
        sys.stderr.write(f"run {run_id} failed: {(info.error or '').splitlines()[0] if info.error else ''}\n")
    if stop.exit_code is not None:
        sys.stderr.write(f"run {run_id} {status}: {stop.note}\n")
        return stop.exit_code
    return 0 if status in ("succeeded", "cancelled") else _failure_code(info.error)


def _failure_code(error: str | None) -> int:
    """2 when the run failed on a user error, 1 on a crash. The run records a user error (a StudioError)
    as its one-line message and a crash as ``Type: message`` followed by the traceback."""
    return 2 if error and "Traceback (most recent call last)" not in error else 1


def _resume(args: argparse.Namespace) -> int:
    """Continue a failed or cancelled run (or a ``running`` one whose process is gone: ``open_store`` has
    just marked it failed) from its last checkpoint, as a new run whose parent it is."""
    from backend.jobs import resume

    if args.no_db:
        raise ConfigError("--resume continues a run recorded in the database: leave out --no-db")
    with StopOnSignal() as stop:
        store = open_store(args)
        return _execute(store, resume(store, args.resume), stop)
