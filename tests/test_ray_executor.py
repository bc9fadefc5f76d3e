"""Runs on a local Ray instance into a throwaway PostgreSQL store: each run a Ray task whose record is the
same as a local job's (started by the task's own process, metrics, artifacts, end status); cancel from the
store, ``ray.cancel`` (clean, SIGINT) and a killed worker (failed with Ray's reason, never left running);
the database password never reaches Ray's log files."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from backend.jobs import cancel, submit
from storage import open_store
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk
from tests.ray_helpers import ray_local  # noqa: F401 - the module's one local Ray instance
from tests.storage_helpers import pg_cluster, wait_for  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def pg_store(tmp_path, secret, pg_cluster):  # noqa: F811
    """A fresh PostgreSQL database whose URL carries a password (trust auth ignores it) to look for."""
    url = pg_cluster.new_database().replace("postgres@", f"postgres:{secret}@", 1)
    st = open_store(url, tmp_path / "artifacts")
    yield st
    st.close()


def _loss_steps(store, run_id):
    return [m["step"] for m in store.get_metrics(run_id, keys=["train/loss"])]


def _session_logs(ray) -> list[Path]:
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    return [p for p in session.rglob("*") if p.is_file()]


def test_ray_worker_runs_queued_runs_as_tasks_into_postgres(ray_local, pg_store, assets, tmp_path, secret):
    from backend.jobs.ray_executor import RayWorker

    ids = [submit(pg_store, job_config(assets, 3, tmp_path / "out")) for _ in range(2)]
    worker = RayWorker(pg_store, concurrency=2)
    worker.run(once=True, poll_s=0.2)
    for run_id in ids:
        info = pg_store.get_run(run_id)
        assert info.status == "succeeded", info.error
        assert info.pid != os.getpid()       # the Ray worker process ran it and recorded itself
        started = [h for h in info.history if h.status == "running"]
        assert len(started) == 1 and "Ray task" in started[0].note and started[0].pid == info.pid
        assert _loss_steps(pg_store, run_id) == [1, 2, 3]
        assert {"run.json", "adapter/adapter_model.safetensors"} <= {a.name for a in pg_store.list_artifacts(run_id)}
        assert "final/accuracy" in info.metrics
    leaked = [p for p in _session_logs(ray_local) if secret in p.read_text(errors="replace")]
    assert not leaked, f"the database password is in Ray's files: {leaked}"


def test_ray_workers_wait_for_openmp_threads_asleep(ray_local):
    """A Ray worker imports torch with sleeping OpenMP waits, as a local job child (backend/openmp.py)."""
    policy = ray_local.get(ray_local.remote(lambda: os.environ.get("OMP_WAIT_POLICY")).remote(), timeout=120)
    assert policy == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")


def test_cancel_from_the_store_and_ray_cancel_both_end_cancelled(ray_local, pg_store, assets, tmp_path):
    from backend.jobs.ray_executor import RayRuns

    runs = RayRuns(pg_store)
    a, b = (submit(pg_store, job_config(assets, 2000, tmp_path / "out")) for _ in range(2))
    ref_b = runs.submit(a) and runs.submit(b)
    assert wait_for(lambda: len(_loss_steps(pg_store, a)) >= 2 and len(_loss_steps(pg_store, b)) >= 2, timeout=180)
    cancel(pg_store, a)                 # the studio's / CLI's cancel: the task's own cancel check
    ray_local.cancel(ref_b)             # SIGINT in the task: the same clean end, named
    assert wait_for(lambda: (runs.finished() or True) and not runs.children, timeout=120)
    for run_id in (a, b):
        info = pg_store.get_run(run_id)
        assert info.status == "cancelled", info.error
        assert max(_loss_steps(pg_store, run_id)) < 2000
    assert "SIGINT" in (pg_store.get_run(b).history[-1].note or "")


def test_a_killed_worker_fails_its_run_with_the_reason(ray_local, pg_store, assets, tmp_path):
    from backend.jobs.ray_executor import RayRuns

    runs = RayRuns(pg_store)
    run_id = submit(pg_store, job_config(assets, 2000, tmp_path / "out"))
    ref = runs.submit(run_id)
    assert wait_for(lambda: len(_loss_steps(pg_store, run_id)) >= 1, timeout=180)
    ray_local.cancel(ref, force=True)   # the worker process exits at once: it records nothing itself
    assert wait_for(lambda: (runs.finished() or True) and not runs.children, timeout=60)
    info = pg_store.get_run(run_id)
    assert info.status == "failed" and info.error.startswith("process gone: its Ray")


def test_a_run_the_cluster_cannot_place_fails_and_one_cancelled_while_waiting_never_starts(
        ray_local, pg_store, assets, tmp_path):
    from backend.errors import ConfigError
    from backend.jobs.ray_executor import RayRuns

    cfg = job_config(assets, 3, tmp_path / "out")
    runs = RayRuns(pg_store)
    too_big = submit(pg_store, dict(cfg, resources={"cpus": 1, "gpus": 1}))   # no GPU in this cluster
    with pytest.raises(ConfigError, match="asks for 1 GPUs"):
        runs.submit(too_big)
    assert pg_store.get_run(too_big).status == "failed" and "the Ray cluster has 0" in pg_store.get_run(too_big).error

    # earlier tests' tasks may still be letting go of their CPUs: the blocker needs the whole instance
    assert wait_for(lambda: ray_local.available_resources().get("CPU", 0) >= 2, timeout=60), \
        ray_local.available_resources()
    def hold(seconds: float, flag: str) -> None:    # defined here: Ray ships it by value, no test import
        import time
        from pathlib import Path

        Path(flag).touch()
        time.sleep(seconds)

    started = tmp_path / "blocker-started"
    blocker = ray_local.remote(num_cpus=2)(hold).remote(60, str(started))   # both CPUs busy: the run waits
    try:
        assert wait_for(started.exists, timeout=60)   # else Ray may place the run first (its worker starts sooner)
        run_id = submit(pg_store, cfg)
        runs.submit(run_id)
        assert not runs.finished(timeout=2) and pg_store.get_run(run_id).status == "queued"
        cancel(pg_store, run_id)
        runs.cancel_orphans()
        assert wait_for(lambda: (runs.finished() or True) and not runs.children, timeout=30)
    finally:
        ray_local.cancel(blocker, force=True)
    info = pg_store.get_run(run_id)
    assert info.status == "cancelled" and [h.status for h in info.history] == ["queued", "cancelled"]


def test_cli_train_and_worker_with_the_ray_executor(ray_local, pg_store, assets, tmp_path, capsys):
    import json

    from backend.cli import main

    path = tmp_path / "run.json"
    path.write_text(json.dumps(job_config(assets, 2, tmp_path / "out")))
    assert main(["train", str(path), "--db", pg_store.url, "--executor", "ray"]) == 0
    out = json.loads(capsys.readouterr().out)
    info = pg_store.get_run(out["run_id"])
    assert out["status"] == info.status == "succeeded" and info.pid != os.getpid()
    queued = submit(pg_store, job_config(assets, 2, tmp_path / "out"))
    assert main(["worker", "--db", pg_store.url, "--once", "--executor", "ray"]) == 0
    assert pg_store.get_run(queued).status == "succeeded"


def test_the_studio_job_runner_sends_runs_to_ray(ray_local, pg_store, assets, tmp_path):
    from backend.config import RunConfig
    from backend.jobs.ray_executor import RayWorker
    from backend.services.jobs import JobRunner

    runner = JobRunner(pg_store, executor="ray", poll_s=0.2).start()
    try:
        assert isinstance(runner.worker, RayWorker)
        run_id = runner.submit(RunConfig.from_dict(job_config(assets, 2, tmp_path / "out")))
        assert wait_for(lambda: pg_store.get_run(run_id).status not in ("queued", "running"), timeout=180)
        info = pg_store.get_run(run_id)
        assert info.status == "succeeded", info.error
        assert "Ray task" in [h for h in info.history if h.status == "running"][0].note
    finally:
        runner.stop()
