"""What every workbench job shares (a prompt comparison, a template or label-word search, a soft-prompt
ensemble): a run of its own method, queued in the database and run by the job runner's child process (or
in the caller's process when there is no runner), its spec and result as JSON artifacts, progress as
metric events, and an end recorded on the run whatever happens.

Why jobs and not requests: scoring many prompts on a few hundred rows takes minutes on a CPU. In a
request it held the model, blocked the page and was lost on a refresh; as a job it runs beside the page,
can be cancelled between two batches, and any page (refreshed, or a second browser) reads where it
stands from storage.
"""
from __future__ import annotations

import importlib
import json
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from backend.errors import ConfigError
from backend.liveness import keep_alive

log = logging.getLogger(__name__)

SPEC_WAIT_S = 30.0       # a child may claim the run between its creation and the spec's attachment
ENDED = ("succeeded", "failed", "cancelled")

# a job run's method -> "module:function" that runs it (store, run_id, *, should_stop) -> final status
RUNNERS = {"comparison": "backend.workbench.job:run_comparison_job",
           "template-search": "backend.workbench.search_job:run_template_search_job",
           "label-search": "backend.workbench.labelsearch_job:run_label_search_job",
           "soft-ensemble": "backend.workbench.softensemble_job:run_soft_ensemble_job"}
# jobs whose run records a finding and nothing to serve (a soft-prompt ensemble's run serves)
SCORING_ONLY = ("comparison", "template-search", "label-search")


def job_runner(method: str) -> Callable[..., str] | None:
    """The function that runs a workbench job of ``method``; None for a training (or zero-shot) run."""
    target = RUNNERS.get(method)
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def read_json(store: Any, run_id: int, kind: str, name: str) -> dict[str, Any] | None:
    for art in store.list_artifacts(run_id):
        if (art.kind, art.name) == (kind, name):
            return json.loads(store.read_artifact(art.sha256))
    return None


@dataclass(frozen=True)
class JobKind:
    """One kind of workbench job: the method its run is recorded under, how messages name it, its spec
    (kind ``config``) and result (kind ``report``) artifacts, and its progress events (done, total)."""
    method: str
    title: str               # "comparison", "template search", ...: messages say "<title> #<run id>"
    spec: str
    result: str
    progress: tuple[str, str]
    field: str               # where the page shows its messages

    def check(self, info: Any) -> None:
        """Refuse a run (a RunInfo) that is not a job of this kind."""
        if info.method != self.method:
            raise ConfigError(f"run {info.id} is a {info.method} run, not a {self.title}", field=self.field)

    def submit(self, store: Any, cfg: Any, spec: dict[str, Any], *, project: str | None = None,
               parent_run_id: int | None = None) -> int:
        """Queue a job of this kind (its run, then its spec); returns the job's run id."""
        run_id = store.create_run(cfg.to_dict(), method=self.method, model_id=cfg.model, project=project,
                                  tags=list(dict.fromkeys([*cfg.tags, self.method])), status="queued",
                                  parent_run_id=parent_run_id)
        store.attach_artifact(run_id, "config", self.spec, json.dumps(spec, ensure_ascii=False).encode())
        return run_id

    def read_spec(self, store: Any, info: Any) -> dict[str, Any]:
        return wait_for_spec(store, info.id, info.parent_run_id, "config", self.spec, self.title)

    def open(self, store: Any, info: Any, loaded: Any) -> tuple[Any, dict[str, Any], Any]:
        """What job ``info`` runs on: its RunConfig, its spec, and its model (``loaded`` when the caller has
        one in memory, else the config's, loaded here), refused when the config names another model."""
        from backend.config import RunConfig
        from backend.pipeline import check_model, load_for_eval

        cfg = RunConfig.from_dict(info.config)
        spec = self.read_spec(store, info)
        loaded = loaded if loaded is not None else load_for_eval(cfg)
        check_model(cfg, loaded)
        return cfg, spec, loaded

    def run(self, store: Any, run_id: int, work: Callable[[Any], dict[str, Any]],
            summary: Callable[[dict[str, Any]], dict[str, float]]) -> str:
        return run_as_job(store, run_id, work, result=("report", self.result), summary=summary)

    def status(self, store: Any, info: Any) -> dict[str, Any]:
        """Where job ``info`` stands (``progress_of``); refused for a run of another kind."""
        self.check(info)
        return progress_of(store, info, self.progress, ("report", self.result))

    def latest(self, store: Any, project: str | None) -> int | None:
        """The job a freshly opened page shows: a running one, else a queued one, else the newest."""
        for status in ("running", "queued", None):
            found = store.list_runs(status=status, method=self.method, limit=1, project=project)
            if found:
                return found[0].id
        return None


def run_here(store: Any, run_id: int, runner: Callable[..., str], **kwargs: Any) -> str | None:
    """Run queued job ``run_id`` in this process (a studio without a job runner, the CLI) with ``runner``;
    its final status, or None when another process had claimed it.

    Why the claim first (queued -> running in one write): a job runner or worker on the same database
    claims queued runs too, and a job run by both would be recorded twice; whoever claims first runs it.
    Why heartbeats (``keep_alive``): any worker's reaper fails a running run whose heartbeat is stale, and
    a job of minutes in this process would otherwise look like a dead one."""
    from storage import InvalidTransition

    try:
        store.set_status(run_id, "running")
    except InvalidTransition:
        return None
    with keep_alive(store, run_id):
        return runner(store, run_id, **kwargs)


def wait_for_spec(store: Any, run_id: int, parent: int | None, kind: str, name: str, what: str) -> dict[str, Any]:
    """The job's spec; a resumed job (a new run whose parent is the interrupted one) reads its parent's."""
    deadline = time.monotonic() + SPEC_WAIT_S
    while True:
        raw = read_json(store, run_id, kind, name)
        if raw is None and parent is not None:
            raw = read_json(store, parent, kind, name)
        if raw is not None:
            return raw
        if time.monotonic() > deadline:
            raise ConfigError(f"{what} job {run_id} has no {name}: nothing to do")
        time.sleep(0.2)


class EventProgress:
    """Progress as metric events: ``keys`` (done, total), at most every ``every_s`` seconds plus the last;
    ``offset`` shifts a later phase's counts after an earlier one's, ``total`` (when set) overrides the
    phase's own."""

    def __init__(self, store: Any, run_id: int, keys: tuple[str, str], every_s: float = 0.5) -> None:
        self.store, self.run_id, self.every_s, self.last, self.offset = store, run_id, every_s, 0.0, 0
        self.done_key, self.total_key = keys
        self.total = 0
        self.written: tuple[int, int] | None = None
        self.seen: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        self.seen = (done, total)
        if time.monotonic() - self.last >= self.every_s or done == total:
            self._write(done, total)

    def __enter__(self) -> EventProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the last count if the throttle held it back: where a job ended, or was cancelled (one
        may end below its total: a search within a budget)."""
        if self.seen is not None and self.written != self.seen:
            self._write(*self.seen)

    def _write(self, done: int, total: int) -> None:
        self.last, self.written = time.monotonic(), (done, total)
        self.store.append_metrics(self.run_id, [
            {"key": self.done_key, "step": self.offset + done, "value": self.offset + done},
            {"key": self.total_key, "step": 0, "value": self.total or total}])


def run_as_job(store: Any, run_id: int, work: Callable[[Any], dict[str, Any]], *, result: tuple[str, str],
               summary: Callable[[dict[str, Any]], dict[str, float]]) -> str:
    """Run ``work(info)`` as job ``run_id`` and record how it ended: its result attached as ``result``
    (kind, name) with ``summary``'s figures as metric events and ``succeeded``; ``cancelled`` when it
    stopped between two batches; ``failed`` with the message (a crash: with where it happened).
    Returns the final status."""
    from backend.errors import StudioError
    from storage.errors import StorageError

    info = store.get_run(run_id)
    if info.status == "queued":
        store.set_status(run_id, "running")
    try:
        out = work(info)
    except InterruptedError:
        return _end(store, run_id, "cancelled", note="cancel requested: stopped between two batches")
    except (StudioError, StorageError) as exc:
        return _end(store, run_id, "failed", error=getattr(exc, "message", str(exc)))
    except Exception as exc:  # noqa: BLE001 - a crash is recorded on the run, with where it happened
        return _end(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    now = store.get_run(run_id).status
    if now != "running":     # ended by another process meanwhile: no result on a run that did not succeed
        log.warning("%s job %s was %s by another process before its end: its result is not recorded",
                    info.method, run_id, now)
        return now
    store.attach_artifact(run_id, result[0], result[1], json.dumps(out, ensure_ascii=False).encode())
    figures = summary(out)
    if figures:
        store.append_metrics(run_id, [{"key": k, "step": 0, "value": float(v)} for k, v in figures.items()])
    return _end(store, run_id, "succeeded")


def _end(store: Any, run_id: int, status: str, **why: Any) -> str:
    """Record job ``run_id``'s end as ``status``; returns the status the run ends with. Why the
    InvalidTransition is caught: another process (a reaper) may have ended the run meanwhile; its end
    stands, the record being the truth, and the caller is told that one rather than crashing."""
    from storage import InvalidTransition

    try:
        return store.set_status(run_id, status, **why).status
    except InvalidTransition:
        now = store.get_run(run_id).status
        log.warning("job %s was %s by another process before it could record %s", run_id, now, status)
        return now


def progress_of(store: Any, info: Any, keys: tuple[str, str], result: tuple[str, str]) -> dict[str, Any]:
    """Where job ``info`` (its RunInfo) stands, from storage: status, the last of its progress events
    (``keys``: done, total), and its result once it succeeded (what a refreshed page or a second browser
    reads)."""
    last: dict[str, float] = {}
    for ev in store.get_metrics(info.id, keys=list(keys)):
        last[ev["key"]] = ev["value"]
    done, total = int(last.get(keys[0], 0)), int(last.get(keys[1], 0))
    out: dict[str, Any] = {"job": info.id, "status": info.status, "done_count": done, "total_count": total,
                           "fraction": 1.0 if info.status == "succeeded" else min(1.0, done / total) if total else 0.0,
                           "run_error": info.error, "done": info.status in ENDED, "result": None}
    if info.status == "succeeded":
        out["result"] = read_json(store, info.id, *result)
    return out

