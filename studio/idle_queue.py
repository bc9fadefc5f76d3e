"""Gradio's event queue, woken by work instead of polling for it.

Why: an idle studio (no browser, nothing queued) used ~6% of a core. py-spy showed the server's event-loop
thread: Gradio 6's ``Queue.start_processing`` polls an empty queue with ``asyncio.sleep(0.001)`` (1000
wake-ups a second) and ``start_progress_updates`` polls every 10 ms even with no job running. This queue
runs the same loop body, but when there is nothing to start it waits on an ``asyncio.Event`` that
``push`` (a new event) and the end of ``process_events`` (a free slot) set, so a queued event starts as
soon as before while an idle queue wakes once a second (a safety net for any path that adds work
without ``push``). Progress updates wait the same way until a job is running.

The loop body is Gradio 6.31's, so the swap is made only for that version: an upgraded Gradio keeps its
own queue (correct, only busier), and tests/test_idle.py fails until this module is checked against it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import gradio as gr
from gradio import queueing
from gradio.utils import run_coro_in_background, set_task_name

log = logging.getLogger(__name__)

GRADIO_VERSION = "6.31.0"   # the version whose start_processing loop body is reproduced below
SAFETY_WAKE_S = 1.0         # an idle queue still looks once a second (work added without push)


class WakeableQueue(queueing.Queue):
    """``queueing.Queue`` whose idle loops sleep until work arrives (see the module docstring)."""

    # made per start by ``_init_wakeups`` (the swap keeps the instance; start() may run again after close)
    _work: asyncio.Event | None = None
    _busy: asyncio.Event | None = None
    idle_wakeups: int = 0          # how often the dispatch loop woke and found nothing to start

    def _init_wakeups(self) -> None:
        self._work, self._busy, self.idle_wakeups = asyncio.Event(), asyncio.Event(), 0

    def _wake(self) -> None:
        if self._work is not None:
            self._work.set()

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        event.clear()   # no await between the wake-up and this: a push that set it is seen by the next check

    async def push(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().push(*args, **kwargs)
        self._wake()
        return result

    async def process_events(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().process_events(*args, **kwargs)
        finally:
            self._wake()   # a slot is free: a waiting event may start

    def start(self) -> None:
        self._init_wakeups()
        super().start()

    async def start_processing(self) -> None:
        assert self._work is not None and self._busy is not None, "start() makes the wake-up events"
        try:
            while not self.stopped:
                event_batch = None
                if len(self) and None in self.active_jobs:
                    async with self.delete_lock:
                        event_batch = self.get_events()
                if not event_batch:
                    self.idle_wakeups += 1
                    await self._wait(self._work, SAFETY_WAKE_S)
                    continue
                # from here on, Gradio 6.31's loop body (queueing.Queue.start_processing)
                events, batch, concurrency_id = event_batch
                self.active_jobs[self.active_jobs.index(None)] = events
                event_queue = self.event_queue_per_concurrency_id[concurrency_id]
                event_queue.current_concurrency += 1
                start_time = time.time()
                fn = events[0].fn
                event_queue.start_times_per_fn[fn].add(start_time)
                for event in events:
                    if (a := self.event_analytics.get(event._id)) is not None:
                        a["status"] = "processing"
                task = run_coro_in_background(self.process_events, events, batch, start_time, fn)
                set_task_name(task, events[0].session_hash, fn._id, events[0]._id, batch)
                self._asyncio_tasks.add(task)
                task.add_done_callback(self._asyncio_tasks.discard)
                self._busy.set()
                if self.live_updates:
                    self.broadcast_estimations(concurrency_id)
        finally:
            self.stopped = True
            self._cancel_asyncio_tasks()

    async def start_progress_updates(self) -> None:
        assert self._busy is not None, "start() makes the wake-up events"
        while not self.stopped:
            events = [evt for job in self.active_jobs if job is not None for evt in job]
            if not events:
                await self._wait(self._busy, SAFETY_WAKE_S)
                continue
            for event in events:
                if event.progress_pending and event.progress:
                    event.progress_pending = False
                    self.send_message(event, event.progress)
            await asyncio.sleep(self.progress_update_sleep_when_free)


def use_wakeable_queue(demo: gr.Blocks) -> bool:
    """Swap ``demo``'s queue (after ``demo.queue()``, before ``launch``) for a WakeableQueue, keeping its
    settings; returns whether it swapped (False on a Gradio version this loop was not checked against)."""
    queue = getattr(demo, "_queue", None)
    if gr.__version__ != GRADIO_VERSION or type(queue) is not queueing.Queue:
        log.warning("gradio %s: keeping its own event queue (the idle-friendly one is checked against %s)",
                    gr.__version__, GRADIO_VERSION)
        return False
    queue.__class__ = WakeableQueue
    return True
