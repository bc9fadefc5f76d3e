"""The Store: the one API through which the backend and the studio touch persistent state.

Each method is one short transaction: reads use a deferred transaction (they never block writers in WAL
mode), writes use the write engine (``BEGIN IMMEDIATE`` on SQLite) so concurrent job processes queue on
the lock instead of failing. Results are plain dataclasses / dicts (see ``storage.types``).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import maintenance
from . import metrics as metrics_repo
from . import projects as projects_repo
from . import runs as runs_repo
from . import snapshots as snapshots_repo
from . import versions as versions_repo
from .artifacts import ArtifactStore
from .engine import dispose_after_fork, make_engine, upgrade_schema, writer
from .errors import InvalidInput, StorageError
from .models import Artifact
from .paths import (absolute_url, check_artifact_name, db_identity, default_artifacts_dir, default_db_url,
                    redact_url, sqlite_file)
from .maintenance import ORPHAN_MIN_AGE_S
from .types import ArtifactInfo, DatasetSnapshotInfo, ProjectInfo, RunInfo, VersionInfo

T = TypeVar("T")


def open_store(url: str | None = None, artifacts_dir: Path | None = None) -> Store:
    """Open (creating and upgrading as needed) the store at ``url`` (default: the studio's)."""
    url = absolute_url(url or default_db_url())
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
    except DBAPIError as exc:
        engine.dispose()
        reason = " ".join(str(exc.orig).split())  # drivers' messages span lines; ours are one
        raise StorageError(f"cannot open database {redact_url(url)}: {reason}") from None
    except StorageError:
        engine.dispose()   # e.g. SchemaTooNew: the caller gets one line and no pooled connection lingers
        raise
    store = Store(engine, Path(artifacts_dir) if artifacts_dir else default_artifacts_dir(url), url)
    if store.identity is not None:  # the artifact folder learns who uses it, so gc never deletes another's
        store.artifacts.register_owner(store.identity, redact_url(url), sqlite_file(url))
    return store


class Store:
    def __init__(self, engine: Engine, artifacts_dir: Path, url: str = "") -> None:
        self.url = url or engine.url.render_as_string(hide_password=False)
        self.engine = engine
        self._writer = writer(engine)
        self._pid = os.getpid()
        self.artifacts = ArtifactStore(artifacts_dir)
        self.identity = db_identity(self.url)

    # -- sessions ------------------------------------------------------------------------------
    def _check_fork(self) -> None:
        if dispose_after_fork(self.engine, self._pid):
            self._pid = os.getpid()

    @contextmanager
    def read(self) -> Iterator[Session]:
        self._check_fork()
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        self._check_fork()
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            yield s

    def _write_retrying(self, fn: Callable[[Session], T], attempts: int = 5) -> T:
        """Run ``fn`` in a write transaction, retrying when a unique constraint fails.

        Why: get-or-create (entities, projects, snapshots) and "next version number" are race-free on
        SQLite (one writer at a time) but on PostgreSQL two transactions can both decide to insert;
        the loser's unique violation means "someone else just created it", so trying again finds it.
        """
        for attempt in range(attempts):
            try:
                with self.write() as s:
                    return fn(s)
            except SAIntegrityError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- projects (storage.projects) --------------------------------------------------------------
    def create_project(self, name: str, settings: dict[str, Any] | None = None) -> ProjectInfo:
        """A new, empty project (InvalidInput when the name is taken or not a valid project name)."""
        return self._write_retrying(lambda s: projects_repo.create(s, name, settings))

    def ensure_project(self, name: str | None = None) -> ProjectInfo:
        """The project ``name`` (None: the default one), created when missing."""
        return self._write_retrying(lambda s: projects_repo.info(s, projects_repo.ensure(s, name)))

    def get_project(self, name: str) -> ProjectInfo:
        with self.read() as s:
            return projects_repo.info(s, projects_repo.row(s, name))

    def list_projects(self) -> list[ProjectInfo]:
        with self.read() as s:
            return projects_repo.list_all(s)

    def rename_project(self, old: str, new: str) -> ProjectInfo:
        with self.write() as s:
            return projects_repo.rename(s, old, new)

    def update_project_settings(self, name: str, changes: dict[str, Any]) -> ProjectInfo:
        """Merge ``changes`` into the project's settings (None removes a key)."""
        with self.write() as s:
            return projects_repo.update_settings(s, name, changes)

    # -- versions (names live in a project; project=None: the default project) ----------------------
    def save_version(self, kind: str, name: str, content: str, message: str = "", author: str = "",
                     parent: int | str | None = None, *, project: str | None = None) -> VersionInfo:
        """Save ``content`` as the next version of ``name`` (identical content: existing version)."""
        return self._write_retrying(lambda s: versions_repo.save(s, kind, name, content, message,
                                                                 author, parent, project=project))

    def get_version(self, kind: str, name: str, ref: int | str | None = None, *,
                    project: str | None = None) -> VersionInfo:
        with self.read() as s:
            return versions_repo.get(s, kind, name, ref, project=project)

    def get_version_by_id(self, version_id: int) -> VersionInfo:
        with self.read() as s:
            return versions_repo.get_by_id(s, version_id)

    def list_versions(self, kind: str, name: str, *, project: str | None = None) -> list[VersionInfo]:
        with self.read() as s:
            return versions_repo.list_versions(s, kind, name, project=project)

    def list_names(self, kind: str, *, project: str | None = None) -> list[str]:
        with self.read() as s:
            return versions_repo.list_names(s, kind, project=project)

    def diff_versions(self, kind: str, name: str, a: int | str | None, b: int | str | None, *,
                      project: str | None = None) -> str:
        with self.read() as s:
            return versions_repo.diff(s, kind, name, a, b, project=project)

    def set_alias(self, kind: str, name: str, alias: str, version: int | str, *,
                  project: str | None = None) -> VersionInfo:
        with self.write() as s:
            return versions_repo.set_alias(s, kind, name, alias, version, project=project)

    # -- dataset snapshots ---------------------------------------------------------------------
    def save_dataset_snapshot(self, source: str, columns: dict[str, Any], fingerprint: str,
                              row_counts: dict[str, Any], labels: list[Any]) -> int:
        return self._write_retrying(lambda s: snapshots_repo.save(s, source, columns, fingerprint,
                                                                  row_counts, labels))

    def get_dataset_snapshot(self, snapshot_id: int) -> DatasetSnapshotInfo:
        with self.read() as s:
            return snapshots_repo.get(s, snapshot_id)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, config: dict[str, Any], *, method: str, seed: int | None = None,
                   model_id: str | None = None, model_revision: str | None = None,
                   template_version_id: int | None = None, verbalizer_version_id: int | None = None,
                   dataset_snapshot_id: int | None = None, parent_run_id: int | None = None,
                   tags: Iterable[str] = (), status: str = "queued", project: str | None = None) -> int:
        tags = list(tags)  # may be retried: a generator would be empty the second time
        return self._write_retrying(lambda s: runs_repo.create(
            s, config, method=method, seed=seed, model_id=model_id, model_revision=model_revision,
            template_version_id=template_version_id, verbalizer_version_id=verbalizer_version_id,
            dataset_snapshot_id=dataset_snapshot_id, parent_run_id=parent_run_id, tags=tags,
            status=status, project=project))

    def set_lineage(self, run_id: int, *, model_id: str, model_revision: str, template_version_id: int,
                    verbalizer_version_id: int, dataset_snapshot_id: int) -> None:
        """Write the model, versions and dataset snapshot a run actually used (``backend.recording``)."""
        with self.write() as s:
            runs_repo.set_lineage(s, run_id, model_id=model_id, model_revision=model_revision,
                                  template_version_id=template_version_id,
                                  verbalizer_version_id=verbalizer_version_id,
                                  dataset_snapshot_id=dataset_snapshot_id)

    def set_rows(self, run_id: int, dataset_snapshot_id: int) -> None:
        """Record the dataset snapshot of the rows a run reads, ahead of the rest of its lineage."""
        with self.write() as s:
            runs_repo.set_rows(s, run_id, dataset_snapshot_id)

    def set_status(self, run_id: int, status: str, error: str | None = None,
                   note: str | None = None) -> RunInfo:
        """Move a run to ``status``; ``note`` goes to its history (e.g. "stopped by SIGTERM")."""
        with self.write() as s:
            run = runs_repo.get_row(s, run_id, lock=True)
            runs_repo.transition(s, run, status, error=error, note=note)
            s.flush()
            return runs_repo.info(s, run)

    def claim_next_run(self, worker: str) -> int | None:
        with self.write() as s:
            return runs_repo.claim_next(s, worker)

    def request_cancel(self, run_id: int, why: str | None = None) -> None:
        """Ask a run to stop. A queued run is cancelled at once (its history says ``why`` when given);
        a running job sees the flag."""
        with self.write() as s:
            run = runs_repo.get_row(s, run_id, lock=True)
            run.cancel_requested = True
            if run.status == "queued":
                note = f"cancelled before it started: {why}" if why else "cancelled before it started"
                runs_repo.transition(s, run, "cancelled", note=note)

    def cancel_requested(self, run_id: int) -> bool:
        with self.read() as s:
            return bool(runs_repo.get_row(s, run_id).cancel_requested)

    def heartbeat(self, run_id: int) -> None:
        with self.write() as s:
            runs_repo.heartbeat(s, run_id)

    def fail_stale_runs(self, older_than_s: float) -> list[int]:
        with self.write() as s:
            return runs_repo.fail_stale(s, older_than_s)

    def reap_dead_runs(self, stale_after_s: float = runs_repo.STALE_AFTER_S,
                       exclude: Iterable[int] = ()) -> list[int]:
        """Mark every running run whose process is gone ``failed`` (``process gone: ...`` with host, pid
        and last heartbeat); returns their ids.

        Why: a run whose process was killed (kill -9, out of memory, a reboot) cannot record its own end,
        so every process that opens the store for work (studio, CLI, worker) calls this once. A dead pid
        on this machine is proof at once; other machines' runs go by a heartbeat older than
        ``stale_after_s``. Only looks (a read) when nothing is gone, so it costs no write lock.
        ``exclude``: runs the caller watches itself (a worker's own children: it knows their exit status,
        a better reason than "process gone").
        """
        skip = set(exclude)
        with self.read() as s:
            gone = [run_id for run_id, _ in runs_repo.find_gone(s, stale_after_s) if run_id not in skip]
        if not gone:
            return []
        with self.write() as s:
            return runs_repo.reap(s, gone, stale_after_s)

    def get_run(self, run_id: int) -> RunInfo:
        with self.read() as s:
            return runs_repo.info(s, runs_repo.get_row(s, run_id))

    def list_runs(self, status: str | None = None, method: str | None = None, tag: str | None = None,
                  limit: int | None = 100, offset: int = 0, *, project: str | None = None,
                  model_id: str | None = None, parent_run_id: int | None = None,
                  newest_first: bool = True) -> list[RunInfo]:
        with self.read() as s:
            return runs_repo.query(s, status=status, method=method, tag=tag, project=project,
                                   model_id=model_id, parent_run_id=parent_run_id, limit=limit,
                                   offset=offset, newest_first=newest_first)

    def compare_runs(self, ids: Iterable[int]) -> dict[str, Any]:
        with self.read() as s:
            return runs_repo.compare(s, list(ids))

    # -- metrics and predictions ---------------------------------------------------------------
    def append_metrics(self, run_id: int, events: Iterable[dict[str, Any]]) -> int:
        """Append a batch of ``{"key", "step", "value", "wall_time"}`` events in one transaction."""
        rows = metrics_repo.validate_events(run_id, events)
        if not rows:
            return 0
        with self.write() as s:
            # Locking the run row serialises appends per run (SQLite already has one writer), so ids
            # grow in commit order per run on PostgreSQL too and ``since_id`` polling never skips one.
            runs_repo.get_row(s, run_id, lock=True)
            return metrics_repo.append(s, rows)

    def get_metrics(self, run_id: int, keys: Iterable[str] | None = None,
                    since_id: int | None = None) -> list[dict[str, Any]]:
        with self.read() as s:
            runs_repo.get_row(s, run_id)  # an unknown run is an error, not "no metrics yet"
            return metrics_repo.fetch(s, run_id, keys, since_id)

    def add_predictions(self, run_id: int, rows: Iterable[dict[str, Any]]) -> int:
        try:
            with self.write() as s:
                runs_repo.get_row(s, run_id)
                return metrics_repo.add_predictions(s, run_id, rows)
        except SAIntegrityError:
            raise InvalidInput(f"run {run_id} already has a prediction for one of these example "
                               f"indexes (each example is predicted once per run)") from None

    def get_predictions(self, run_id: int) -> list[dict[str, Any]]:
        with self.read() as s:
            runs_repo.get_row(s, run_id)
            return metrics_repo.get_predictions(s, run_id)

    # -- artifacts -----------------------------------------------------------------------------
    def attach_artifact(self, run_id: int, kind: str, name: str,
                        src: Path | bytes | BinaryIO) -> ArtifactInfo:
        """Copy ``src`` into the store, then record it on the run (re-attaching equal bytes is a no-op;
        another file under the same kind and name is refused: names never silently change meaning)."""
        if not kind or not name:
            raise InvalidInput("an artifact needs a non-empty kind and name")
        check_artifact_name(name)  # it becomes a path when the run is served
        with self.read() as s:
            runs_repo.get_row(s, run_id)  # fail before copying gigabytes for a missing run
        sha, size = self.artifacts.put(src)
        with self.write() as s:
            row = s.scalar(select(Artifact).where(Artifact.run_id == run_id, Artifact.kind == kind,
                                                  Artifact.name == name))
            if row is not None:
                if row.sha256 != sha:
                    raise InvalidInput(f"run {run_id} already has a {kind} artifact named {name!r} "
                                       f"with different content ({row.sha256[:12]}); use a new name")
                return runs_repo.artifact_info(row)
            row = Artifact(run_id=run_id, kind=kind, name=name, sha256=sha, size=size,
                           path=self.artifacts.relpath(sha), created_at=time.time())
            s.add(row)
            s.flush()
            return runs_repo.artifact_info(row)

    def artifact_path(self, sha256: str) -> Path:
        return self.artifacts.verified_path(sha256)

    def read_artifact(self, sha256: str) -> bytes:
        return self.artifacts.read(sha256)

    def list_artifacts(self, run_id: int) -> list[ArtifactInfo]:
        with self.read() as s:
            runs_repo.get_row(s, run_id)
            return [runs_repo.artifact_info(a) for a in s.scalars(
                select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id))]

    # -- bundles -------------------------------------------------------------------------------
    def export_run(self, run_id: int, out_zip: Path) -> Path:
        from .bundle import export_run

        return export_run(self, run_id, Path(out_zip))

    def import_bundle(self, zip_path: Path) -> int:
        from .bundle import import_bundle

        return import_bundle(self, Path(zip_path))

    # -- maintenance (storage.maintenance) ---------------------------------------------------------
    def check(self, orphan_min_age_s: float = ORPHAN_MIN_AGE_S) -> dict[str, Any]:
        """Audit: database integrity, every artifact row's file, orphan blobs, runs whose process is gone."""
        return maintenance.check(self, orphan_min_age_s)

    def gc(self, min_age_s: float = ORPHAN_MIN_AGE_S, dry_run: bool = False) -> dict[str, Any]:
        """Remove orphan blobs and temp files untouched for ``min_age_s`` seconds; say what was freed."""
        return maintenance.gc(self, min_age_s, dry_run)
