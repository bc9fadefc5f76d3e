"""``python -m backend train CONFIG [--seeds ...] [--resume RUN_ID] [--db URL | --no-db]``.

Trains in this process with a progress bar on stderr and prints the result JSON on stdout. With a
database (the default), the run is recorded like a worker's run: status, metric events, artifacts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
import time
from typing import Any

from backend.cli.common import open_store, with_project
from backend.cli.executor import on_ray
from backend.config import SEED, load_config
from backend.errors import ConfigError
from backend.outputs import check_output_dir
from backend.schema import check
from backend.jobs.signals import StopOnSignal
from backend.sweeps.seeds import parse_seeds


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume, or sweep seeds); the exit status says how the run ended (see ``_execute``)."""
    ray = on_ray(args)
    if args.resume is not None:
        return _resume(args)
    cfg = with_project(load_config(args.config), args)
    if cfg.train.output_dir:          # before any work: the weights must have somewhere to go
        check_output_dir(cfg.train.output_dir, "train.output_dir")
    # Under ``accelerate launch`` / torchrun every rank runs this command: train in this process (a
    # database run per rank would be wrong), and only rank 0 shows progress and prints the result.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    seeds = args.seeds or (",".join(str(s) for s in cfg.train.seeds) if cfg.train.seeds else None)
    if seeds and ray:
        raise ConfigError("several seeds on Ray run as a sweep: python -m backend sweep SPEC --executor ray "
                          "(seeds: [...] in the spec)", field="--seeds")
    if args.no_db and not distributed and not cfg.train.output_dir:
        cfg = _unrecorded_output(cfg)
    if seeds:
        seeds = check(parse_seeds(seeds), list[int], "--seeds", SEED)
        store = None if args.no_db or distributed else open_store(args)   # each seed a recorded run
        return _train_seeds(cfg, seeds, store)
    if ray and (args.no_db or distributed):
        raise ConfigError("a run on Ray comes back through its record in the database: leave out --no-db "
                          "(and run it outside accelerate / torchrun)", field="--executor")
    if args.no_db or distributed:
        return _train_here(cfg, first=int(os.environ.get("RANK", "0")) == 0)
    from backend.pipeline import load_train_dev

    load_train_dev(cfg)   # data mistakes (dev rows that are training rows...) exit 2 before a run is recorded
    with StopOnSignal() as stop:    # a SIGTERM from here on ends the run as cancelled, not as a lie
        store = open_store(args)
        from backend.jobs import submit

        if ray:        # the Ray task claims it (queued -> running) from its own process
            return _execute_on_ray(store, submit(store, cfg), args, stop)
        return _execute(store, submit(store, cfg, status="running"), stop)


def _unrecorded_output(cfg: Any) -> Any:
    """An unrecorded run (``--no-db``) without ``train.output_dir`` writes in the studio's home
    (``runs/unrecorded-<time>-<random>``), said on stderr: its weights are its only trace, and a temp
    folder would keep them, unnamed, where nobody looks or cleans."""
    from storage import default_home

    name = f"unrecorded-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    out = default_home() / "runs" / name
    sys.stderr.write(f"weights and checkpoints go to {out}\n")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, output_dir=str(out)))


def _train_seeds(cfg: Any, seeds: list[int], store: Any) -> int:
    from backend.sweeps.seeds import run_seeds
    from backend.training.events import TerminalSink

    out = run_seeds(cfg, seeds, sink_for_seed=lambda _s: TerminalSink(), store=store)
    print(json.dumps(out, indent=2, default=str))
    return 0


def _train_here(cfg: Any, first: bool) -> int:
    """Unrecorded (``--no-db``), or one rank of a distributed run: only the first shows progress and
    prints the result."""
    from backend.training.events import MemorySink, TerminalSink
    from backend.training.run import run_training

    result = run_training(cfg, sink=TerminalSink() if first else MemorySink())
    if first:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.status == "succeeded" else 1


def _execute(store: Any, run_id: int, stop: StopOnSignal) -> int:
    """Train ``run_id``, created ``running`` by this process. Why not ``queued`` and then run: between the
    two, a studio or worker on the same database could claim it, and both would train one record."""
    from backend.jobs.child import execute

    status = execute(store, run_id, terminal=True, stop=stop, claimed=True)
    return _report(store, run_id, status, stop)


def _execute_on_ray(store: Any, run_id: int, args: argparse.Namespace, stop: StopOnSignal) -> int:
    """The run as a Ray task (``backend.jobs.ray_executor``): the same record, progress in the studio."""
    from backend.jobs.ray_executor import run_on_ray

    where = args.ray_address or "a local Ray instance"
    sys.stderr.write(f"run {run_id}: on {where}; its progress is in the run's record (the studio's Runs tab)\n")
    return _report(store, run_id, run_on_ray(store, run_id, args.ray_address, stop=stop), stop)


def _report(store: Any, run_id: int, status: str, stop: StopOnSignal) -> int:
    """The result JSON on stdout; the exit status says how the run ended."""
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
        if on_ray(args):
            return _execute_on_ray(store, resume(store, args.resume), args, stop)
        return _execute(store, resume(store, args.resume, status="running"), stop)
