"""ASHA through real job processes: a worker's poll runs the supervisor, which stops a running trial at
its first rung, and the trial's own process ends it ``cancelled`` with the reason in its history.

To make the loss certain, the sweep already holds a finished run that reached the rung first with a
score no real run can reach (2.0): every real run is then below the rung's cut."""
from __future__ import annotations

import time

import pytest

from backend.jobs.worker import Worker
from backend.sweeps.expand import expand, tag
from backend.sweeps.local import queue_sweep
from backend.sweeps.spec import load_spec
from tests.job_helpers import job_config, write_assets


@pytest.mark.slow
def test_asha_stops_a_running_trial_and_it_ends_cancelled_with_the_reason(tmp_path, bert_tok):
    from storage import open_store

    assets = write_assets(tmp_path / "assets", bert_tok, repeat=3)
    base = job_config(assets, steps=60, out=tmp_path / "runs")
    base["train"].update(eval_every=1, eval_limit=4)
    spec = load_spec({"name": "asha-e2e", "base": base, "seeds": [13],
                      "early_stop": {"kind": "asha", "grace_steps": 1, "reduction_factor": 2}})
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "artifacts") as store:
        (run_id,) = queue_sweep(store, spec)
        (trial,) = expand(spec)
        # the sweep's first arrival at the rung: another configuration, finished, with a score no real run
        # reaches
        other = trial.config.to_dict()
        other["sweep"] = {**other["sweep"], "key": "a-better-configuration"}
        first = store.create_run(other, method="lora", seed=21, tags=[tag("asha-e2e")], status="running")
        store.append_metrics(first, [{"key": "eval/accuracy", "step": 1, "value": 2.0, "wall_time": 1.0}])
        store.set_status(first, "succeeded")
        worker = Worker(store, concurrency=1)
        deadline = time.monotonic() + 240
        try:
            while time.monotonic() < deadline and store.get_run(run_id).status in ("queued", "running"):
                worker.poll()
                time.sleep(0.3)
        finally:
            worker.stop()
        info = store.get_run(run_id)
        assert info.status == "cancelled", (info.status, info.error)
        note = info.history[-1].note
        assert note.startswith("stopped early by ASHA at step ") and "< rung cut" in note, note
        stopped_at = int(info.metrics["asha/stopped_at"])
        assert stopped_at >= 1 and info.metrics["eval/accuracy"] <= 1.0
        assert max(e["step"] for e in store.get_metrics(run_id, keys=["train/loss"])) < 60   # it did stop early
