"""Queue semantics without child processes: claims, concurrency, reaping a killed child, resume rules."""
from __future__ import annotations

import pytest

from backend.errors import ConfigError
from backend.jobs import Worker, cancel, resume, submit
from backend.jobs.runner import exit_reason
from storage import open_store

CFG = {"model": "m", "template": "{text_a} It was {mask}.", "verbalizer": {"a": ["x"], "b": ["y"]},
       "data": {"train": "t.jsonl", "eval": "e.jsonl"}, "method": {"name": "lora", "r": 4}}


class FakeProc:
    def __init__(self) -> None:
        self.code: int | None = None
        self.pid = 0

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.code = -15


class FakeWorker(Worker):
    def _spawn(self, run_id: int) -> FakeProc:  # type: ignore[override]
        return FakeProc()


@pytest.fixture
def store(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 'q.db'}", tmp_path / "artifacts")
    yield st
    st.close()


def test_two_workers_never_claim_the_same_run_and_respect_concurrency(store):
    ids = [submit(store, CFG) for _ in range(3)]
    a, b = FakeWorker(store, concurrency=1, name="a"), FakeWorker(store, concurrency=1, name="b")
    assert a.poll() == [ids[0]] and b.poll() == [ids[1]]
    assert a.poll() == [] and b.poll() == []              # each is full
    assert store.get_run(ids[2]).status == "queued"
    assert {store.get_run(i).worker for i in ids[:2]} == {"a", "b"}
    a.children[ids[0]].code = 0                            # finished (the child set its own status)
    store.set_status(ids[0], "succeeded")
    assert a.poll() == [ids[2]]


def test_a_killed_child_leaves_its_run_failed_with_the_reason(store):
    run_id = submit(store, CFG)
    w = FakeWorker(store, concurrency=1)
    w.poll()
    w.children[run_id].code = -9
    w.poll()
    info = store.get_run(run_id)
    assert info.status == "failed" and "SIGKILL" in info.error and "kill -9" in info.error
    assert "exited with status 3" in exit_reason(3)


def test_resume_and_cancel_rules(store):
    run_id = submit(store, CFG)
    with pytest.raises(ConfigError, match="only failed or cancelled"):
        resume(store, run_id)
    cancel(store, run_id)                                   # queued: cancelled at once
    assert store.get_run(run_id).status == "cancelled"
    new_id = resume(store, run_id)
    new = store.get_run(new_id)
    assert new.status == "queued" and new.parent_run_id == run_id and "resume" in new.tags
    assert new.config == store.get_run(run_id).config


def test_submit_rejects_a_bad_config_before_it_reaches_a_worker(store):
    with pytest.raises(ConfigError, match="method.name"):
        submit(store, {**CFG, "method": {"name": "lorra"}})
    assert store.list_runs() == []
