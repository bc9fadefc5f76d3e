"""``python -m backend sweep SPEC.yaml [--db URL] [--project NAME] [--concurrency N] [--queue-only] [--csv FILE]``.

Queues the sweep's trials as recorded runs tagged ``sweep:<name>`` (the studio's sweep designer writes
the same records) and, unless ``--queue-only``, works the queue here until the sweep has ended, with ASHA
early stopping when the spec asks for it. One line per change of the table on stderr; the final table
as JSON on stdout (and as CSV with ``--csv``: a derived output that replaces an existing file, except one
of the database's own files, refused before anything is queued). Ctrl-C / SIGTERM: the running trials end
cancelled after a last checkpoint, the queued ones are cancelled; the exit status is then 128 + the signal.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from backend.cli.common import open_store, print_json, refuse_store_file


def cmd_sweep(args: argparse.Namespace) -> int:
    from backend.cli.executor import on_ray
    from backend.jobs.signals import StopOnSignal
    from backend.outputs import check_output_dir
    from backend.sweeps.expand import expand
    from backend.sweeps.local import check_new, queue_sweep, run_sweep
    from backend.sweeps.spec import load_spec
    from backend.sweeps.table import to_csv

    ray = on_ray(args)
    spec = load_spec(args.spec)
    if args.project:                       # every trial's config names it: its runs and versions live there
        spec.base["project"] = args.project
    project = spec.base.get("project")
    trials = expand(spec)                  # every configuration parses before anything is queued
    if args.csv:
        check_output_dir(str(Path(args.csv).parent), "--csv")
        refuse_store_file(args, args.csv, "--csv")
    _check_data(trials)
    store = open_store(args)
    check_new(store, spec)
    if args.queue_only:
        ids = queue_sweep(store, spec, trials=trials, project=project)
        print_json({"sweep": spec.name, "runs": ids, "queued": len(ids)})
        return 0
    sys.stderr.write(f"sweep {spec.name}: {len(trials)} runs ({len({t.key for t in trials})} configurations x "
                     f"{len(spec.seeds)} seeds)" + (", ASHA early stopping" if spec.early_stop else "") + "\n")
    with StopOnSignal() as stop:
        if ray:
            from backend.sweeps.ray_tune import run_sweep_ray

            out = run_sweep_ray(store, spec, args.ray_address, stop=stop, on_change=_echo, project=project)
        else:
            out = run_sweep(store, spec, concurrency=args.concurrency, stop=stop, on_change=_echo,
                            project=project)
    table = [{k: v for k, v in row.items() if k != "config"} for row in out["table"]]
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        Path(args.csv).write_text(to_csv(out["table"]), encoding="utf-8")
    print_json({"sweep": out["sweep"], "runs": out["runs"], "table": table})
    if stop.exit_code is not None:
        sys.stderr.write(f"sweep {spec.name}: {stop.note}\n")
        return stop.exit_code
    return 0 if all(row["failed"] == 0 for row in table) else 1


def _check_data(trials: list[Any]) -> None:
    """Each distinct data setting loads before a run is queued (a missing file or dev rows that are
    training rows exit 2 now, not as N failed runs)."""
    import json

    from backend.pipeline import load_train_dev

    seen = set()
    for t in trials:
        key = json.dumps(t.config.to_dict()["data"], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            load_train_dev(t.config)


def _echo(table: list[dict[str, Any]]) -> None:
    """One line a configuration: mean ± std of the finished seeds (n/a below two), and what is still going."""
    sys.stderr.write("\n".join(_line(row) for row in table) + "\n---\n")
    sys.stderr.flush()


def _line(row: dict[str, Any]) -> str:
    """One row as text; one seed shows no std (``score_text``: a "± 0.0000" would pass for stability)."""
    from backend.sweeps.table import score_text

    score = score_text(row) if row["mean"] is not None else "   -   "
    state = ", ".join(f"{row[k]} {k}" for k in ("running", "queued", "stopped", "failed") if row[k])
    return f"{row['rank']:>3}. {score}  ({row['finished']}/{row['seeds']} seeds{', ' + state if state else ''})  {row['key']}"
