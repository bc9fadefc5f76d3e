"""Runs: creation, lifecycle and its history, claiming, cancellation, heartbeats, queries, comparison,
metrics (full history, incremental polling) and predictions."""
from __future__ import annotations

import math
import os
import threading

import pytest

from storage import InvalidInput, InvalidTransition, NotFound
from storage.sink import StoreSink
from tests.storage_helpers import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)

CONFIG = {"model": {"id": "tiny-bert"}, "method": {"name": "soft", "n_tokens": 4}, "seed": 1}


def _versions(store):
    t = store.save_version("template", "t", 'x {"mask"}')
    v = store.save_version("verbalizer", "v", '{"neg": ["bad"], "pos": ["good"]}')
    return t, v


def test_a_run_records_exactly_what_produced_it(store):
    t, v = _versions(store)
    snap = store.save_dataset_snapshot("csv:data.csv", {"text_a": "sentence", "label": "label"},
                                       "fp-123", {"train": 8, "test": 4}, ["neg", "pos"])
    parent = store.create_run(CONFIG, method="soft")
    rid = store.create_run(CONFIG, method="soft", seed=7, model_id="tiny-bert", model_revision="abc",
                           template_version_id=t.id, verbalizer_version_id=v.id,
                           dataset_snapshot_id=snap, parent_run_id=parent, tags=["sweep", "a"],
                           project="demo")
    run = store.get_run(rid)
    assert (run.config, run.method, run.seed, run.model_id, run.model_revision) == \
           (CONFIG, "soft", 7, "tiny-bert", "abc")
    assert (run.template_version_id, run.verbalizer_version_id, run.dataset_snapshot_id,
            run.parent_run_id) == (t.id, v.id, snap, parent)
    assert run.tags == ("a", "sweep") and run.project == "demo" and run.status == "queued"
    assert store.get_dataset_snapshot(snap).labels == ["neg", "pos"]


def test_the_rows_a_run_reads_can_be_recorded_before_the_rest_of_its_lineage(store):
    rid = store.create_run(CONFIG, method="label-search")
    snap = store.save_dataset_snapshot("x", {"text_a": "s"}, "fp-rows", {"train": 3}, ["a"])
    store.set_rows(rid, snap)
    run = store.get_run(rid)
    assert run.dataset_snapshot_id == snap and run.verbalizer_version_id is None
    with pytest.raises(NotFound):
        store.set_rows(rid, snap + 1000)
    assert store.get_run(rid).dataset_snapshot_id == snap


def test_dataset_snapshots_dedupe_by_fingerprint_and_columns(store):
    a = store.save_dataset_snapshot("x", {"text_a": "s"}, "fp", {"train": 1}, ["a"])
    b = store.save_dataset_snapshot("moved/x", {"text_a": "s"}, "fp", {"train": 1}, ["a"])
    c = store.save_dataset_snapshot("x", {"text_a": "other"}, "fp", {"train": 1}, ["a"])
    assert a == b != c


def test_lifecycle_history_host_pid_and_times(store):
    rid = store.create_run(CONFIG, method="zero-shot")
    store.set_status(rid, "running")
    run = store.set_status(rid, "failed", error="CUDA out of memory")
    assert [h.status for h in run.history] == ["queued", "running", "failed"]
    assert run.error == "CUDA out of memory" and run.history[-1].note == "CUDA out of memory"
    assert run.pid == os.getpid() and run.host
    assert run.created_at <= run.started_at <= run.finished_at


@pytest.mark.parametrize("path, bad", [
    ([], "succeeded"),                       # queued cannot finish without running
    (["running", "succeeded"], "running"),   # finished runs stay finished
    (["cancelled"], "running"),
    (["running"], "queued"),
])
def test_illegal_transitions_are_refused(store, path, bad):
    rid = store.create_run(CONFIG, method="m")
    for status in path:
        store.set_status(rid, status)
    with pytest.raises(InvalidTransition, match=f"run {rid} is .*; it cannot become {bad}"):
        store.set_status(rid, bad)
    assert len(store.get_run(rid).history) == len(path) + 1


def test_unknown_status_and_missing_run(store):
    rid = store.create_run(CONFIG, method="m")
    with pytest.raises(InvalidInput, match="unknown run status 'done'"):
        store.set_status(rid, "done")
    with pytest.raises(NotFound, match="no run with id 999"):
        store.set_status(999, "running")
    with pytest.raises(NotFound, match="no template version with id 42"):
        store.create_run(CONFIG, method="m", template_version_id=42)
    with pytest.raises(NotFound, match="no run with id 999"):
        store.get_metrics(999)
    with pytest.raises(NotFound, match="no run with id 999"):
        store.append_metrics(999, [{"key": "loss", "step": 0, "value": 1.0}])
    with pytest.raises(InvalidInput, match="config must be a dict"):
        store.create_run("not a dict", method="m")


def test_claim_takes_oldest_queued_once(store):
    ids = [store.create_run(CONFIG, method="m") for _ in range(3)]
    assert store.claim_next_run("w1") == ids[0]
    assert store.claim_next_run("w2") == ids[1]
    run = store.get_run(ids[0])
    assert run.status == "running" and run.worker == "w1" and "claimed by w1" in run.history[-1].note


def test_claim_race_between_threads_never_double_claims(store):
    ids = {store.create_run(CONFIG, method="m") for _ in range(12)}
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (rid := store.claim_next_run(name)) is not None:
            with lock:
                claimed.append(rid)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_cancel_queued_and_running(store):
    queued = store.create_run(CONFIG, method="m")
    store.request_cancel(queued)
    assert store.get_run(queued).status == "cancelled" and store.cancel_requested(queued)
    running = store.create_run(CONFIG, method="m", status="running")
    assert not store.cancel_requested(running)
    store.request_cancel(running)
    assert store.cancel_requested(running) and store.get_run(running).status == "running"
    store.set_status(running, "cancelled")


def test_stale_runs_fail_with_a_reason(store):
    alive = store.create_run(CONFIG, method="m", status="running")
    dead = store.create_run(CONFIG, method="m", status="running")
    store.heartbeat(alive)
    assert store.fail_stale_runs(older_than_s=3600) == []
    with store.write() as s:  # simulate a worker that stopped beating long ago
        from storage.models import Run
        s.get(Run, dead).heartbeat_at -= 7200
    assert store.fail_stale_runs(older_than_s=3600) == [dead]
    run = store.get_run(dead)
    assert run.status == "failed" and "no heartbeat" in run.error
    assert store.get_run(alive).status == "running"
    with pytest.raises(InvalidTransition, match="only a running run sends heartbeats"):
        store.heartbeat(dead)


def test_list_runs_filters(store):
    a = store.create_run(CONFIG, method="soft", tags=["x"], project="p1")
    b = store.create_run(CONFIG, method="zero-shot", tags=["x", "y"])
    c = store.create_run(CONFIG, method="soft", status="running")
    ids = lambda runs: [r.id for r in runs]  # noqa: E731
    assert ids(store.list_runs()) == [c, b, a]
    assert ids(store.list_runs(method="soft")) == [c, a]
    assert ids(store.list_runs(tag="x")) == [b, a]
    assert ids(store.list_runs(status="running")) == [c]
    assert ids(store.list_runs(project="p1")) == [a]
    assert ids(store.list_runs(limit=1)) == [c]
    assert ids(store.list_runs(newest_first=False, limit=2, offset=1)) == [b, c]


def test_metrics_full_history_summary_and_incremental_polling(store):
    rid = store.create_run(CONFIG, method="m", status="running")
    store.append_metrics(rid, [{"key": "loss", "step": s, "value": 1.0 / (s + 1), "wall_time": 100.0 + s}
                               for s in range(5)])
    first = store.get_metrics(rid)
    assert [m["step"] for m in first] == [0, 1, 2, 3, 4] and first[0]["wall_time"] == 100.0
    store.append_metrics(rid, [{"key": "acc", "step": 4, "value": 0.75},
                               {"key": "loss", "step": 5, "value": float("nan")}])
    new = store.get_metrics(rid, since_id=first[-1]["id"])
    assert [m["key"] for m in new] == ["acc", "loss"] and math.isnan(new[1]["value"])
    assert len(store.get_metrics(rid, keys=["acc"])) == 1
    summary = store.get_run(rid).metrics
    assert summary["acc"] == 0.75 and math.isnan(summary["loss"])
    assert store.list_runs()[0].metrics["acc"] == 0.75


@pytest.mark.parametrize("event, message", [
    ({"step": 1, "value": 1.0}, "metric event #0 needs a non-empty string 'key'"),
    ({"key": "loss", "step": 1}, "metric event #0 \\('loss'\\) has no 'value'"),
    ({"key": "loss", "step": 1, "value": "high"}, "metric event #0 \\('loss'\\)"),
])
def test_bad_metric_events_name_the_event(store, event, message):
    rid = store.create_run(CONFIG, method="m")
    with pytest.raises(InvalidInput, match=message):
        store.append_metrics(rid, [event])
    assert store.get_metrics(rid) == []


def test_sink_batches_and_flushes(store):
    rid = store.create_run(CONFIG, method="m", status="running")
    with StoreSink(store, rid, flush_every=10, flush_interval_s=3600) as sink:
        for step in range(25):
            sink.emit("loss", 0.5, step)
        assert sink.written == 20 and sink.pending == 5
        assert len(store.get_metrics(rid)) == 20
    assert len(store.get_metrics(rid)) == 25


def test_predictions_round_trip_and_duplicate_index_is_refused(store):
    rid = store.create_run(CONFIG, method="m")
    rows = [{"index": 1, "gold": "pos", "predicted": "neg", "probs": [0.4, 0.6]},
            {"index": 0, "gold": 1, "predicted": 1, "probs": {"neg": 0.1, "pos": 0.9}}]
    assert store.add_predictions(rid, rows) == 2
    got = store.get_predictions(rid)
    assert got[0] == rows[1] and got[1] == rows[0]
    with pytest.raises(InvalidInput, match="already has a prediction"):
        store.add_predictions(rid, [{"index": 0, "gold": 1, "predicted": 0}])
    with pytest.raises(InvalidInput, match="prediction row #0 must be a dict with an 'index'"):
        store.add_predictions(rid, [{"gold": 1}])


def test_compare_runs_shows_only_differences(store):
    a = store.create_run(CONFIG, method="soft", seed=1)
    b = store.create_run({**CONFIG, "method": {"name": "soft", "n_tokens": 8}}, method="soft", seed=2)
    store.append_metrics(a, [{"key": "acc", "step": 1, "value": 0.8}])
    store.append_metrics(b, [{"key": "acc", "step": 1, "value": 0.9}, {"key": "f1", "step": 1,
                                                                         "value": 0.5}])
    cmp = store.compare_runs([a, b])
    assert cmp["config_diff"] == {"config.method.n_tokens": [4, 8], "seed": [1, 2]}
    assert cmp["metrics"] == {"acc": [0.8, 0.9], "f1": [None, 0.5]}


@pytest.mark.parametrize("run_id", [0, -1, 2 ** 63, 10 ** 40, True])
def test_an_id_no_database_can_hold_is_simply_not_found(store, run_id):
    from storage import NotFound

    with pytest.raises(NotFound, match="no run with id"):
        store.get_run(run_id)
    with pytest.raises(NotFound):
        store.get_predictions(run_id)
