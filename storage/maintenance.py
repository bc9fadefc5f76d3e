"""Storage maintenance: the audit (``check``) and the clean-up of orphan blobs (``gc``).

Apart from the Store's transactions because they reason about the whole database and its artifact folder at
once (other databases sharing the folder, blobs a writer has not referenced yet); ``Store.check`` / ``Store.gc``
and ``python -m storage check|gc`` call them.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from . import runs as runs_repo
from .errors import InvalidInput, StorageError
from .models import Artifact, Run
from .paths import check_artifact_name

if TYPE_CHECKING:   # annotations only: the Store calls this module
    from .store import Store

ORPHAN_MIN_AGE_S = 3600.0   # check/gc leave younger unreferenced blobs alone: a writer may own them


def check(store: Store, orphan_min_age_s: float = ORPHAN_MIN_AGE_S) -> dict[str, Any]:
    """Audit: database integrity, every artifact row's file, and orphan blobs (no row references
    them) older than ``orphan_min_age_s`` (younger ones may belong to a writer that has not
    inserted its row yet). Used after crashes, by ``python -m storage check`` and by tests."""
    problems: list[str] = []
    warnings: list[str] = []
    orphans = _orphans(store, orphan_min_age_s)
    with store.read() as s:
        if store.engine.dialect.name == "sqlite":
            res = s.execute(text("PRAGMA integrity_check")).scalar()
            if res != "ok":
                problems.append(f"sqlite integrity_check: {res}")
        shas = sorted(set(s.scalars(select(Artifact.sha256))))
        named = s.execute(select(Artifact.run_id, Artifact.kind, Artifact.name).order_by(Artifact.id)).all()
        n_runs = s.scalar(select(func.count(Run.id)))
        problems += [f"run {rid} is still marked running but {why}" for rid, why in runs_repo.find_gone(s)]
    problems += _unsafe_names(named)
    for sha in shas:
        try:
            store.artifacts.verified_path(sha)
        except StorageError as exc:
            problems.append(exc.message)
    size = sum(n for _, n in orphans)
    others = store.artifacts.other_owners(store.identity)
    if others:
        warnings.append(f"{_shared_with(store, others)}; `python -m storage gc` refuses to run on it")
    if orphans and others:  # they may be the other database's: not a problem of this one
        warnings.append(f"{_count(len(orphans), 'blob')} ({size} bytes) that no artifact of this database "
                        f"references may belong to the other database(s)")
    elif orphans:
        problems.append(f"{_count(len(orphans), 'orphan blob')} ({size} bytes) that no artifact "
                        f"references; `python -m storage gc` removes them")
    return {"ok": not problems, "problems": problems, "warnings": warnings, "runs": n_runs,
            "artifacts": len(shas), "orphans": {"count": len(orphans), "bytes": size}}

def gc(store: Store, min_age_s: float = ORPHAN_MIN_AGE_S, dry_run: bool = False) -> dict[str, Any]:
    """Remove orphan blobs and temp files untouched for ``min_age_s`` seconds; say what was freed.

    Safe beside running writers when ``min_age_s`` exceeds the longest write: a writer's blob is
    renamed into place (or, when reused, touched) before its row is inserted, and each file's age
    is checked again right before it is removed. ``min_age_s=0`` only when no writer can be running.
    """
    if min_age_s < 0:
        raise InvalidInput(f"min-age must be zero or more seconds, not {min_age_s}")
    others = store.artifacts.other_owners(store.identity)
    if others:  # a blob this database does not reference may be theirs: deleting could lose their data
        raise StorageError(
            f"{_shared_with(store, others)}, so a blob this database does not reference may be theirs; "
            f"nothing was removed. Give each database an artifact folder of its own (keep each SQLite "
            f"file in a folder of its own, or pass --artifacts DIR), or, if a listed database no longer "
            f"exists, delete its marker: {', '.join(str(m) for _, m in others)}")
    cutoff = time.time() - min_age_s
    out: dict[str, Any] = {"dry_run": dry_run}
    for what, size_key, files in (("blobs", "blob_bytes", _orphans(store, min_age_s)),
                                  ("tmp_files", "tmp_bytes", store.artifacts.stale_tmp(min_age_s))):
        if not dry_run:
            files = [(p, n) for p, n in files if store.artifacts.remove_if_older(p, cutoff)]
        out[what], out[size_key] = len(files), sum(n for _, n in files)
    return out

def _shared_with(store: Store, others: list[tuple[str, Path]]) -> str:
    return f"the artifact folder {store.artifacts.root} is shared with {', '.join(u for u, _ in others)}"

def _orphans(store: Store, min_age_s: float) -> list[tuple[Path, int]]:
    """Blobs older than ``min_age_s`` that no artifact row references (files listed before the
    rows are read, so a row inserted meanwhile protects its blob)."""
    old = store.artifacts.old_blobs(min_age_s)
    if not old:
        return []
    with store.read() as s:
        used = set(s.scalars(select(Artifact.sha256).distinct()))
    return [(p, n) for p, n in old if p.name not in used]

def _unsafe_names(rows: Iterable[Any]) -> list[str]:
    """Artifact rows whose name is not a safe file name (written before names were checked, or by hand):
    serving or exporting such a run would be refused, and the name must never become a path."""
    out = []
    for run_id, kind, name in rows:
        try:
            check_artifact_name(name, f"run {run_id}'s {kind} artifact name")
        except InvalidInput as exc:
            out.append(exc.message)
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
