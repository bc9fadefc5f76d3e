"""One run, one process: a job run in the caller's process heartbeats like a child's (so no reaper fails
it), ``train`` never leaves its run claimable, ``execute`` trains only a run it owns, an end recorded by
another process stands (never an InvalidTransition that stops a worker), and the studio stopping ends its
children's runs as cancelled, not killed."""
from __future__ import annotations

import functools
import json
import time
from types import SimpleNamespace

import pytest

from backend.liveness import keep_alive
from storage import open_store
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk
from tests.storage_helpers import sqlite_store, wait_for  # noqa: F401 - sqlite_store: a fresh SQLite store
from backend.jobs.paths import log_file


@pytest.fixture
def store(sqlite_store):
    return sqlite_store


def test_a_job_run_here_heartbeats_so_another_processs_reaper_leaves_it(store, monkeypatch):
    """A studio without a runner or the CLI runs a workbench job in its own process: minutes with no
    heartbeat were reaped by any worker on the database (stale time 1 s here for 90 s)."""
    import backend.workbench.jobbase as jobbase

    monkeypatch.setattr(jobbase, "keep_alive", functools.partial(keep_alive, every_s=0.1), raising=False)
    other = open_store(store.url)           # a studio or worker sharing the database
    job = store.create_run({}, method="template-search", status="queued")
    reaped: list[int] = []

    def runner(store, run_id, **kwargs):
        def work(info):
            time.sleep(1.5)
            reaped.extend(other.reap_dead_runs(stale_after_s=1.0))
            return {"ok": 1}
        return jobbase.run_as_job(store, run_id, work, result=("report", "r.json"), summary=lambda r: r)

    try:
        assert jobbase.run_here(store, job, runner) == "succeeded"
    finally:
        other.close()
    assert reaped == [] and store.get_run(job).status == "succeeded"
    assert jobbase.read_json(store, job, "report", "r.json") == {"ok": 1}


@pytest.mark.parametrize("when", ["during the work", "after the result was checked"])
def test_a_job_ended_by_another_process_keeps_that_end(store, when):
    """The job's own end does not crash over it (it returns the end that stands), and a run that did not
    succeed carries no result when it was ended before the result was written."""
    from backend.workbench.jobbase import read_json, run_as_job

    job = store.create_run({}, method="template-search", status="running")
    fail = functools.partial(store.set_status, job, "failed", error="process gone: reaped elsewhere")

    def work(info):
        if when == "during the work":
            fail()
        return {"ok": 1}

    def summary(result):
        if when != "during the work":
            fail()
        return {}

    assert run_as_job(store, job, work, result=("report", "r.json"), summary=summary) == "failed"
    info = store.get_run(job)
    assert info.status == "failed" and info.error == "process gone: reaped elsewhere"
    if when == "during the work":
        assert read_json(store, job, "report", "r.json") is None


CFG = {"model": "m", "template": "{text_a} It was {mask}.", "verbalizer": {"neg": ["bad"], "pos": ["good"]},
       "data": {"train": "/x.jsonl", "eval": "/y.jsonl"}, "method": {"name": "lora"}}


def _no_training(monkeypatch) -> list[int]:
    import backend.jobs.child as child

    trained: list[int] = []
    monkeypatch.setattr(child, "train_recorded", lambda store, run_id, *a, **k: trained.append(run_id))
    return trained


def test_execute_trains_no_run_another_process_claimed_or_that_has_ended(store, monkeypatch):
    from backend.jobs.child import execute
    from backend.jobs.queue import submit

    trained = _no_training(monkeypatch)
    run_id = submit(store, CFG)
    assert store.claim_next_run("studio-worker") == run_id          # claimed between submit and execute
    assert execute(store, run_id) == "running" and trained == []
    assert store.get_run(run_id).worker == "studio-worker"
    store.set_status(run_id, "failed", error="process gone: reaped")
    assert execute(store, run_id, claimed=True) == "failed" and trained == []   # a child for an ended run


def test_cli_train_and_resume_create_their_run_running_so_no_worker_claims_it(assets, tmp_path, monkeypatch):
    """``backend train`` used to create its run queued, then run it: a studio or worker on the same
    database could claim it in between, and both trained it."""
    import backend.jobs.child as child
    from backend.cli import main

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    real, rivals = child.execute, []

    def rival_first(store, run_id, **kwargs):
        rivals.append(store.claim_next_run("studio-worker"))   # a studio polling right then
        return real(store, run_id, **kwargs)

    def cancelled(store, run_id, *args, **kwargs):
        assert store.get_run(run_id).worker is None
        store.set_status(run_id, "cancelled", note="test")
        return SimpleNamespace(status="cancelled")

    monkeypatch.setattr(child, "execute", rival_first)
    monkeypatch.setattr(child, "train_recorded", cancelled)
    (tmp_path / "run.json").write_text(json.dumps(job_config(assets, 1, tmp_path / "out")))
    assert main(["train", str(tmp_path / "run.json"), "--db", url]) == 0
    with open_store(url) as st:
        (first,) = st.list_runs()
    assert main(["train", str(tmp_path / "run.json"), "--resume", str(first.id), "--db", url]) == 0
    assert rivals == [None, None]
    with open_store(url) as st:
        assert [r.status for r in st.list_runs()] == ["cancelled", "cancelled"]


class _Exited:
    pid = 0

    def poll(self) -> int:
        return -9


def _settles():
    """How each place records a run's process end: a worker's poll, a Ray task's end, a Ray Tune trial's."""
    from backend.jobs.ray_executor import RayRuns
    from backend.jobs.worker import Worker
    from backend.sweeps.ray_tune import _settle

    def worker_poll(store, run_id):
        worker = Worker(store, concurrency=1)
        worker.children[run_id] = _Exited()
        worker.poll()                                 # nothing queued: it only reaps its exited child

    def ray_settle(store, run_id):
        runs = RayRuns.__new__(RayRuns)
        errors = [type(n, (Exception,), {}) for n in ("Cancelled", "Crashed", "RayError")]
        runs.store, runs.ray = store, SimpleNamespace(get=lambda ref, timeout: None, exceptions=SimpleNamespace(
            TaskCancelledError=errors[0], WorkerCrashedError=errors[1], RayError=errors[2]))
        runs.settle(run_id, object())

    return {"worker": worker_poll, "ray": ray_settle,
            "ray-tune": lambda store, run_id: _settle(store, run_id, "its trial ended")}


@pytest.mark.parametrize("where", ["worker", "ray", "ray-tune"])
def test_an_end_recorded_elsewhere_between_the_read_and_the_write_stands(store, where):
    """A reaper elsewhere fails the run after this process read it running and before it writes its own
    end: the InvalidTransition used to escape (a worker's poll, and with it the worker and its children)."""
    run_id = store.create_run(CFG, method="lora", status="running")
    real = store.get_run

    def read_then_reaped_elsewhere(rid):
        info = real(rid)
        if info.status == "running":
            store.set_status(rid, "failed", error="process gone: reaped elsewhere")
        return info                                   # what this process read: still running

    store.get_run = read_then_reaped_elsewhere
    _settles()[where](store, run_id)
    info = real(run_id)
    assert info.status == "failed" and info.error == "process gone: reaped elsewhere"


def test_a_failed_poll_does_not_end_the_worker_loop(store):
    # a database hiccup (PostgreSQL restarting) raised out of Worker.run: the worker process died, and its
    # children with it (PR_SET_PDEATHSIG)
    from backend.jobs.worker import Worker

    worker, calls = Worker(store, concurrency=1), []

    def poll():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return []

    worker.poll = poll
    worker.run(poll_s=0, stop=lambda: len(calls) >= 2)
    assert len(calls) == 2


@pytest.mark.slow
def test_stopping_the_studio_cancels_its_cold_childs_run_after_sigterm(store, assets, tmp_path, monkeypatch):
    """A cold child dies (PR_SET_PDEATHSIG) when the thread that forked it ends: the studio's runner
    thread. Stopping ended that thread first, so the child was SIGKILLed and its run failed."""
    import backend.jobs.warm
    from backend.jobs import submit
    from backend.services.jobs import JobRunner

    monkeypatch.setattr(backend.jobs.warm, "available", lambda: False)     # a cold start
    run_id = submit(store, job_config(assets, 100_000, tmp_path / "out"))
    runner = JobRunner(store, poll_s=0.2, log_dir=tmp_path / "logs").start()
    log = log_file(tmp_path / "logs", store, run_id)
    assert wait_for(lambda: store.get_metrics(run_id, keys=["train/loss"]), timeout=180), log.read_text()[-3000:]
    runner.stop()
    info = store.get_run(run_id)
    assert info.status == "cancelled", (info.error, log.read_text()[-3000:])
    assert info.history[-1].note == "stopped by SIGTERM"


def test_two_databases_sharing_a_folder_never_share_a_runs_files(tmp_path):
    # run ids count up per database: two SQLite files in one folder both have a run 1, and with folders named
    # run-<id> the second's run attached the first's leftover weights as its own (and resumed from them)
    from backend.jobs.paths import existing_run_dir, run_dir
    from backend.serving import materialize_run

    a = open_store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "artifacts")
    b = open_store(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "artifacts")
    try:
        ra, rb = a.create_run(CFG, method="lora"), b.create_run(CFG, method="lora")
        assert ra == rb == 1 and run_dir(a, ra) != run_dir(b, rb)
        assert run_dir(a, ra).parent == run_dir(b, rb).parent == tmp_path / "runs"
        a.attach_artifact(ra, "config", "run.json", b"{}")
        assert materialize_run(a, ra, tmp_path / "serving") != tmp_path / "serving" / "run-1"
        with pytest.raises(Exception, match="no trained artifacts"):     # b's run 1 never sees a's files
            materialize_run(b, rb, tmp_path / "serving")
        legacy = tmp_path / "runs" / "run-1"                   # a folder from before the uid was in the name
        legacy.mkdir(parents=True)
        assert existing_run_dir(a, ra) == legacy and run_dir(a, ra) != legacy
    finally:
        a.close()
        b.close()


def test_a_run_card_never_shows_another_databases_run_log(tmp_path):
    # the studio's home keeps one logs folder; a database deleted and started again has a run 1 again, whose
    # card showed the old run 1's traceback as its own (logs were named run-<id>.log)
    from backend.services.jobs import JobRunner

    a = open_store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "artifacts")
    b = open_store(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "artifacts")
    try:
        ra, rb = a.create_run(CFG, method="lora"), b.create_run(CFG, method="lora")
        assert ra == rb == 1
        ja, jb = (JobRunner(s, log_dir=tmp_path / "logs") for s in (a, b))
        log_file(tmp_path / "logs", a, ra).parent.mkdir()
        log_file(tmp_path / "logs", a, ra).write_text("Traceback: a's run 1 failed\n")
        assert ja.log_tail(ra) == ["Traceback: a's run 1 failed"]
        assert jb.log_tail(rb) == []
        assert log_file(tmp_path / "logs", a, ra) != log_file(tmp_path / "logs", b, rb)
    finally:
        a.close()
        b.close()
