"""Metric events and per-example predictions.

Metrics are kept as the full history ``(run, key, step, value, wall_time)``, appended in batches (one
transaction per batch: that is what makes several training processes fast on SQLite). Ids grow in
commit order on SQLite (one writer at a time), so the studio polls with ``since_id`` to fetch only new
events.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .errors import InvalidInput
from .models import Metric, Prediction


def validate_events(run_id: int, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check and normalise events; the message names the offending event's position."""
    now = time.time()
    rows = []
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            raise InvalidInput(f"metric event #{i} must be a dict, not {type(ev).__name__}")
        key = ev.get("key")
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"metric event #{i} needs a non-empty string 'key', got {key!r}")
        try:
            value = float(ev["value"])
            step = int(ev.get("step", 0))
            wall = float(ev["wall_time"]) if ev.get("wall_time") is not None else now
        except KeyError:
            raise InvalidInput(f"metric event #{i} ({key!r}) has no 'value'") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"metric event #{i} ({key!r}): {exc}") from None
        rows.append({"run_id": run_id, "key": key, "step": step, "value": value, "wall_time": wall})
    return rows


def append(s: Session, rows: list[dict[str, Any]]) -> int:
    if rows:
        s.execute(insert(Metric.__table__), rows)  # Core insert: no ORM bookkeeping per row
    return len(rows)


def fetch(s: Session, run_id: int, keys: Iterable[str] | None = None,
          since_id: int | None = None) -> list[dict[str, Any]]:
    q = select(Metric).where(Metric.run_id == run_id)
    if keys is not None:
        q = q.where(Metric.key.in_(list(keys)))
    if since_id is not None:
        q = q.where(Metric.id > since_id)
    return [{"id": m.id, "key": m.key, "step": m.step, "value": _value(m.value),
             "wall_time": m.wall_time} for m in s.scalars(q.order_by(Metric.id))]


def _value(v: float | None) -> float:
    """SQLite stores NaN as NULL (a diverged loss is a real event), so NULL reads back as NaN."""
    return math.nan if v is None else v


def last_values(s: Session, run_ids: list[int]) -> dict[int, dict[str, float]]:
    """Per run, the value of each key at its highest step (latest event on ties)."""
    out: dict[int, dict[str, float]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    rn = func.row_number().over(partition_by=(Metric.run_id, Metric.key),
                                order_by=(Metric.step.desc(), Metric.id.desc())).label("rn")
    sub = (select(Metric.run_id, Metric.key, Metric.value, rn)
           .where(Metric.run_id.in_(run_ids)).subquery())
    for run_id, key, value in s.execute(select(sub.c.run_id, sub.c.key, sub.c.value)
                                        .where(sub.c.rn == 1)):
        out[run_id][key] = _value(value)
    return out


def add_predictions(s: Session, run_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
    batch = []
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping) or "index" not in r:
            raise InvalidInput(f"prediction row #{i} must be a dict with an 'index'")
        try:
            idx = int(r["index"])
        except (TypeError, ValueError):
            raise InvalidInput(f"prediction row #{i}: index {r['index']!r} is not an integer") from None
        probs = r.get("probs")
        if probs is not None and not isinstance(probs, (list, tuple, dict)):
            raise InvalidInput(f"prediction row #{i}: probs must be a list or a dict")
        batch.append({"run_id": run_id, "idx": idx, "gold": r.get("gold"),
                      "predicted": r.get("predicted"),
                      "probs": list(probs) if isinstance(probs, tuple) else probs})
    if batch:
        s.execute(insert(Prediction), batch)
    return len(batch)


def get_predictions(s: Session, run_id: int) -> list[dict[str, Any]]:
    q = select(Prediction).where(Prediction.run_id == run_id).order_by(Prediction.idx)
    return [{"index": p.idx, "gold": p.gold, "predicted": p.predicted, "probs": p.probs}
            for p in s.scalars(q)]
