"""An idle studio must not poll: its structural causes, counted (loop iterations, not CPU time, which a
loaded machine makes noisy). bench/bench_idle.py measures the CPU of the whole studio process."""
from __future__ import annotations

import json
import time
import urllib.request

import gradio as gr
import pytest
from gradio import queueing

from backend.config import RunConfig
from backend.jobs import submit
from backend.services.jobs import JobRunner, sqlite_files
from bench.bench_idle import ExitedProcess
from storage import open_store
from studio.idle_queue import GRADIO_VERSION, WakeableQueue, use_wakeable_queue

CFG = {"template": "{text_a} It was {mask}.", "verbalizer": {"negative": ["bad"], "positive": ["good"]},
       "data": {"eval": "builtin:movie-reviews"}}


def _wait_until(check, timeout: float) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - t0


@pytest.fixture
def runner_store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    runner = JobRunner(store, poll_s=0.05, idle_poll_s=30)
    runner.worker._spawn = lambda run_id: ExitedProcess()
    yield runner, store
    runner.stop()
    store.close()


def test_idle_runner_does_not_query_the_database(runner_store):
    runner, _ = runner_store
    runner.start()
    time.sleep(1.0)
    # 20 wake-ups of two stat calls each; one poll at start, none after (was one a wake-up, i.e. 20)
    assert runner.polls <= 2, runner.polls
    assert runner.wakeups <= 1.0 / runner.poll_s + 3


def test_runs_start_at_once_from_the_studio_and_from_another_process(runner_store, tmp_path):
    runner, store = runner_store
    runner.poll_s = 0.5
    runner.start()
    time.sleep(0.2)
    run_id = runner.submit(RunConfig.from_dict(CFG))            # the studio's own submit wakes the loop
    assert _wait_until(lambda: store.get_run(run_id).status != "queued", 2.0) < 0.4
    other = open_store(f"sqlite:///{tmp_path / 'studio.db'}")   # as the CLI queues a run: a file change
    try:
        run_id = submit(other, RunConfig.from_dict(CFG))
        assert _wait_until(lambda: store.get_run(run_id).status != "queued", 3.0) < 1.5
    finally:
        other.close()
    assert runner.polls <= 6, runner.polls   # one per piece of news, not one per wake-up


def test_only_sqlite_files_are_watched(tmp_path):
    assert sqlite_files(f"sqlite:///{tmp_path}/a.db?timeout=5") == (tmp_path / "a.db", tmp_path / "a.db-wal")
    assert sqlite_files("sqlite://") is None and sqlite_files("sqlite:///:memory:") is None
    assert sqlite_files("postgresql://u@h/db") is None


def test_gradio_queue_sleeps_while_idle_and_still_serves():
    assert gr.__version__ == GRADIO_VERSION, (
        f"gradio {gr.__version__}: check studio/idle_queue.py's copy of Queue.start_processing against it, "
        "then update GRADIO_VERSION")
    with gr.Blocks() as demo:
        box_in, box_out = gr.Textbox(), gr.Textbox()
        box_in.submit(lambda s: s[::-1], box_in, box_out, api_name="rev")
    demo.queue(default_concurrency_limit=1)
    assert use_wakeable_queue(demo) and isinstance(demo._queue, WakeableQueue)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        queue = demo._queue
        time.sleep(0.3)
        before = queue.idle_wakeups
        time.sleep(1.0)
        assert queue.idle_wakeups - before <= 2   # stock Gradio: ~1000 (asyncio.sleep(0.001) when free)
        base = demo.local_url.rstrip("/") + "/gradio_api/call/rev"
        for text in ("abc", "studio"):           # queued calls start and finish, one after the other
            req = urllib.request.Request(base, data=json.dumps({"data": [text]}).encode(),
                                         headers={"Content-Type": "application/json"})
            event_id = json.loads(urllib.request.urlopen(req, timeout=10).read())["event_id"]
            stream = urllib.request.urlopen(f"{base}/{event_id}", timeout=10).read().decode()
            assert f'["{text[::-1]}"]' in stream, stream
    finally:
        demo.close()


def test_the_swap_is_refused_on_an_unchecked_queue():
    with gr.Blocks() as demo:
        gr.Textbox()
    demo.queue()
    demo._queue.__class__ = type("Other", (queueing.Queue,), {})   # not the exact class the copy is from
    assert not use_wakeable_queue(demo)
