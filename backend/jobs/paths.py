"""Where a run's files live: ``<root>/run-<id>-<uid>`` (checkpoints, best weights, final artifacts).

One folder per run, so several runs with the same config never share a checkpoint, and ``resume`` finds
the interrupted run's checkpoint from its record alone. Why the uid in the name, not the id only: ids
count up per database, and two databases can share one root (two SQLite files in a folder, the default
file and a PostgreSQL studio on one home, a database deleted and started again): ``run-7`` of one would
then resume from, or attach as its own weights, the files of the other's run 7.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

UID_CHARS = 12     # of the run's uuid4: 48 bits, enough to tell runs sharing an id apart


def runs_root(store: Any, config: dict[str, Any] | None = None) -> Path:
    base = ((config or {}).get("train") or {}).get("output_dir")
    return Path(base) if base else Path(store.artifacts.root).parent / "runs"


def folder_name(run_id: int, uid: str) -> str:
    return f"run-{int(run_id)}-{uid[:UID_CHARS]}"


def run_dir(store: Any, run_id: int, config: dict[str, Any] | None = None) -> Path:
    return runs_root(store, config) / folder_name(run_id, store.get_run(run_id).uid)


def log_file(log_dir: Path, store: Any, run_id: int) -> Path:
    """``<log_dir>/run-<id>-<uid>.log``: what its process printed. The uid for the same reason as the run's
    folder: a database deleted and started again would otherwise append run 1's output to the old run 1's
    log, and the run card would show the old run's traceback as this one's."""
    return Path(log_dir) / f"{folder_name(run_id, store.get_run(run_id).uid)}.log"


def existing_run_dir(store: Any, run_id: int, config: dict[str, Any] | None = None) -> Path:
    """The folder run ``run_id`` trained in: its own, else the ``run-<id>`` of a run from before folders
    carried the uid (what a resume of such a run continues from)."""
    own = run_dir(store, run_id, config)
    legacy = own.parent / f"run-{int(run_id)}"
    return legacy if not own.exists() and legacy.exists() else own
