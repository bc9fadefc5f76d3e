"""The sweep table, the Pareto front and the supervisor, on runs recorded in a real SQLite store (no
training: the runs' metric events are written the way a run's process writes them)."""
from __future__ import annotations

import pytest

from backend.jobs.child import _end_note
from backend.jobs.queue import submit
from backend.sweeps.expand import expand
from backend.sweeps.pareto import front
from backend.sweeps.spec import load_spec
from backend.sweeps.supervise import stop_configuration, supervise
from backend.sweeps.table import rows, to_csv
from storage import open_store

BASE = {"model": "tiny", "data": {"train": "train.jsonl", "eval": "dev.jsonl"}, "template": "{text_a} It was {mask}.",
        "verbalizer": {"neg": ["bad"], "pos": ["good"]}, "method": {"name": "lora"},
        "train": {"steps": 8, "eval_every": 2}}


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "artifacts") as s:
        yield s


def queued(store, **kw):
    spec = load_spec({"name": "t", "base": BASE, "seeds": [13, 21], **kw})
    trials = expand(spec)
    return spec, trials, [submit(store, t.config) for t in trials]


def finish(store, run_id, acc, *, trainable=100, step_s=0.5, mem=300.0):
    store.set_status(run_id, "running")
    store.append_metrics(run_id, [{"key": "final/accuracy", "value": acc, "step": 8},
                                  {"key": "final/macro_f1", "value": acc - 0.1, "step": 8},
                                  {"key": "eval/accuracy", "value": acc, "step": 8},
                                  {"key": "params/trainable", "value": trainable, "step": 0},
                                  {"key": "train/seconds_per_step", "value": step_s, "step": 8},
                                  {"key": "train/peak_memory_mb", "value": mem, "step": 8}])
    store.set_status(run_id, "succeeded")


def test_table_groups_seeds_best_first_and_exports_csv(store):
    _spec, trials, ids = queued(store, grid={"method.name": ["lora", "prompt-tuning"]})
    assert [t.key for t in trials] == ["method=lora"] * 2 + ["method=prompt-tuning"] * 2
    finish(store, ids[0], 0.7, trainable=1000)
    finish(store, ids[1], 0.9, trainable=1000)
    finish(store, ids[2], 0.85, trainable=10, step_s=0.2)
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    # prompt-tuning's 0.85 is one seed of two: lora, with both seeds in, ranks first
    assert [r["key"] for r in table] == ["method=lora", "method=prompt-tuning"]
    lora, pt = table
    assert pt["finished"] == 1 and pt["queued"] == 1 and pt["seeds"] == 2 and pt["active"] and not pt["complete"]
    assert pt["mean"] == pytest.approx(0.85) and pt["std"] is None and lora["complete"]
    assert lora["mean"] == pytest.approx(0.8) and lora["std"] == pytest.approx(0.1414, abs=1e-4)
    assert lora["macro_f1"] == pytest.approx(0.7) and not lora["active"] and lora["run_ids"] == ids[:2]
    assert lora["trainable"] == 1000 and lora["seconds_per_step"] == 0.5 and lora["peak_memory_mb"] == 300.0
    # fewer parameters and nearly as good: both on the front by parameters, prompt-tuning alone... by time
    assert front(table, "trainable") == ["method=prompt-tuning"]
    finish(store, ids[3], 0.6, trainable=10, step_s=0.2)
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    assert [r["key"] for r in table] == ["method=lora", "method=prompt-tuning"]
    assert front(table, "trainable") == ["method=prompt-tuning", "method=lora"]
    # a newer run of the same trial (a resume, a re-run) stands for that seed: counted once
    again = submit(store, trials[0].config)
    finish(store, again, 0.9, trainable=1000)
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    lora = next(r for r in table if r["key"] == "method=lora")
    assert lora["finished"] == 2 and lora["mean"] == pytest.approx(0.9) and lora["std"] == 0.0
    assert lora["run_ids"] == [ids[0], ids[1], again]
    text = to_csv(table)
    head, first = text.splitlines()[:2]
    assert head.startswith("rank,key,method,metric,mean,std,finished,seeds") and head.endswith("param:method.name")
    assert first.startswith("1,method=lora,lora,accuracy,0.9,") and f"{ids[0]} {ids[1]} {again}" in first


def test_csv_quotes_what_a_spreadsheet_would_run():
    row = {"rank": 1, "key": "=cmd()", "method": "lora", "metric": "accuracy", "mean": None, "std": None,
           "finished": 0, "seeds": 1, "stopped": 0, "failed": 0, "macro_f1": None, "last_eval": None,
           "trainable": None, "seconds_per_step": None, "peak_memory_mb": None, "run_ids": [1], "reasons": [],
           "params": {"method.init_text": "@SUM(A1)"}}
    line = to_csv([row]).splitlines()[1]
    assert line.startswith("1,'=cmd(),") and line.endswith(",'@SUM(A1)")


def test_supervisor_stops_the_losing_configuration_at_the_rung_with_its_reason(store):
    spec, trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]},
                               early_stop={"grace_steps": 2, "reduction_factor": 2})
    a, b = ids[0], ids[2]                    # two configurations, seed 13 each; their seed 21 still queued
    for run_id, acc, at in ((a, 0.9, 100.0), (b, 0.4, 101.0)):
        store.set_status(run_id, "running")
        store.append_metrics(run_id, [{"key": "eval/accuracy", "value": acc, "step": 2, "wall_time": at}])
    stops = supervise(store, now=lambda: 200.0)
    # the configuration lost, so both its seeds stop: the running one and the one not started yet
    assert [(s.run_id, s.step) for s in stops] == [(b, 2), (ids[3], 0)]
    info = store.get_run(b)
    assert info.cancel_requested and info.status == "running" and not store.get_run(a).cancel_requested
    assert store.get_run(ids[1]).status == "queued"
    sibling = store.get_run(ids[3])
    why = "its configuration's accuracy 0.4 (mean of 1 seed at the rung) < rung cut 0.65"
    assert sibling.status == "cancelled" and sibling.history[-1].note == \
        f"cancelled before it started: stopped early by ASHA at step 0: {why}"
    assert supervise(store) == []            # asked once: not again
    # the run's own process then ends it: cancelled, with the reason in its history (never "failed")
    cfg = trials[2].config
    note = _end_note(store, b, cfg, "cancelled", None)
    assert note == f"stopped early by ASHA at step 2: {why}"
    store.set_status(b, "cancelled", note=note)
    assert store.get_run(b).history[-1].note == note
    table = rows(store.list_runs(tag=f"sweep:{spec.name}", limit=None))
    stopped = next(r for r in table if b in r["run_ids"])
    assert stopped["stopped"] == 2 and note in stopped["reasons"] and stopped["last_eval"] == 0.4


def test_a_configuration_is_judged_by_the_mean_of_its_seeds(store):
    """One bad seed does not stop a good configuration, and a lucky seed does not save a bad one: the
    mean over the seeds at the rung is what is compared. Each seed judged alone, the first
    configuration would lose its unlucky seed and keep its lucky one (a survivors' mean)."""
    _spec, _trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]},
                                 early_stop={"grace_steps": 2, "reduction_factor": 2})
    evals = {ids[0]: (0.9, 100.0), ids[1]: (0.6, 103.0),    # configuration A: mean 0.75
             ids[2]: (0.7, 101.0), ids[3]: (0.62, 102.0)}   # configuration B: mean 0.66
    for run_id, (acc, at) in evals.items():
        store.set_status(run_id, "running")
        store.append_metrics(run_id, [{"key": "eval/accuracy", "value": acc, "step": 2, "wall_time": at}])
    stops = supervise(store, now=lambda: 200.0)
    assert sorted(s.run_id for s in stops) == [ids[2], ids[3]]
    assert {s.seeds for s in stops} == {2} and stops[0].value == pytest.approx(0.66)


def test_supervisor_leaves_sweeps_without_early_stopping_alone(store):
    _spec, _trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]})
    for run_id, acc in ((ids[0], 0.9), (ids[2], 0.1)):
        store.set_status(run_id, "running")
        store.append_metrics(run_id, [{"key": "eval/accuracy", "value": acc, "step": 2}])
    assert supervise(store) == []


def test_stop_configuration_cancels_its_runs_with_the_reason(store):
    _spec, trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]})
    store.set_status(ids[2], "running")
    stopped = stop_configuration(store, "t", trials[2].key)
    assert stopped == [ids[2], ids[3]]
    assert store.get_run(ids[3]).status == "cancelled"          # queued: at once
    assert store.get_run(ids[2]).cancel_requested
    assert _end_note(store, ids[2], trials[2].config, "cancelled", None).startswith("stopped from the sweep table")
    assert not store.get_run(ids[0]).cancel_requested
    assert stop_configuration(store, "t", "no-such-key") == []


def test_a_configuration_with_a_stopped_seed_ranks_after_the_complete_ones(store):
    """Its mean is over the seeds left: 0.95 from one seed must not outrank 0.8 over both."""
    _spec, _trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]})
    finish(store, ids[0], 0.8)
    finish(store, ids[1], 0.8)
    finish(store, ids[2], 0.95)
    store.set_status(ids[3], "running")
    store.set_status(ids[3], "cancelled", note="stopped")
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    assert [(r["key"], r["mean"], r["stopped"]) for r in table] == [
        ("train.lr=0.001", pytest.approx(0.8), 0), ("train.lr=0.003", pytest.approx(0.95), 1)]


def test_one_surviving_seed_has_no_std_and_ranks_after_a_complete_configuration(store):
    """A: 1 of 5 seeds succeeded (0.95), 4 failed. B: 5/5 at 0.936 ± 0.003. A's 0.95 is one lucky number:
    B ranks first, A shows no spread ("n/a (1 seed)", not "± 0.0000") and stays off the Pareto front."""
    _spec, trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]}, seeds=[13, 21, 42, 87, 100])
    a = [i for i, t in zip(ids, trials) if t.key == "train.lr=0.001"]
    b = [i for i, t in zip(ids, trials) if t.key == "train.lr=0.003"]
    finish(store, a[0], 0.95, trainable=10)
    for run_id in a[1:]:
        store.set_status(run_id, "running")
        store.set_status(run_id, "failed", error="CUDA out of memory")
    for run_id, acc in zip(b, (0.933, 0.934, 0.936, 0.938, 0.939)):
        finish(store, run_id, acc, trainable=1000)
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    assert [r["key"] for r in table] == ["train.lr=0.003", "train.lr=0.001"]
    best, lucky = table
    assert best["complete"] and best["std"] == pytest.approx(0.0026, abs=1e-4)
    assert not lucky["complete"] and lucky["failed"] == 4 and lucky["std"] is None
    from backend.cli.sweep import _line
    from backend.sweeps.table import score_text

    assert score_text(lucky) == "0.9500 ± n/a (1 seed)" and "± 0.0000" not in _line(lucky)
    assert "n/a (1 seed)" in _line(lucky)
    # cheaper and "better", but a survivors' mean: not on the front
    assert front(table, "trainable") == ["train.lr=0.003"]
    assert to_csv(table).splitlines()[2].split(",")[5] == ""        # A's std: empty, not 0.0


def test_a_stopped_configuration_is_off_the_front(store):
    _spec, _trials, ids = queued(store, grid={"train.lr": [0.001, 0.003]})
    finish(store, ids[0], 0.8, trainable=1000)
    finish(store, ids[1], 0.8, trainable=1000)
    finish(store, ids[2], 0.9, trainable=10)
    store.set_status(ids[3], "running")
    store.set_status(ids[3], "cancelled", note="stopped")
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    assert front(table, "trainable") == ["train.lr=0.001"]


def test_the_dev_column_is_the_last_evaluation_and_says_so(store):
    """RunInfo.metrics keeps each key's value at its highest step: after early stopping that is the last
    dev evaluation, ``patience`` evaluations past the best. The column must not call it the best."""
    from studio.views.sweep import table_headers

    _spec, _trials, ids = queued(store, grid={"train.lr": [0.001]})
    store.set_status(ids[0], "running")
    store.append_metrics(ids[0], [{"key": "eval/accuracy", "value": 0.9, "step": 2},
                                  {"key": "eval/accuracy", "value": 0.7, "step": 4},
                                  {"key": "eval/accuracy", "value": 0.6, "step": 6}])
    store.set_status(ids[0], "cancelled", note="stopped")
    table = rows(store.list_runs(tag="sweep:t", limit=None))
    assert table[0]["last_eval"] == 0.6 and "best_eval" not in table[0]
    headers = table_headers(table)
    assert "last dev accuracy (top seed)" in headers and not any("best" in h for h in headers)
    assert "last_eval" in to_csv(table).splitlines()[0].split(",")
