"""Jobs end to end: runs execute in child processes claimed by a worker; cancel; kill -9; resume."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from backend.jobs import Worker, cancel, resume, submit
from backend.jobs.paths import run_dir
from storage import open_store
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk
from tests.storage_helpers import wait_for
from backend.jobs.paths import log_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts")
    yield st
    st.close()


def _loss_steps(store, run_id):
    return [m["step"] for m in store.get_metrics(run_id, keys=["train/loss"])]


@pytest.mark.slow
def test_worker_runs_queued_runs_each_in_its_own_process(store, assets, tmp_path):
    ids = [submit(store, job_config(assets, 3, tmp_path / "out")) for _ in range(2)]
    worker = Worker(store, concurrency=1, log_dir=tmp_path / "logs")
    worker.poll()
    assert [store.get_run(i).status for i in ids] == ["running", "queued"]   # concurrency limit
    worker.run(once=True, poll_s=0.2)
    for run_id in ids:
        info = store.get_run(run_id)
        assert info.status == "succeeded", (info.error, log_file(tmp_path / "logs", store, run_id).read_text()[-2000:])
        assert info.pid != os.getpid()
        assert _loss_steps(store, run_id) == [1, 2, 3]
        names = {a.name for a in store.list_artifacts(run_id)}
        assert {"run.json", "trainable.safetensors", "adapter/adapter_model.safetensors"} <= names
        assert "final/accuracy" in info.metrics


@pytest.mark.slow
def test_cancel_takes_effect_within_a_step(store, assets, tmp_path):
    run_id = submit(store, job_config(assets, 500, tmp_path / "out"))
    worker = Worker(store, concurrency=1, log_dir=tmp_path / "logs")
    worker.poll()
    assert wait_for(lambda: len(_loss_steps(store, run_id)) >= 2, timeout=120)
    cancel(store, run_id)
    while worker.children:
        worker.poll()
        time.sleep(0.2)
    info = store.get_run(run_id)
    assert info.status == "cancelled", info.error
    assert max(_loss_steps(store, run_id)) < 500


@pytest.mark.slow
def test_kill_9_marks_failed_and_resume_continues_from_the_checkpoint(store, assets, tmp_path):
    cfg = job_config(assets, 60, tmp_path / "out")
    run_id = submit(store, cfg)
    worker = Worker(store, concurrency=1, log_dir=tmp_path / "logs")
    worker.poll()
    ckpt = run_dir(store, run_id, store.get_run(run_id).config) / "checkpoint" / "state.json"
    assert wait_for(lambda: ckpt.exists() and json.loads(ckpt.read_text())["loop"]["step"] >= 6, timeout=180)
    os.kill(worker.children[run_id].pid, signal.SIGKILL)
    assert wait_for(lambda: (worker.poll() or True) and not worker.children, timeout=30)
    info = store.get_run(run_id)
    assert info.status == "failed" and "SIGKILL" in info.error
    saved = json.loads(ckpt.read_text())["loop"]["step"]
    new_id = resume(store, run_id)
    worker.run(once=True, poll_s=0.2)
    new = store.get_run(new_id)
    assert new.status == "succeeded", new.error
    assert new.parent_run_id == run_id
    steps = _loss_steps(store, new_id)
    assert steps[0] == saved + 1 and steps[-1] == 60


@pytest.mark.slow
def test_a_worker_killed_takes_its_runs_processes_with_it(store, assets, tmp_path):
    """Children die with their worker (a warm child's parent is the job server, which ends with it)."""
    import subprocess
    import sys

    import psutil

    run_id = submit(store, job_config(assets, 100_000, tmp_path / "out"))
    worker = subprocess.Popen([sys.executable, "-m", "backend", "worker", "--db", store.url], cwd=str(ROOT),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(_loss_steps(store, run_id)) >= 1, timeout=180)
        child = store.get_run(run_id).pid
        assert child not in (None, worker.pid)
        assert psutil.Process(child).ppid() != worker.pid       # forked by the job server: a warm start
    finally:
        worker.kill()
        worker.wait()

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    assert wait_for(gone, timeout=30)
    store.reap_dead_runs(90.0)
    info = store.get_run(run_id)
    assert info.status == "failed", info.status
