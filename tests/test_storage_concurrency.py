"""Several job processes append metrics while the studio polls: no "database is locked", no lost or
duplicated event, and two workers never claim the same run."""
from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from storage import open_store
from tests.storage_helpers import sqlite_store, store  # noqa: F401  (fixtures)

WRITERS, BATCHES, PER_BATCH = 4, 30, 25


def _writer(url: str, artifacts: str, run_id: int, start: mp.Event) -> int:  # type: ignore[valid-type]
    st = open_store(url, artifacts)
    start.wait()
    for b in range(BATCHES):
        st.append_metrics(run_id, [{"key": "loss", "step": b * PER_BATCH + i, "value": 1.0}
                                   for i in range(PER_BATCH)])
        if b % 10 == 0:  # other writes interleave: heartbeats and version saves
            st.heartbeat(run_id)
            st.save_version("template", f"t{run_id}", f"batch {b}")
    st.close()
    return run_id


def _claimer(url: str, artifacts: str, name: str, start: mp.Event) -> list[int]:  # type: ignore[valid-type]
    st = open_store(url, artifacts)
    start.wait()
    got = []
    while (rid := st.claim_next_run(name)) is not None:
        got.append(rid)
    st.close()
    return got


@pytest.mark.slow
def test_writers_and_a_polling_reader_lose_nothing(store):
    runs = [store.create_run({}, method="m", status="running") for _ in range(WRITERS)]
    ctx = mp.get_context("spawn")
    start = ctx.Manager().Event()
    seen: dict[int, list[int]] = {r: [] for r in runs}
    last: dict[int, int | None] = {r: None for r in runs}
    total = WRITERS * BATCHES * PER_BATCH
    with ctx.Pool(WRITERS) as pool:
        pending = pool.starmap_async(_writer, [(store.url, str(store.artifacts.root), r, start)
                                               for r in runs])
        start.set()
        deadline = time.monotonic() + 120
        while sum(len(v) for v in seen.values()) < total and time.monotonic() < deadline:
            for r in runs:  # the studio's incremental polling
                new = store.get_metrics(r, since_id=last[r])
                if new:
                    seen[r].extend(m["step"] for m in new)
                    last[r] = new[-1]["id"]
            time.sleep(0.005)
        assert sorted(pending.get(timeout=120)) == sorted(runs)  # re-raises any writer's error
    for r in runs:
        assert sorted(seen[r]) == list(range(BATCHES * PER_BATCH)), f"run {r} lost or repeated events"
        assert len(store.get_metrics(r)) == BATCHES * PER_BATCH


@pytest.mark.slow
def test_worker_processes_never_claim_the_same_run(store):
    queued = [store.create_run({"i": i}, method="m") for i in range(40)]
    ctx = mp.get_context("spawn")
    start = ctx.Manager().Event()
    with ctx.Pool(3) as pool:
        pending = pool.starmap_async(_claimer, [(store.url, str(store.artifacts.root), f"w{i}", start)
                                                for i in range(3)])
        start.set()
        claimed = [rid for got in pending.get(timeout=120) for rid in got]
    assert sorted(claimed) == queued
    assert {r.worker for r in store.list_runs(limit=None)} <= {"w0", "w1", "w2"}


def _append_from_child(st, run_id: int) -> None:  # type: ignore[no-untyped-def]
    st.append_metrics(run_id, [{"key": "child", "step": 0, "value": 1.0}])


def test_a_store_inherited_through_fork_gets_fresh_connections(sqlite_store):
    rid = sqlite_store.create_run({}, method="m", status="running")
    sqlite_store.get_run(rid)  # a pooled connection now exists in the parent
    child = mp.get_context("fork").Process(target=_append_from_child, args=(sqlite_store, rid))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    sqlite_store.append_metrics(rid, [{"key": "parent", "step": 0, "value": 1.0}])
    assert sorted(m["key"] for m in sqlite_store.get_metrics(rid)) == ["child", "parent"]
