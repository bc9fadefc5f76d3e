"""Submitting, cancelling and resuming runs: thin calls on the store that the CLI and studio share."""
from __future__ import annotations

from typing import Any, Iterable

from backend.config import RunConfig
from backend.errors import ConfigError

RESUMABLE = ("failed", "cancelled")


def submit(store: Any, config: RunConfig | dict[str, Any], *, tags: Iterable[str] = (),
           parent_run_id: int | None = None, project: str | None = None, status: str = "queued") -> int:
    """Queue a run (validated first, so a bad config never reaches a worker: its options, and that
    ``train.output_dir`` can be written, since the worker that starts it may be much later).

    The run starts with what is known now (the model it names, and its template and verbalizer versions
    when the label words do not depend on the data); the process that runs it writes the model and rows it
    actually loaded (``backend.recording.record_started``). ``status="running"``: the caller runs it
    right away, in this process (a sweep's seeds), so no worker may claim it."""
    from backend.outputs import check_output_dir

    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    if cfg.train.output_dir:
        check_output_dir(cfg.train.output_dir, "train.output_dir")
    project = project or cfg.project       # the run and its versions live in one project
    tv, vv = _versions(store, cfg, project)
    return store.create_run(cfg.to_dict(), method=cfg.method.name, seed=cfg.train.seed, model_id=cfg.model,
                            template_version_id=tv, verbalizer_version_id=vv,
                            tags=list(tags) + list(cfg.tags), parent_run_id=parent_run_id, project=project,
                            status=status)


def _versions(store: Any, cfg: RunConfig, project: str | None) -> tuple[int | None, int | None]:
    """The template and verbalizer versions a queued run shows until it starts (open-vocabulary label
    words need the rows: those are recorded when it starts)."""
    from backend.errors import StudioError
    from backend.pipeline import build_verbalizer
    from backend.recording import save_versions

    try:
        verb = build_verbalizer(cfg.verbalizer, cfg.data.label_names or [], files=True)
    except StudioError:
        return None, None
    return save_versions(store, cfg, verb, project=project)


def cancel(store: Any, run_id: int) -> None:
    """Queued runs are cancelled at once; a running one stops before its next optimizer step."""
    store.request_cancel(run_id)


def resume(store: Any, run_id: int, *, status: str = "queued") -> int:
    """Queue a continuation of a failed or cancelled run (or of a running one whose process is gone,
    marked failed first) from its last checkpoint. ``status="running"``: the caller runs it right away,
    in this process (``train --resume``), so no worker may claim it.

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
                            model_revision=info.model_revision, template_version_id=info.template_version_id,
                            verbalizer_version_id=info.verbalizer_version_id, tags=tags, parent_run_id=run_id,
                            project=info.project, status=status)
