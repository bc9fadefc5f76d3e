"""Sweeps through Ray Tune: ASHA's STOP carried out through the run's record (a unit test on Tune's own
scheduler), and a two-configuration sweep on a local Ray instance into a throwaway PostgreSQL store whose
runs and table are the ones a local sweep records."""
from __future__ import annotations

import dataclasses
import os
from types import SimpleNamespace

import pytest

from storage import open_store
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk
from tests.ray_helpers import ray_local  # noqa: F401 - the module's one local Ray instance
from tests.storage_helpers import pg_cluster  # noqa: F401

pytest.importorskip("ray", reason="Ray tests skipped: the 'ray' package is not installed")


def _trial(run_id: int) -> SimpleNamespace:
    return SimpleNamespace(trial_id=f"t{run_id}", config={"run": run_id})


def test_asha_stop_becomes_a_stop_on_the_run_and_tune_continues():
    from ray.tune.schedulers import TrialScheduler

    from backend.sweeps.ray_tune import asha_scheduler

    stops = []
    sched = asha_scheduler({"metric": "accuracy", "grace_steps": 2, "reduction_factor": 2}, 8,
                           lambda run_id, stop: stops.append((run_id, stop)))
    a, b, c = (_trial(i) for i in (1, 2, 3))
    for t in (a, b, c):
        sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, a, {"step": 1, "accuracy": 0.1}) == TrialScheduler.CONTINUE   # before grace
    assert sched.on_trial_result(None, a, {"step": 2, "accuracy": 0.9}) == TrialScheduler.CONTINUE   # first at rung 2
    # lost at rung 2: asked to stop through its record, not killed
    assert sched.on_trial_result(None, b, {"step": 3, "accuracy": 0.5}) == TrialScheduler.CONTINUE
    assert [(rid, s.rung, s.step, s.value, s.cut) for rid, s in stops] == [(2, 2, 3, 0.5, 0.9)]
    assert "stopped early by ASHA at step 3: accuracy 0.5 < rung cut 0.9" == stops[0][1].reason
    sched.on_trial_result(None, c, {"step": 2, "accuracy": 0.95})      # above the cut: goes on
    sched.on_trial_result(None, a, {"step": 8, "accuracy": 0.2})       # the last step: a finished run is no loser
    assert [rid for rid, _ in stops] == [2]


def test_tune_judges_configurations_and_stops_all_their_seeds():
    """Seeds of one configuration are one unit, as in the local rule: its first seed at a rung brings the
    configuration's mean there, and a losing configuration stops every one of its runs, queued ones too."""
    from ray.tune.schedulers import TrialScheduler

    from backend.sweeps.ray_tune import asha_scheduler

    stops = []
    configs = {1: "method=lora", 2: "method=lora", 3: "method=bitfit", 4: "method=bitfit", 5: "method=ia3"}
    sched = asha_scheduler({"metric": "accuracy", "grace_steps": 2, "reduction_factor": 2}, 8,
                           lambda run_id, stop: stops.append((run_id, stop)), configs=configs)
    trials = {i: _trial(i) for i in configs}
    for t in trials.values():
        sched.on_trial_add(None, t)
    sched.on_trial_result(None, trials[1], {"step": 2, "accuracy": 0.9})      # lora reaches rung 2: 0.9
    sched.on_trial_result(None, trials[2], {"step": 2, "accuracy": 0.1})      # lora's other seed: decided already
    assert stops == []                                                         # a seed is never judged alone
    # bitfit's first seed loses at rung 2 against lora: both bitfit runs stop, the second one still queued
    assert sched.on_trial_result(None, trials[3], {"step": 3, "accuracy": 0.4}) == TrialScheduler.CONTINUE
    assert [(rid, s.step, s.rung, s.value, s.cut, s.seeds) for rid, s in stops] == [(3, 3, 2, 0.4, 0.9, 1),
                                                                                   (4, 0, 2, 0.4, 0.9, 1)]
    assert stops[0][1].reason == ("stopped early by ASHA at step 3: its configuration's accuracy 0.4 (mean of 1 "
                                  "seed at the rung) < rung cut 0.9")
    sched.on_trial_result(None, trials[5], {"step": 2, "accuracy": 0.95})     # a single-seed configuration above
    assert len(stops) == 2


def test_a_stop_cancels_a_queued_seed_at_once_with_the_reason(tmp_path):
    from backend.sweeps.asha import Stop, stop_reason
    from backend.sweeps.ray_tune import stop_run

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts")
    queued = store.create_run({"sweep": {"name": "s", "key": "k"}}, method="lora", status="queued")
    done = store.create_run({"sweep": {"name": "s", "key": "k"}}, method="lora", status="running")
    store.set_status(done, "succeeded")
    stop = Stop(run_id=queued, step=0, rung=2, value=0.4, cut=0.9, metric="accuracy", seeds=1)
    apply = stop_run(store)
    apply(queued, stop)
    apply(done, dataclasses.replace(stop, run_id=done))
    info = store.get_run(queued)
    assert info.status == "cancelled" and stop.reason in info.history[-1].note
    assert stop_reason(info.metrics) == stop.reason                  # what the sweep table shows for it
    assert store.get_run(done).status == "succeeded" and not store.get_metrics(done)   # an ended run is left alone
    store.close()


def test_tune_report_sends_dev_evaluations_only():
    from backend.sweeps.ray_tune import TuneReport

    sent = []
    sink = TuneReport("accuracy", report=sent.append)
    for key, value, step in (("train/loss", 0.7, 1), ("eval/accuracy", 0.5, 2), ("eval/macro_f1", 0.4, 2),
                             ("final/accuracy", 0.6, 4), ("eval/accuracy", float("nan"), 4)):
        sink.emit(key, value, step)
    assert sent == [{"step": 2, "accuracy": 0.5}, {"step": 4, "accuracy": -1.0}]


def _one_class_dev_files(assets, tmp_path) -> tuple[str, str]:
    """The dev rows of one class each (negative first). The tiny model predicts one class (negative), so a
    configuration scores 1 on one file and 0 on the other: of the four (method x file) trials, one at a
    time in grid order, each file-0 trial reaches the first rung after a 1 was recorded there and ASHA
    stops it."""
    import json

    rows = [json.loads(line) for line in (assets / "dev.jsonl").read_text().splitlines()]
    out = []
    for label in ("negative", "positive"):
        path = tmp_path / f"dev-{label}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows if r["label"] == label))
        out.append(str(path))
    return out[0], out[1]


STEPS = 40   # long enough for Tune's stop to reach a run before it ends (a tiny model's run of 4 steps could finish first)


@pytest.mark.slow
def test_a_sweep_through_tune_into_postgres_records_runs_and_asha_stops(ray_local, assets, tmp_path,
                                                                         pg_cluster):  # noqa: F811
    from backend.sweeps.expand import tag
    from backend.sweeps.ray_tune import run_sweep_ray
    from backend.sweeps.spec import load_spec

    store = open_store(pg_cluster.new_database(), tmp_path / "artifacts")
    base = job_config(assets, STEPS, tmp_path / "out")
    base["train"].update(eval_every=1)
    neg, pos = _one_class_dev_files(assets, tmp_path)
    base["resources"] = {"cpus": 2}      # the whole local instance: one trial at a time
    spec = load_spec({"name": "tiny-ray", "base": base, "seeds": [13],
                      "grid": {"method.name": ["lora", "bitfit"], "data.eval": [neg, pos]},
                      "early_stop": {"kind": "asha", "metric": "accuracy", "grace_steps": 1, "reduction_factor": 2}})
    out = run_sweep_ray(store, spec)
    runs = store.list_runs(tag=tag("tiny-ray"), limit=None, newest_first=False)
    assert [r.id for r in runs] == out["runs"] and len(runs) == 4
    assert len({r.config["sweep"]["key"] for r in runs}) == 4
    stopped, first_rung = [], {}   # run -> (when, accuracy) of its first dev evaluation: ASHA's first rung
    for r in runs:
        info = store.get_run(r.id)
        started = [h for h in info.history if h.status == "running"]
        assert len(started) == 1 and "Ray Tune trial" in started[0].note and info.pid != os.getpid()
        metrics = store.get_metrics(r.id, keys=["eval/accuracy"])
        evals = [m["step"] for m in metrics]
        first_rung[r.id] = (metrics[0]["wall_time"], metrics[0]["value"])
        if info.status == "cancelled":      # ASHA stopped it: the reason is on the run, as a local sweep writes it
            assert "asha/rung_cut" in info.metrics and evals and max(evals) < STEPS
            stopped.append(r.id)
        else:
            assert info.status == "succeeded", info.error
            assert evals[:4] == [1, 2, 3, 4] and "final/accuracy" in info.metrics
    assert sorted(v for _, v in first_rung.values()) == [0.0, 0.0, 1.0, 1.0]
    # Tune picks the order of its trials: ASHA stops every run that scored 0 at the first rung after a run had
    # scored 1 there (a 0 before any 1 has nothing to be cut against); later rungs may stop more as scores move
    expected = {rid for rid, (t, v) in first_rung.items()
                if v == 0 and any(v1 == 1 and t1 < t for t1, v1 in first_rung.values())}
    assert expected and expected <= set(stopped) and len(stopped) < 4, (first_rung, stopped)
    assert len(out["table"]) == 4 and sum(row["finished"] for row in out["table"]) == 4 - len(stopped)
    assert any(row["reasons"] and "stopped early by ASHA" in row["reasons"][0] for row in out["table"])
    store.close()


@pytest.mark.slow
def test_seeds_of_a_configuration_share_its_fate_through_tune(ray_local, assets, tmp_path, pg_cluster):  # noqa: F811
    """Two seeds per configuration, one trial at a time: a configuration cut at a rung stops its running
    seed and cancels its queued one with the same reason, so no configuration keeps only its lucky seeds."""
    from backend.sweeps.expand import tag
    from backend.sweeps.ray_tune import run_sweep_ray
    from backend.sweeps.spec import load_spec

    store = open_store(pg_cluster.new_database(), tmp_path / "artifacts")
    base = job_config(assets, STEPS, tmp_path / "out")
    base["train"].update(eval_every=1)
    base["resources"] = {"cpus": 2}
    neg, pos = _one_class_dev_files(assets, tmp_path)
    spec = load_spec({"name": "tiny-ray-seeds", "base": base, "seeds": [13, 14],
                      "grid": {"method.name": ["lora"], "data.eval": [neg, pos]},
                      "early_stop": {"kind": "asha", "metric": "accuracy", "grace_steps": 1, "reduction_factor": 2}})
    run_sweep_ray(store, spec)
    runs = store.list_runs(tag=tag("tiny-ray-seeds"), limit=None, newest_first=False)
    by_config: dict[str, list] = {}
    for r in runs:
        by_config.setdefault(r.config["sweep"]["key"], []).append(store.get_run(r.id))
    assert len(by_config) == 2 and all(len(v) == 2 for v in by_config.values())
    first = {}                       # configuration -> (when, accuracy) of its first seed's first evaluation
    for key, seeds in by_config.items():
        evals = [m for r in seeds for m in store.get_metrics(r.id, keys=["eval/accuracy"])]
        m = min(evals, key=lambda e: e["wall_time"])
        first[key] = (m["wall_time"], m["value"])
    # a configuration scoring 0 at the first rung after one scored 1 there loses: both its seeds end cancelled,
    # the queued one before it started, with the configuration's reason; the other keeps both its seeds
    losers = {k for k, (t, v) in first.items() if v == 0 and any(v1 == 1 and t1 < t for t1, v1 in first.values())}
    assert losers, first             # Tune ran them in grid order (data.eval: the negative rows first)
    for key, seeds in by_config.items():
        assert {r.status for r in seeds} == ({"cancelled"} if key in losers else {"succeeded"}), (key, seeds)
    for r in (r for k in losers for r in by_config[k]):
        assert "asha/rung_cut" in r.metrics and "its configuration's accuracy 0" in r.history[-1].note
    assert any(r.history[-1].note.startswith("cancelled before it started") for k in losers for r in by_config[k])
    store.close()


@pytest.mark.parametrize("executor, stopped", [(None, 1), ("ray-tune", 0)])
def test_the_local_supervisor_leaves_a_tune_sweep_to_tune(tmp_path, executor, stopped):
    """Two deciders on one sweep would write two reasons: the store-side ASHA skips Tune's sweeps."""
    from backend.sweeps.supervise import supervise

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts")
    sweep = {"name": "s", "key": "k", "params": {}, "seeds": [13], "executor": executor,
             "early_stop": {"kind": "asha", "metric": "accuracy", "grace_steps": 1, "reduction_factor": 2}}
    for i, acc in enumerate((0.9, 0.1)):
        run_id = store.create_run({"sweep": dict(sweep, key=f"k{i}")}, method="lora", tags=["sweep:s"],
                                  status="running")
        store.append_metrics(run_id, [{"key": "eval/accuracy", "value": acc, "step": 1, "wall_time": 1.0 + i}])
    assert len(supervise(store)) == stopped
    store.close()
