"""``python -m backend``: preview, eval, train, worker, predict — the engine's one command-line front end.

This package is the only place that parses command lines; each command lives in its own module
(``preview``, ``eval``, ``train``, ``serve``) and is imported only when it runs, so ``--help`` and argument
mistakes never load torch. The engine never imports this package.

Every user error prints one clear line (``error: template: unknown key 'placehoder' (characters 0-22)``)
and exits with status 2; output meant for programs is JSON on stdout, and everything else (progress, the
engine's INFO notes such as a first-time model conversion) goes to stderr, so ``... > out.json`` is clean.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any, Callable, Sequence

from backend.choices import DEFAULT_MODEL, EVAL_DTYPES, KINDS, TRUNCATE_METHODS
from backend.cli.executor import add_executor_options
from backend.errors import StudioError

# command -> module of backend.cli holding ``cmd_<command>``
COMMANDS = {"preview": "preview", "eval": "eval", "train": "train", "worker": "serve", "predict": "serve",
            "compare": "workbench", "search-words": "workbench", "kpt": "workbench",
            "search-templates": "workbench", "sweep": "sweep"}


def command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs ``python -m backend NAME``, its module imported now (not at ``--help``)."""
    module = importlib.import_module(f"backend.cli.{COMMANDS[name]}")
    return getattr(module, f"cmd_{name.replace('-', '_')}")


def _at_least(low: int) -> Any:
    """An argparse type: a whole number >= ``low`` (argparse reports anything else, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _record_options(parser: argparse.ArgumentParser, db_help: str) -> None:
    parser.add_argument("--db", help=db_help)
    parser.add_argument("--no-db", action="store_true", help="do not record anything")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend", description="Prompt Studio engine")
    sub = p.add_subparsers(dest="command", required=True)

    pv = sub.add_parser("preview", help="parse, wrap and encode examples; one JSON line per example")
    pv.add_argument("--template", required=True)
    pv.add_argument("--example", help="one example as JSON {guid,text_a,text_b,label,meta}")
    pv.add_argument("--examples", help="a JSONL/CSV/TSV/Parquet file of examples")
    pv.add_argument("--model", default=DEFAULT_MODEL)
    pv.add_argument("--profile", choices=KINDS, help="default: from the model")
    pv.add_argument("--max-length", type=_at_least(8), default=256)
    pv.add_argument("--truncate", default="tail", choices=TRUNCATE_METHODS)

    ev = sub.add_parser("eval", help="zero-shot evaluation of a RunConfig (JSON/YAML); prints metrics JSON")
    ev.add_argument("config", help="config file, or 'demo' for the built-in demo")
    ev.add_argument("--predictions", help="write per-example predictions (JSONL) here; replaces an existing "
                    "file (a derived output), never the run database's own files")
    ev.add_argument("--limit", type=_at_least(1), help="evaluate only the first N examples")
    ev.add_argument("--db", help="SQLAlchemy URL of the run database (default: the studio's)")
    ev.add_argument("--no-db", action="store_true", help="do not record the run")

    tr = sub.add_parser("train", help="train a RunConfig's method; prints the result JSON")
    tr.add_argument("config")
    tr.add_argument("--db")
    tr.add_argument("--no-db", action="store_true")
    tr.add_argument("--seeds", help="comma-separated few-shot seeds, e.g. 13,21,42,87,100")
    tr.add_argument("--resume", type=int, help="resume run RUN_ID from its last checkpoint")
    add_executor_options(tr)

    wk = sub.add_parser("worker", help="claim and run queued runs from a shared database")
    wk.add_argument("--db", required=True)
    wk.add_argument("--concurrency", type=_at_least(1), help="runs at a time (default 1; with --executor ray: "
                                                            "runs in flight on the cluster, default its CPUs)")
    wk.add_argument("--once", action="store_true", help="exit when the queue is empty")
    add_executor_options(wk)

    pr = sub.add_parser("predict", help="class probabilities for text with one or more trained runs")
    pr.add_argument("--run", action="append", type=int, required=True)
    pr.add_argument("--text", action="append", required=True)
    pr.add_argument("--text-b")
    pr.add_argument("--db")

    cp = sub.add_parser("compare", help="score templates x verbalizers on the config's evaluation rows "
                                        "(paired 95%% intervals, McNemar against --baseline)")
    cp.add_argument("config")
    cp.add_argument("--template", action="append", help="a template to compare (repeat); default: the config's")
    cp.add_argument("--verbalizer", action="append",
                    help="label words as JSON or a file (repeat); default: the config's")
    cp.add_argument("--baseline", type=_at_least(0), default=0, help="index of the combination to test against")
    cp.add_argument("--limit", type=_at_least(1), help="compare on the first N evaluation rows")
    _record_options(cp, "record every combination as a run, grouped by a tag (default: the studio's database)")
    sw = sub.add_parser("search-words", help="automatic label words from the config's training rows")
    sw.add_argument("config")
    sw.add_argument("--pool", type=_at_least(1), default=50, help="most likely tokens per class considered")
    sw.add_argument("--keep", type=_at_least(1), default=5, help="candidates per class kept for the joint search")
    _record_options(sw, "record the search as a run (its rows and words; default: the studio's database)")
    sp = sub.add_parser("sweep", help="a grid / sample of configurations x seeds as queued runs, worked here "
                                      "(ASHA early stopping if the spec asks); prints the mean ± std table")
    sp.add_argument("spec", help="sweep spec (YAML/JSON): base, grid, seeds, sample, early_stop, name")
    sp.add_argument("--db")
    sp.add_argument("--concurrency", type=_at_least(1), default=1, help="runs at a time (default 1)")
    sp.add_argument("--queue-only", action="store_true", help="queue the runs for the studio or a worker; exit")
    sp.add_argument("--csv", help="also write the final table as CSV here; replaces an existing file, never "
                    "the database's own files")
    add_executor_options(sp, "through Ray Tune with its ASHA scheduler")
    kp = sub.add_parser("kpt", help="knowledgeable verbalizer: the config's words expanded and refined")
    kp.add_argument("config")
    kp.add_argument("--neighbours", type=_at_least(1), default=20, help="embedding neighbours per class")
    st = sub.add_parser("search-templates", help="template candidates (pattern families, the model's own "
                                                 "rephrasings) ranked on the evaluation rows by successive halving")
    st.add_argument("config")
    st.add_argument("--task", default="", help="the task's noun the patterns use, e.g. sentiment, topic")
    st.add_argument("--rephrasings", type=_at_least(0), default=8, help="rewrites asked of an instruction model")
    st.add_argument("--budget", type=float, default=5.0, help="cost cap in full evaluations of the rows (default 5)")
    st.add_argument("--keep", type=_at_least(1), default=3, help="best templates kept to the last round")
    st.add_argument("--limit", type=_at_least(1), help="rank on the first N evaluation rows")
    st.add_argument("--seed", type=_at_least(0), default=0)
    st.add_argument("--extra", action="append", help="another template to rank with the rest (repeat)")
    st.add_argument("--compare", action="store_true",
                    help="rank on half of the evaluation rows, then compare the config's template and the best on "
                         "the other half (paired intervals, McNemar), as the studio's 'search, then compare'")
    _record_options(st, "record the search (and its comparison) as runs (default: the studio's database)")
    for name in ("eval", "compare", "search-words", "kpt", "search-templates"):   # they load the model themselves
        sub.choices[name].add_argument("--dtype", choices=EVAL_DTYPES, help="the model's dtype (eval.dtype): auto "
                                       "(bf16 on a GPU, fp32 on a CPU), float32, bfloat16 (fast on CPUs with AMX), "
                                       "float16 (GPU only)")
    from backend.cli.common import add_project_option

    add_project_option(sub)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _notes_to_stderr() -> None:
    """The engine's INFO notes (``logging.getLogger("backend...")``) as plain lines on stderr, once."""
    logger = logging.getLogger("backend")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    _notes_to_stderr()
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return int(command(args.command)(args) or 0)
    except StudioError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - storage and other layers' typed errors
        if type(exc).__module__.startswith("storage"):
            sys.stderr.write(f"error: {exc}\n")
            return 2
        raise
