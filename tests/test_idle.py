"""An idle studio must not poll: its structural causes, counted (loop iterations, not CPU time, which a
loaded machine makes noisy). bench/bench_idle.py measures the CPU of the whole studio process."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import gradio as gr
import pytest

from backend.config import RunConfig
from backend.jobs import submit
from backend.services.jobs import JobRunner, sqlite_files
from bench.bench_idle import ExitedProcess
from storage import open_store
from studio.idle_queue import CalmServer, WakeableQueue, calm_queue, calm_server

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


def _call(base: str, text: str, timeout: float) -> str:
    """POST ``text`` to the named endpoint at ``base`` (``.../gradio_api/call/<name>``), then its event stream."""
    req = urllib.request.Request(base, data=json.dumps({"data": [text]}).encode(),
                                 headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(req, timeout=timeout).read())["event_id"]
    return urllib.request.urlopen(f"{base}/{event_id}", timeout=timeout).read().decode()


def test_gradio_queue_sleeps_while_idle_and_still_serves():
    """The studio's queue sleeps when idle (about two wake-ups a second; stock Gradio on Linux: ~1100), and
    queued calls still start and finish, one after the other."""
    with gr.Blocks() as demo:
        box_in, box_out = gr.Textbox(), gr.Textbox()
        box_in.submit(lambda s: s[::-1], box_in, box_out, api_name="rev")
    calm_queue(demo.queue(default_concurrency_limit=1))
    queue = demo._queue
    assert isinstance(queue, WakeableQueue) and queue.sleep_when_free >= 0.05
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        time.sleep(0.3)
        before = queue.idle_waits
        time.sleep(1.0)
        assert queue.idle_waits - before <= 4   # stock Gradio on Linux wakes ~1100 times a second
        base = demo.local_url.rstrip("/") + "/gradio_api/call/rev"
        for text in ("abc", "studio"):           # queued calls start and finish, one after the other
            stream = _call(base, text, 10)
            assert f'["{text[::-1]}"]' in stream, stream
    finally:
        demo.close()


def test_events_build_no_monitoring_summary_and_keep_few_records(monkeypatch):
    """Stock Gradio builds a pandas frame of its last 10,000 events after each event (~40 ms with the
    studio's functions); the calm queue never does, and keeps at most ANALYTICS_KEPT event records."""
    from gradio import queueing

    import studio.idle_queue as idle

    frames = []
    monkeypatch.setattr(queueing.Queue, "_get_df", staticmethod(lambda records: frames.append(records)))
    monkeypatch.setattr(idle, "ANALYTICS_KEPT", 2)
    with gr.Blocks() as demo:
        box_in, box_out = gr.Textbox(), gr.Textbox()
        box_in.submit(lambda s: s.upper(), box_in, box_out, api_name="up")
    calm_queue(demo.queue())
    demo.launch(prevent_thread_lock=True, quiet=True, enable_monitoring=False)
    base = demo.local_url.rstrip("/") + "/gradio_api/call/up"
    try:
        for text in ("a", "b", "c", "d"):
            assert f'["{text.upper()}"]' in _call(base, text, 30)
        assert frames == [] and len(demo._queue.event_analytics) <= 2
    finally:
        demo.close()


def test_the_studio_launches_with_the_calm_queue(tmp_path, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    try:
        assert isinstance(demo._queue, WakeableQueue) and isinstance(demo.server, CalmServer)
        with pytest.raises(urllib.error.HTTPError) as refused:   # Gradio's traffic page is not the studio's
            urllib.request.urlopen(demo.local_url.rstrip("/") + "/monitoring/summary", timeout=30)
        assert refused.value.code == 403
    finally:
        demo.close()


def test_the_server_ticks_once_a_second_keeps_its_date_and_closes_at_once():
    """uvicorn's loop wakes ten times a second; the calm server once, with the Date header still fresh."""
    from email.utils import parsedate_to_datetime

    with gr.Blocks() as demo:
        gr.Textbox()
    calm_server()
    demo.queue().launch(prevent_thread_lock=True, quiet=True)
    server = demo.server
    ticks = []
    real = server.on_tick

    async def counted(counter):
        ticks.append(counter)
        return await real(counter)

    server.on_tick = counted
    try:
        assert isinstance(server, CalmServer)
        time.sleep(2.5)
        assert 1 <= len(ticks) <= 4, ticks                 # uvicorn's own loop: ~25
        time.sleep(1.1)
        date = urllib.request.urlopen(demo.local_url, timeout=10).headers["date"]
        assert abs(parsedate_to_datetime(date).timestamp() - time.time()) <= 2.5, date
    finally:
        t0 = time.perf_counter()
        demo.close()
        closed = time.perf_counter() - t0
    assert closed < 0.9 and not server.thread.is_alive(), closed   # not a tick's wait


def test_two_queued_events_run_side_by_side():
    """An event queued while another starts is not held until the first ends (concurrency 2)."""
    import threading

    with gr.Blocks() as demo:
        box_in, box_out = gr.Textbox(), gr.Textbox()
        box_in.submit(lambda s: (time.sleep(1.0), s)[1], box_in, box_out, api_name="slow")
    calm_queue(demo.queue(default_concurrency_limit=2))
    demo.launch(prevent_thread_lock=True, quiet=True)
    base = demo.local_url.rstrip("/") + "/gradio_api/call/slow"
    done: list[float] = []

    def call(text: str) -> None:
        _call(base, text, 10)
        done.append(time.perf_counter())

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=call, args=(t,)) for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert len(done) == 2 and max(done) - t0 < 1.9, [d - t0 for d in done]   # serial would be >= 2 s
    finally:
        demo.close()
