"""Heartbeats: a running run says "still here" every few seconds while its process works.

Why: other processes decide a run is gone when its pid is dead (same machine) or its heartbeat is stale
(any machine; ``Store.reap_dead_runs``). Every piece of code that keeps a run ``running`` for longer than
a moment — training in a job child or the CLI, a zero-shot evaluation — wraps the work in ``keep_alive``,
so a long run is never mistaken for a dead one.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HEARTBEAT_S = 5.0


def _beat(store: Any, run_id: int) -> None:
    try:
        store.heartbeat(run_id)
    except Exception:  # noqa: BLE001 - a missed heartbeat (busy database, run ended) must never kill the work
        pass


@contextmanager
def keep_alive(store: Any, run_id: int, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Heartbeat ``run_id`` now and then every ``every_s`` seconds on a daemon thread until the block ends."""
    _beat(store, run_id)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            _beat(store, run_id)

    thread = threading.Thread(target=loop, name=f"heartbeat-run-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)   # at most an in-flight heartbeat
