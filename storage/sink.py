"""A metric sink for training jobs: ``emit`` is cheap, commits are batched.

Why batching: each commit on SQLite costs a WAL append and a lock hand-off; committing one event at a
time caps several processes at a few hundred events/s in total, while a few dozen per commit reaches
thousands. Events are flushed when ``flush_every`` are pending, when ``flush_interval_s`` has passed
since the last flush (so the studio sees progress promptly even when steps are slow), on ``flush()``,
and on leaving a ``with`` block.
"""
from __future__ import annotations

import time
from typing import Any

from .store import Store


class StoreSink:
    def __init__(self, store: Store, run_id: int, flush_every: int = 50,
                 flush_interval_s: float = 2.0) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_every = max(1, int(flush_every))
        self.flush_interval_s = flush_interval_s
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.written = 0

    def emit(self, key: str, value: float, step: int, wall_time: float | None = None) -> None:
        self._pending.append({"key": key, "value": value, "step": step,
                              "wall_time": time.time() if wall_time is None else wall_time})
        if (len(self._pending) >= self.flush_every
                or time.monotonic() - self._last_flush >= self.flush_interval_s):
            self.flush()

    def flush(self) -> int:
        """Write pending events in one transaction; on failure they stay pending for the next try."""
        if not self._pending:
            self._last_flush = time.monotonic()
            return 0
        n = self.store.append_metrics(self.run_id, self._pending)
        self._pending = []
        self._last_flush = time.monotonic()
        self.written += n
        return n

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __enter__(self) -> StoreSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
