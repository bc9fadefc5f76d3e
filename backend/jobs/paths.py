"""Where a run's files live: ``<root>/run-<id>`` (checkpoints, best weights, final artifacts).

One folder per run id, so several runs with the same config never share a checkpoint, and ``resume``
finds the interrupted run's checkpoint from its id alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def runs_root(store: Any, config: dict[str, Any] | None = None) -> Path:
    base = ((config or {}).get("train") or {}).get("output_dir")
    return Path(base) if base else Path(store.artifacts.root).parent / "runs"


def run_dir(store: Any, run_id: int, config: dict[str, Any] | None = None) -> Path:
    return runs_root(store, config) / f"run-{run_id}"
