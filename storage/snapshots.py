"""Dataset snapshots: what data a run saw, identified by content, not by a path that may change."""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidInput, NotFound
from .models import DatasetSnapshot
from .types import DatasetSnapshotInfo


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def save(s: Session, source: str, columns: dict[str, Any], fingerprint: str,
         row_counts: dict[str, Any], labels: list[Any], created_at: float | None = None) -> int:
    """Insert a snapshot or return the id of the one with the same fingerprint and column mapping."""
    if not isinstance(columns, dict) or not isinstance(row_counts, dict):
        raise InvalidInput("dataset snapshot: columns and row_counts must be dicts")
    if not fingerprint:
        raise InvalidInput("dataset snapshot: fingerprint must be a non-empty string")
    key = hashlib.sha256(canonical_json(columns).encode()).hexdigest()
    row = s.scalar(select(DatasetSnapshot).where(DatasetSnapshot.fingerprint == fingerprint,
                                                 DatasetSnapshot.columns_key == key))
    if row is None:
        row = DatasetSnapshot(source=str(source), columns=columns, columns_key=key,
                              fingerprint=fingerprint, row_counts=row_counts, labels=list(labels),
                              created_at=time.time() if created_at is None else created_at)
        s.add(row)
        s.flush()
    return row.id


def get(s: Session, snapshot_id: int) -> DatasetSnapshotInfo:
    row = s.get(DatasetSnapshot, snapshot_id)
    if row is None:
        raise NotFound(f"no dataset snapshot with id {snapshot_id}")
    return DatasetSnapshotInfo(id=row.id, source=row.source, columns=row.columns,
                               fingerprint=row.fingerprint, row_counts=row.row_counts,
                               labels=row.labels, created_at=row.created_at)
