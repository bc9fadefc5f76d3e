"""Submitting, cancelling and resuming runs: thin calls on the store that the CLI and studio share."""
from __future__ import annotations

from typing import Any, Iterable

from backend.config import RunConfig
from backend.errors import ConfigError

RESUMABLE = ("failed", "cancelled")


def submit(store: Any, config: RunConfig | dict[str, Any], *, tags: Iterable[str] = (),
           parent_run_id: int | None = None, project: str | None = None) -> int:
    """Queue a run (validated first, so a bad config never reaches a worker)."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    return store.create_run(cfg.to_dict(), method=cfg.method.name, seed=cfg.train.seed, model_id=cfg.model,
                            tags=list(tags) + list(cfg.tags), parent_run_id=parent_run_id, project=project)


def cancel(store: Any, run_id: int) -> None:
    """Queued runs are cancelled at once; a running one stops before its next optimizer step."""
    store.request_cancel(run_id)


def resume(store: Any, run_id: int) -> int:
    """Queue a continuation of a failed or cancelled run (or of a running one whose process is gone,
    marked failed first) from its last checkpoint.

    The interrupted run keeps its status and history; the continuation is a new run whose parent is the
    old one (tagged ``resume``), so "what happened" stays answerable.
    """
    info = store.get_run(run_id)
    if info.status == "running":        # its process may be gone: then it is failed, and resumable
        store.reap_dead_runs()
        info = store.get_run(run_id)
    if info.status == "running":
        raise ConfigError(f"run {run_id} is running (host {info.host}, pid {info.pid}, still alive); cancel "
                          "it first: only failed or cancelled runs can be resumed", field="run")
    if info.status not in RESUMABLE:
        raise ConfigError(f"run {run_id} is {info.status}; only failed or cancelled runs can be resumed",
                          field="run")
    tags = [t for t in info.tags if t != "resume"] + ["resume"]
    return store.create_run(info.config, method=info.method, seed=info.seed, model_id=info.model_id,
                            tags=tags, parent_run_id=run_id, project=info.project)
