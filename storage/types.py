"""Plain records returned by the Store.

Callers (the backend's job runner, the studio) get these frozen dataclasses or plain dicts, never ORM
objects: those would raise detached-session errors once the session that loaded them is closed, and
would let SQL concerns leak out of ``storage``. ``to_dict()`` gives JSON-ready dicts for the CLI.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("template", "verbalizer")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Dictable:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class VersionInfo(_Dictable):
    id: int
    kind: str
    name: str
    number: int
    sha256: str
    content: str
    parent: int | None  # parent version *number* (same entity), or None
    message: str
    author: str
    created_at: float
    aliases: tuple[str, ...] = ()
    project: str | None = None   # the project owning its name


@dataclass(frozen=True)
class ProjectInfo(_Dictable):
    id: int
    name: str
    settings: dict[str, Any]
    created_at: float
    updated_at: float
    runs: int = 0
    templates: int = 0
    verbalizers: int = 0


@dataclass(frozen=True)
class ArtifactInfo(_Dictable):
    id: int
    run_id: int
    kind: str
    name: str
    sha256: str
    size: int
    path: str  # relative to the artifact store root
    created_at: float


@dataclass(frozen=True)
class StatusChange(_Dictable):
    status: str
    at: float
    host: str | None
    pid: int | None
    note: str | None


@dataclass(frozen=True)
class DatasetSnapshotInfo(_Dictable):
    id: int
    source: str
    columns: dict[str, Any]
    fingerprint: str
    row_counts: dict[str, Any]
    labels: list[Any]
    created_at: float


@dataclass(frozen=True)
class RunInfo(_Dictable):
    id: int
    uid: str
    status: str
    method: str
    config: dict[str, Any]
    seed: int | None
    model_id: str | None
    model_revision: str | None
    template_version_id: int | None
    verbalizer_version_id: int | None
    dataset_snapshot_id: int | None
    parent_run_id: int | None
    parent_uid: str | None
    project: str | None
    tags: tuple[str, ...]
    host: str | None
    pid: int | None
    worker: str | None
    error: str | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # last value per key
    history: tuple[StatusChange, ...] = ()
    artifacts: tuple[ArtifactInfo, ...] = ()
