"""Run lifecycle: creation, status transitions with history, claiming, cancellation, heartbeats.

A run moves queued -> running -> succeeded | failed | cancelled (a queued run may also be failed or
cancelled before it starts). Every change is appended to ``run_status_history`` with the host and pid
that made it, so "who ran this, where, when" is answerable later; the run row keeps the current state.
"""
from __future__ import annotations

import functools
import hashlib
import operator

import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import metrics as metrics_repo
from . import projects
from .errors import InvalidInput, InvalidTransition, NotFound
from .models import Artifact, Project, Run, RunTag, StatusEvent, Version
from .types import RUN_STATUSES, TERMINAL_STATUSES, ArtifactInfo, RunInfo, StatusChange

# A running run with no heartbeat for this long is gone, wherever it ran (heartbeats come every few seconds).
STALE_AFTER_S = 600.0
# psutil's process start time is derived from the boot time in whole seconds: allow for that.
PID_CLOCK_SLACK_S = 2.0

ALLOWED = {
    "queued": {"running", "failed", "cancelled"},
    "running": {"succeeded", "failed", "cancelled"},
}


def _here() -> tuple[str, int]:
    return machine(), os.getpid()


@functools.cache
def machine() -> str:
    """Where a recorded pid means this process table: the hostname, plus a short hash of the boot id and
    this process's pid namespace when Linux says them (``vm (3fa2c1d0)``).

    Why more than the hostname: containers with host networking share the host's name but not its pids,
    and a studio in one would fail a live run of a worker in another as "no longer running" at once.
    Where the namespace differs, only a stale heartbeat says a process is gone."""
    name = socket.gethostname()
    try:
        boot = open("/proc/sys/kernel/random/boot_id", encoding="ascii").read().strip()
        space = os.readlink("/proc/self/ns/pid")
    except OSError:
        return name
    return f"{name} ({hashlib.sha256(f'{boot}/{space}'.encode()).hexdigest()[:8]})"


MAX_ID = 2 ** 63 - 1   # the largest row id SQLite and PostgreSQL store; a larger one names no run


def _as_id(run_id: Any) -> int | None:
    """``run_id`` as a row id a database can hold (ints, numpy ints, digit strings), else None."""
    if isinstance(run_id, bool):
        return None
    if isinstance(run_id, str):
        run_id = run_id.strip()
        return int(run_id) if run_id.isdigit() and len(run_id) <= 19 and 0 < int(run_id) <= MAX_ID else None
    try:
        value = operator.index(run_id)
    except TypeError:
        return None
    return value if 0 < value <= MAX_ID else None


def get_row(s: Session, run_id: int, *, lock: bool = False) -> Run:
    value = _as_id(run_id)
    if value is None:
        shown = str(run_id) if len(str(run_id)) <= 24 else f"{str(run_id)[:20]}..."
        raise NotFound(f"no run with id {shown}")
    q = select(Run).where(Run.id == value)
    if lock:
        q = q.with_for_update()
    run = s.scalar(q)
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run


def _check_version(s: Session, version_id: int | None, kind: str, project: Project | None = None) -> None:
    """The version exists, is a ``kind``, and (given ``project``) belongs to it: a run never points at
    another project's template or label words."""
    if version_id is None:
        return
    from .models import Entity

    v = s.get(Version, version_id)
    ent = s.get(Entity, v.entity_id) if v is not None else None
    if ent is None or ent.kind != kind:
        raise NotFound(f"no {kind} version with id {version_id}")
    if project is not None and ent.project_id != project.id:
        other = s.get(Project, ent.project_id)
        raise InvalidInput(f"{kind} version {version_id} ({ent.name!r}) belongs to project "
                           f"{other.name if other else '?'!r}, not to the run's project {project.name!r}")


def create(s: Session, config: dict[str, Any], *, method: str, seed: int | None = None,
           model_id: str | None = None, model_revision: str | None = None,
           template_version_id: int | None = None, verbalizer_version_id: int | None = None,
           dataset_snapshot_id: int | None = None, parent_run_id: int | None = None,
           tags: Iterable[str] = (), status: str = "queued", project: str | None = None,
           uid: str | None = None, parent_uid: str | None = None,
           created_at: float | None = None) -> int:
    if not isinstance(config, dict):
        raise InvalidInput(f"run config must be a dict, not {type(config).__name__}")
    if not method or not isinstance(method, str):
        raise InvalidInput(f"run method must be a non-empty string, got {method!r}")
    if status not in ("queued", "running"):
        raise InvalidInput(f"a new run starts as 'queued' or 'running', not {status!r}")
    proj = projects.ensure(s, project)
    _check_version(s, template_version_id, "template", proj)
    _check_version(s, verbalizer_version_id, "verbalizer", proj)
    if parent_run_id is not None and parent_uid is None:
        parent_uid = get_row(s, parent_run_id).uid
    if dataset_snapshot_id is not None:
        from . import snapshots

        snapshots.get(s, dataset_snapshot_id)
    now = time.time()
    host, pid = _here()
    proj.updated_at = now
    run = Run(uid=uid or str(uuid.uuid4()), project_id=proj.id, config=config,
              status=status, method=method, seed=seed, model_id=model_id,
              model_revision=model_revision, template_version_id=template_version_id,
              verbalizer_version_id=verbalizer_version_id, dataset_snapshot_id=dataset_snapshot_id,
              parent_run_id=parent_run_id, parent_uid=parent_uid, cancel_requested=False,
              created_at=created_at if created_at is not None else now)
    if status == "running":
        run.host, run.pid, run.started_at, run.heartbeat_at = host, pid, now, now
    s.add(run)
    s.flush()
    for tag in sorted(set(tags)):
        s.add(RunTag(run_id=run.id, tag=str(tag)))
    s.add(StatusEvent(run_id=run.id, status=status, at=now, host=host, pid=pid, note="created"))
    s.flush()
    return run.id


def set_lineage(s: Session, run_id: int, *, model_id: str, model_revision: str, template_version_id: int,
                verbalizer_version_id: int, dataset_snapshot_id: int) -> None:
    """Record what a run actually used, once its process has loaded it: a queued run was created with
    only its config (the model it names, not yet the weights it will load)."""
    run = get_row(s, run_id, lock=True)
    proj = s.get(Project, run.project_id) if run.project_id is not None else None
    _check_version(s, template_version_id, "template", proj)
    _check_version(s, verbalizer_version_id, "verbalizer", proj)
    from . import snapshots

    snapshots.get(s, dataset_snapshot_id)
    run.model_id, run.model_revision = model_id, model_revision
    run.template_version_id, run.verbalizer_version_id = template_version_id, verbalizer_version_id
    run.dataset_snapshot_id = dataset_snapshot_id


def set_rows(s: Session, run_id: int, dataset_snapshot_id: int) -> None:
    """Record the rows a run reads before the rest of its lineage is known (a label-word search learns its
    verbalizer only at its end): a run stopped before then still says which rows it read."""
    from . import snapshots

    run = get_row(s, run_id, lock=True)
    snapshots.get(s, dataset_snapshot_id)
    run.dataset_snapshot_id = dataset_snapshot_id


def transition(s: Session, run: Run, status: str, error: str | None = None,
               note: str | None = None) -> None:
    """Apply a legal status change to a row locked by the caller's write transaction."""
    if status not in RUN_STATUSES:
        raise InvalidInput(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
    if status not in ALLOWED.get(run.status, set()):
        raise InvalidTransition(f"run {run.id} is {run.status}; it cannot become {status}"
                                + (" (it has finished)" if run.status in TERMINAL_STATUSES else ""))
    now = time.time()
    host, pid = _here()
    run.status = status
    if status == "running":
        run.host, run.pid, run.started_at, run.heartbeat_at = host, pid, now, now
    else:
        run.finished_at = now
    if error is not None:
        run.error = str(error)
    s.add(StatusEvent(run_id=run.id, status=status, at=now, host=host, pid=pid,
                      note=note if note is not None else error))


def claim_next(s: Session, worker: str) -> int | None:
    """Oldest queued run -> running, owned by ``worker``. The caller's transaction must hold the write
    lock (SQLite ``BEGIN IMMEDIATE``) or, on PostgreSQL, ``SKIP LOCKED`` makes rivals pass over it."""
    run = s.scalar(select(Run).where(Run.status == "queued").order_by(Run.id).limit(1)
                   .with_for_update(skip_locked=True))
    if run is None:
        return None
    transition(s, run, "running", note=f"claimed by {worker}")
    run.worker = worker
    return run.id


def heartbeat(s: Session, run_id: int) -> None:
    run = get_row(s, run_id, lock=True)
    if run.status != "running":
        raise InvalidTransition(f"run {run_id} is {run.status}; only a running run sends heartbeats")
    run.heartbeat_at = time.time()
    run.host, run.pid = _here()


def fail_stale(s: Session, older_than_s: float) -> list[int]:
    """Fail running runs whose heartbeat is older than ``older_than_s`` (pids are not looked at)."""
    ids = list(s.scalars(select(Run.id).where(Run.status == "running")))
    return reap(s, ids, older_than_s, check_pids=False)


def _last_seen(run: Run) -> float:
    return run.heartbeat_at or run.started_at or run.created_at


def _pid_gone(pid: int, last_seen: float) -> str | None:
    """Why process ``pid`` on this machine cannot be the one that last reported at ``last_seen``.

    A process records its pid together with a heartbeat, so the true owner was created before
    ``last_seen``; a live pid whose process is younger than that is a reused pid (the run's process died
    and the number went to another one). Zombies have exited. Unreadable processes count as alive.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "its process has exited"
        if proc.create_time() > last_seen + PID_CLOCK_SLACK_S:
            return "its pid now belongs to a newer process"
    except psutil.NoSuchProcess:
        return "its process is no longer running"
    except psutil.AccessDenied:
        return None
    return None


def gone_reason(run: Run, stale_after_s: float, *, check_pids: bool = True,
                now: float | None = None) -> str | None:
    """``process gone: ...`` when a running run's process is gone, else None.

    On this machine (the recorded host is ours) a dead pid is proof at once; on any machine a heartbeat
    older than ``stale_after_s`` is (other hosts' pids mean nothing here).
    """
    now = time.time() if now is None else now
    last = _last_seen(run)
    why = _pid_gone(run.pid, last) if check_pids and run.pid and run.host == _here()[0] else None
    if why is None and now - last > stale_after_s:
        why = f"no heartbeat for {now - last:.0f} s"
    if why is None:
        return None
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last))
    return f"process gone: {why} (host {run.host}, pid {run.pid}, last heartbeat {at}, {now - last:.0f} s ago)"


def find_gone(s: Session, stale_after_s: float = STALE_AFTER_S) -> list[tuple[int, str]]:
    """Running runs whose process is gone, with the reason; changes nothing (``check`` uses it)."""
    out = []
    for run in s.scalars(select(Run).where(Run.status == "running").order_by(Run.id)):
        why = gone_reason(run, stale_after_s)
        if why is not None:
            out.append((run.id, why))
    return out


def reap(s: Session, run_ids: Iterable[int], stale_after_s: float = STALE_AFTER_S, *,
         check_pids: bool = True) -> list[int]:
    """Fail each of ``run_ids`` that is still running with its process gone (re-checked under the row
    lock, so a heartbeat that landed since it was found keeps the run alive); returns the failed ids."""
    failed = []
    for run_id in run_ids:
        run = get_row(s, run_id, lock=True)
        why = gone_reason(run, stale_after_s, check_pids=check_pids) if run.status == "running" else None
        if why is not None:
            transition(s, run, "failed", error=why)
            failed.append(run.id)
    return failed


def info(s: Session, run: Run, *, detail: bool = True,
         metrics: dict[str, float] | None = None) -> RunInfo:
    tags = tuple(s.scalars(select(RunTag.tag).where(RunTag.run_id == run.id).order_by(RunTag.tag)))
    project = s.get(Project, run.project_id).name if run.project_id is not None else None
    history: tuple[StatusChange, ...] = ()
    artifacts: tuple[ArtifactInfo, ...] = ()
    if detail:
        history = tuple(StatusChange(status=e.status, at=e.at, host=e.host, pid=e.pid, note=e.note)
                        for e in s.scalars(select(StatusEvent).where(StatusEvent.run_id == run.id)
                                           .order_by(StatusEvent.id)))
        artifacts = tuple(artifact_info(a) for a in s.scalars(
            select(Artifact).where(Artifact.run_id == run.id).order_by(Artifact.id)))
    if metrics is None:
        metrics = metrics_repo.last_values(s, [run.id])[run.id]
    return RunInfo(id=run.id, uid=run.uid, status=run.status, method=run.method, config=run.config,
                   seed=run.seed, model_id=run.model_id, model_revision=run.model_revision,
                   template_version_id=run.template_version_id,
                   verbalizer_version_id=run.verbalizer_version_id,
                   dataset_snapshot_id=run.dataset_snapshot_id, parent_run_id=run.parent_run_id,
                   parent_uid=run.parent_uid, project=project, tags=tags, host=run.host, pid=run.pid, worker=run.worker,
                   error=run.error, cancel_requested=bool(run.cancel_requested),
                   created_at=run.created_at, started_at=run.started_at,
                   finished_at=run.finished_at, heartbeat_at=run.heartbeat_at, metrics=metrics,
                   history=history, artifacts=artifacts)


def artifact_info(a: Artifact) -> ArtifactInfo:
    return ArtifactInfo(id=a.id, run_id=a.run_id, kind=a.kind, name=a.name, sha256=a.sha256,
                        size=a.size, path=a.path, created_at=a.created_at)


def query(s: Session, *, status: str | None = None, method: str | None = None,
          tag: str | None = None, project: str | None = None, model_id: str | None = None,
          parent_run_id: int | None = None, limit: int | None = 100, offset: int = 0,
          newest_first: bool = True) -> list[RunInfo]:
    q = select(Run)
    if status is not None:
        q = q.where(Run.status == status)
    if method is not None:
        q = q.where(Run.method == method)
    if model_id is not None:
        q = q.where(Run.model_id == model_id)
    if parent_run_id is not None:
        q = q.where(Run.parent_run_id == parent_run_id)
    if tag is not None:
        q = q.where(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == tag)))
    if project is not None:
        q = q.where(Run.project_id.in_(select(Project.id).where(Project.name == projects.check_name(project))))
    q = q.order_by(Run.id.desc() if newest_first else Run.id).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    rows = list(s.scalars(q))
    last = metrics_repo.last_values(s, [r.id for r in rows])
    return [info(s, r, detail=False, metrics=last[r.id]) for r in rows]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (compared whole)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


_MISSING = "<missing>"


def compare(s: Session, run_ids: list[int]) -> dict[str, Any]:
    """What differs between runs' configs (dotted keys, one value per run) plus their metric table."""
    runs = [info(s, get_row(s, rid), detail=False) for rid in run_ids]
    fields = [{"method": r.method, "seed": r.seed, "model_id": r.model_id,
               "model_revision": r.model_revision, "template_version_id": r.template_version_id,
               "verbalizer_version_id": r.verbalizer_version_id,
               "dataset_snapshot_id": r.dataset_snapshot_id, "config": r.config} for r in runs]
    flat = [flatten(f) for f in fields]
    keys = sorted(set().union(*flat)) if flat else []
    diff = {}
    for k in keys:
        values = [f.get(k, _MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            diff[k] = values
    metric_keys = sorted(set().union(*(r.metrics for r in runs))) if runs else []
    return {"runs": [r.id for r in runs], "status": [r.status for r in runs],
            "config_diff": diff,
            "metrics": {k: [r.metrics.get(k) for r in runs] for k in metric_keys}}
