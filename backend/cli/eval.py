"""``python -m backend eval CONFIG``: zero-shot evaluation of a RunConfig; prints the metrics JSON.

``--predictions FILE`` is a derived output (like ``-o``): an existing file there is replaced, except one
of the run database's own files (its SQLite file and companions, its artifact folder), which is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from backend.cli.common import open_store, print_json, refuse_store_file, with_project


def _config_from(args: argparse.Namespace) -> Any:
    from backend.config import DEMO_CONFIG, RunConfig, load_config

    cfg = RunConfig.from_dict(DEMO_CONFIG) if args.config in ("demo", "builtin") else load_config(args.config)
    if getattr(args, "dtype", None):
        cfg.eval.dtype = args.dtype   # a choice of EVAL_DTYPES (argparse checked it); the run records it
    return with_project(cfg, args)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate, record the run (unless ``--no-db``) and print its metrics; 128+signal when stopped."""
    cfg = _config_from(args)          # before the heavy imports: a bad config is reported at once
    if args.limit is not None:
        cfg.data.limit = args.limit
    if args.predictions:             # before any work, and before the run is recorded
        from backend.outputs import check_output_file

        check_output_file(args.predictions, "--predictions")
        refuse_store_file(args, args.predictions, "--predictions")
    from backend.pipeline import run_zero_shot

    if args.predictions and not cfg.eval.top_k:
        cfg.eval.top_k = 5  # the predictions file shows what the model wanted to say at the mask
    from backend.jobs.signals import RunStopped, StopOnSignal

    store = open_store(args)
    with StopOnSignal() as stop:     # SIGTERM / Ctrl-C: the run records why it stopped, then we exit
        try:
            result, run_id = run_zero_shot(cfg, store=store, progress=stop.raise_if_stopped)
        except RunStopped as exc:
            sys.stderr.write(f"evaluation {exc}\n")
            return stop.exit_code or 130
    from backend.evaluate import interval_scalars

    out = dict(result.metrics, **interval_scalars(result.metrics))   # as the run records them
    out["run_id"] = run_id
    if args.predictions:
        path = Path(args.predictions)
        with path.open("w", encoding="utf-8") as f:
            for row in result.predictions:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        out["predictions_file"] = str(path)
    print_json(out)
    return 0
