"""Sweeps through Ray Tune: ASHA's STOP carried out through the run's record (a unit test on Tune's own
scheduler), and a two-configuration sweep on a local Ray instance into a throwaway PostgreSQL store whose
runs and table are the ones a local sweep records."""
from __future__ import annotations

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
