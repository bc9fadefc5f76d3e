"""Runs never lie about their state: a run whose process is gone is reaped as ``failed: process gone``
by whoever opens the store for work, ``storage check`` reports it without changing it, ``--resume`` takes
it, and SIGTERM / SIGINT end a run as ``cancelled`` after a last checkpoint."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from backend.errors import ConfigError
from backend.jobs import Worker, resume
from backend.liveness import keep_alive
from backend.jobs.signals import StopOnSignal
from storage import open_store
from storage.models import Run
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk
from tests.storage_helpers import wait_for
from tests.tiny import tiny_model
from backend.jobs.paths import log_file

ROOT = Path(__file__).resolve().parents[1]
CFG = {"model": "tiny", "template": "{text_a} It was {mask}.", "verbalizer": {"a": ["a"], "b": ["b"]},
       "data": {"train": "x.jsonl", "eval": "x.jsonl"}, "method": {"name": "lora"}}


@pytest.fixture
def store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts")
    yield st
    st.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def _running(store, **fields) -> int:
    """A running run recorded by this process, then with ``fields`` changed (pid, host, heartbeat_at...)."""
    run_id = store.create_run(CFG, method="lora", status="running")
    with store.write() as s:
        row = s.get(Run, run_id)
        for k, v in fields.items():
            setattr(row, k, v)
    return run_id


def test_a_run_whose_process_died_is_failed_as_process_gone(store):
    pid = _dead_pid()
    run_id = _running(store, pid=pid)
    assert store.reap_dead_runs() == [run_id]
    info = store.get_run(run_id)
    assert info.status == "failed" and info.error.startswith("process gone")
    for detail in (socket.gethostname(), f"pid {pid}", "last heartbeat"):
        assert detail in info.error, info.error
    assert store.reap_dead_runs() == []                         # once


def test_a_zombie_process_is_dead(store):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc.kill()
        assert wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, timeout=10)
        run_id = _running(store, pid=proc.pid)
        assert store.reap_dead_runs() == [run_id]
    finally:
        proc.wait()


def test_a_reused_pid_does_not_keep_a_run_alive(store):
    """The pid is alive but its process started after the run last reported: someone else's process."""
    born = psutil.Process().create_time()
    run_id = _running(store, pid=os.getpid(), started_at=born - 120, heartbeat_at=born - 60)
    assert store.reap_dead_runs() == [run_id]
    assert "process gone" in store.get_run(run_id).error


def test_a_live_run_is_left_alone(store):
    run_id = _running(store)
    assert store.reap_dead_runs() == []
    assert store.get_run(run_id).status == "running"


def test_runs_on_other_hosts_are_reaped_only_by_a_stale_heartbeat(store):
    run_id = _running(store, host="elsewhere.example", pid=_dead_pid())
    assert store.reap_dead_runs() == []                       # that pid means nothing here
    # a container with host networking: the same hostname, its own pid namespace (or another boot)
    twin = _running(store, host=f"{socket.gethostname()} (0123abcd)", pid=_dead_pid())
    assert store.reap_dead_runs() == [] and store.get_run(twin).status == "running"
    assert store.get_run(_running(store)).host.startswith(socket.gethostname() + " (")   # this one's, said
    with store.write() as s:
        s.get(Run, run_id).heartbeat_at -= 700
    assert store.reap_dead_runs(stale_after_s=600) == [run_id]
    error = store.get_run(run_id).error
    assert error.startswith("process gone") and "no heartbeat for" in error and "elsewhere.example" in error


def test_check_reports_dead_runs_and_changes_nothing(store):
    run_id = _running(store, pid=_dead_pid())
    report = store.check()
    assert not report["ok"]
    assert any(f"run {run_id}" in p and "process gone" in p for p in report["problems"]), report
    assert store.get_run(run_id).status == "running"


def test_storage_check_cli_reports_a_dead_run(store, tmp_path):
    run_id = _running(store, pid=_dead_pid())
    proc = subprocess.run([sys.executable, "-m", "storage", "check", "--db", store.url], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 1 and f"run {run_id}" in proc.stdout and "process gone" in proc.stdout
    assert store.get_run(run_id).status == "running"


def test_the_worker_reaps_a_dead_run_at_once(store):
    run_id = _running(store, pid=_dead_pid())
    Worker(store, concurrency=1).poll()
    assert store.get_run(run_id).error.startswith("process gone")


def test_the_worker_leaves_its_own_children_to_their_exit_status(store):
    """A child that died between the worker's exit check and its liveness check is reaped next poll with
    how it died (killed by SIGKILL), not as a generic 'process gone'."""
    class Exited:                     # dead, its exit status not collected yet
        code: int | None = None

        def poll(self) -> int | None:
            return self.code

    run_id = _running(store, pid=_dead_pid())
    worker = Worker(store, concurrency=1)
    worker.children[run_id] = child = Exited()
    worker.poll()
    assert store.get_run(run_id).status == "running"
    child.code = -9
    worker.poll()
    assert "SIGKILL" in store.get_run(run_id).error


def test_the_cli_reaps_dead_runs_when_it_opens_the_store(store):
    from backend.cli.common import open_store as cli_open_store   # eval, train and --resume all open it

    run_id = _running(store, pid=_dead_pid())
    opened = cli_open_store(argparse.Namespace(db=store.url, no_db=False))
    try:
        assert store.get_run(run_id).status == "failed"
    finally:
        opened.close()


def test_resume_reaps_a_dead_running_run_and_refuses_a_live_one(store):
    alive = _running(store)
    with pytest.raises(ConfigError, match=rf"run {alive} is running .*pid {os.getpid()}"):
        resume(store, alive)
    dead = _running(store, pid=_dead_pid())
    new_id = resume(store, dead)
    assert store.get_run(dead).error.startswith("process gone")
    assert store.get_run(new_id).parent_run_id == dead


def test_keep_alive_beats_until_the_block_ends(store):
    run_id = _running(store, heartbeat_at=1.0)
    with keep_alive(store, run_id, every_s=3600):
        assert store.get_run(run_id).heartbeat_at > 1.0          # at once, not after the first interval
    assert not any(t.name == f"heartbeat-run-{run_id}" for t in threading.enumerate())


def test_a_signal_only_sets_the_stop_flag(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(stop, timeout=5)
        assert stop.signal_name == "SIGTERM" and stop.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_cancelling_training_keeps_a_last_checkpoint(bert_tok, tmp_path):
    """Checkpoints are due every 4 steps of 40; a stop after step 3 must not throw those steps away."""
    from backend.config import RunConfig
    from backend.prompts.example import Example
    from backend.training import RunData, run_training

    rows = [Example(guid=i, text_a=f"this was a {w}", label=lab) for i, (w, lab) in
            enumerate([("great fun", "positive"), ("awful mess", "negative")] * 4)]
    cfg = RunConfig.from_dict({"model": "tiny", "data": {"eval": "x"}, "template": "{text_a} It was {mask}.",
                               "verbalizer": {"negative": ["bad"], "positive": ["good"]},
                               "method": {"name": "lora"},
                               "train": {"steps": 40, "batch_size": 4, "output_dir": str(tmp_path)}})
    calls = {"n": 0}

    def stop_after_3() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    dev = [Example(guid=i, text_a=f"{e.text_a}, again", label=e.label) for i, e in enumerate(rows[:2])]
    res = run_training(cfg, loaded=tiny_model("masked", bert_tok), data=RunData(train=rows, dev=dev),
                       cancel_check=stop_after_3)
    assert res.status == "cancelled" and res.steps == 3
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["loop"]["step"] == 3


def _train_config(root: Path, steps: int, out: Path, **train) -> dict:
    cfg = job_config(root, steps, out)
    cfg["train"].update(train)
    return cfg


def test_eval_cli_heartbeats_and_a_sigterm_ends_the_run_with_the_reason(assets, tmp_path, monkeypatch):
    """``python -m backend eval`` in process: the run heartbeats while it evaluates (so a long evaluation
    is never reaped as dead), and a SIGTERM ends the run with that reason and exit status 143."""
    import backend.pipeline
    from backend.cli import main

    cfg = {**_train_config(assets, 1, tmp_path), "method": {"name": "zero-shot"}}
    (tmp_path / "eval.json").write_text(json.dumps(cfg))
    real, seen = backend.pipeline.evaluate, {}

    def evaluate_then_sigterm(*args, progress=None, **kwargs):
        seen["beating"] = [t.name for t in threading.enumerate() if t.name.startswith("heartbeat-run-")]
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: progress is not None and _raises(progress), timeout=5)
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(backend.pipeline, "evaluate", evaluate_then_sigterm)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    previous = signal.signal(signal.SIGTERM, lambda *_: None)   # never let the test's SIGTERM end pytest
    try:
        assert main(["eval", str(tmp_path / "eval.json"), "--db", url]) == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    with open_store(url) as st:
        (run,) = st.list_runs()
        assert seen["beating"] == [f"heartbeat-run-{run.id}"]
        assert run.status == "failed" and "stopped by SIGTERM" in run.error


def _raises(progress) -> bool:
    try:
        progress(1, 2)
    except KeyboardInterrupt:
        return True
    return False


def _cli(tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    """``python -m backend ARGS`` in the background, output to files (a full pipe would block it)."""
    out = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the test's tmp dir
    return subprocess.Popen([sys.executable, "-m", "backend", *args], stdout=out, stderr=subprocess.STDOUT,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _loss_steps(store, run_id: int) -> list[int]:
    return [m["step"] for m in store.get_metrics(run_id, keys=["train/loss"])]


def _checkpoint_step(out: Path, run_id: int) -> int | None:
    try:
        (folder,) = out.glob(f"run-{run_id}-*")          # run-<id>-<uid>: one run's folder
        return json.loads((folder / "checkpoint" / "state.json").read_text())["loop"]["step"]
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_kill_9_is_process_gone_and_sigterm_is_cancelled_through_the_cli(assets, tmp_path):
    """The acceptance story with real processes: ``python -m backend train`` killed with -9 stays
    ``running`` until someone looks; ``storage check`` reports it; ``train --resume`` marks it failed
    (process gone) and continues from its checkpoint; SIGTERM to that run ends it ``cancelled`` with a
    checkpoint at the step it stopped, and the process exits with 143."""
    url, out = f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "out"
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps(_train_config(assets, 100_000, out, eval_every=5)))
    store = open_store(url, tmp_path / "artifacts")
    first = _cli(tmp_path, "first", "train", str(cfg), "--db", url)
    try:
        assert wait_for(lambda: store.list_runs() and (_checkpoint_step(out, store.list_runs()[0].id) or 0) >= 5,
                        timeout=180), (tmp_path / "first.log").read_text()[-3000:]
        (run,) = store.list_runs()
        assert run.status == "running" and run.pid == first.pid and run.heartbeat_at
    finally:
        first.kill()
        first.wait()
    assert store.get_run(run.id).status == "running"           # nobody has looked yet

    check = subprocess.run([sys.executable, "-m", "storage", "check", "--db", url], capture_output=True,
                           text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert check.returncode == 1 and f"run {run.id} is still marked running but process gone" in check.stdout
    assert store.get_run(run.id).status == "running"           # check only reports

    saved = _checkpoint_step(out, run.id)
    second = _cli(tmp_path, "second", "train", str(cfg), "--resume", str(run.id), "--db", url)
    try:
        assert wait_for(lambda: len(store.list_runs()) == 2 and len(_loss_steps(store, store.list_runs()[0].id)) >= 3,
                        timeout=180), (tmp_path / "second.log").read_text()[-3000:]
        old = store.get_run(run.id)
        assert old.status == "failed" and old.error.startswith("process gone") and f"pid {first.pid}" in old.error
        new_id = store.list_runs()[0].id
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 128 + signal.SIGTERM, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        second.kill()
        second.wait()
    new = store.get_run(new_id)
    assert new.parent_run_id == run.id and new.status == "cancelled"
    assert new.history[-1].note == "stopped by SIGTERM"
    steps = _loss_steps(store, new_id)
    assert steps[0] == saved + 1                                # continued from the checkpoint
    assert _checkpoint_step(out, new_id) == steps[-1]           # and lost no step when stopped
    store.close()


@pytest.mark.slow
def test_sigterm_to_a_job_child_cancels_its_run_after_a_last_checkpoint(assets, tmp_path):
    """``Worker.stop`` (the studio closing, ``python -m backend worker`` stopped) sends SIGTERM: the child
    checkpoints, records ``cancelled`` and exits; nothing is left ``running``."""
    from backend.jobs import submit

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts")
    out = tmp_path / "out"
    run_id = submit(store, _train_config(assets, 100_000, out, eval_every=5))
    worker = Worker(store, concurrency=1, log_dir=tmp_path / "logs")
    worker.poll()
    assert wait_for(lambda: len(_loss_steps(store, run_id)) >= 7, timeout=180), \
        log_file(tmp_path / "logs", store, run_id).read_text()[-3000:]
    worker.stop()
    assert not worker.children
    info = store.get_run(run_id)
    assert info.status == "cancelled", (info.error, log_file(tmp_path / "logs", store, run_id).read_text()[-3000:])
    assert info.history[-1].note == "stopped by SIGTERM"
    assert _checkpoint_step(out, run_id) == max(_loss_steps(store, run_id))
    store.close()
