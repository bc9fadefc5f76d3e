"""Gradio's event queue and its web server, asleep while there is nothing to do.

Why: an idle studio (no browser, nothing queued) used ~6% of a core. py-spy showed the server's event-loop
thread: Gradio 6's queue looks for new events with ``asyncio.sleep(self.sleep_when_free)`` (1 ms on Linux:
1000 wake-ups a second) and for progress with ``asyncio.sleep(self.progress_update_sleep_when_free)``
(10 ms). Gradio's own Windows cadence (50 / 100 ms) still cost ~0.9% of a core here. So the studio keeps
Gradio's loops as they are and changes only what their sleeps mean: both delays become ``UntilWork``
values, and ``gradio.queueing``'s ``asyncio.sleep`` (through a forwarding namespace) reads such a value as
"until there is work": right away when an event could start (or, for progress, while a job runs), else
until a new event is pushed or a running one ends, with a wake-up a second as a safety net. Any other
delay sleeps as before. If a later Gradio stops sleeping through these attributes, the values are plain
floats of Gradio's Windows cadence: correct, only busier (tests/test_idle.py counts the wake-ups).

The server: uvicorn's main loop wakes ten times a second to see whether it should exit (and once a second
refreshes its Date header), which left the idle studio at ~0.55% of a core (strace: ~10 wake-ups a second
on the server's thread, each costing more in the kernel than in Python). ``CalmServer`` ticks once a second
(the Date header still refreshed each tick) and closing wakes it at once, so shutting down is as prompt.

Busy, the queue did work nobody reads: after every event Gradio 6 rebuilds a pandas frame of its last 10,000
events and takes per-function percentiles for its /monitoring page: ~40 ms of CPU an event with the
studio's ~60 named functions (measured), paid after each queued event's result is sent (the Train tab's
poll, each second while a run trains on the same cores), and a quarter of a fuzz of the whole API's server
time (py-spy). The studio launches with monitoring off, so nothing reads
that summary: ``WakeableQueue`` keeps Gradio's (empty) cached one and at most ``ANALYTICS_KEPT`` event
records.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from gradio import http_server, queueing

SAFETY_WAKE_S = 1.0      # an idle queue still looks once a second (work added without push)
SERVER_TICK_S = 1.0      # uvicorn: 0.1
ANALYTICS_KEPT = 100     # Gradio: 10,000 event records, read only by its /monitoring page


class UntilWork(float):
    """A sleep delay meaning "until ``ready()`` or ``event``"; as a float, Gradio's Windows cadence."""

    ready: Callable[[], bool]
    event: asyncio.Event

    def __new__(cls, seconds: float, ready: Callable[[], bool], event: asyncio.Event) -> "UntilWork":
        value = super().__new__(cls, seconds)
        value.ready, value.event = ready, event
        return value


async def _sleep(delay: float, result: Any = None) -> Any:
    if not isinstance(delay, UntilWork):
        return await asyncio.sleep(delay, result)
    if delay.ready():
        return await asyncio.sleep(0.001, result)    # work waiting: Gradio's own pace
    try:
        await asyncio.wait_for(delay.event.wait(), SAFETY_WAKE_S)
    except asyncio.TimeoutError:
        pass
    delay.event.clear()    # no await between waking and this: a later set is seen by the next sleep
    return result


class _Asyncio:
    """``asyncio`` for ``gradio.queueing``: every name forwards, ``sleep`` knows ``UntilWork``."""

    sleep = staticmethod(_sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


class WakeableQueue(queueing.Queue):
    """``queueing.Queue`` that wakes its sleeping loops when an event is pushed, starts or ends."""

    idle_waits: int = 0    # how often a loop found nothing to do and slept (tests count them)

    def make_sleepy(self) -> None:
        work, busy = asyncio.Event(), asyncio.Event()
        self._work_event, self._busy_event = work, busy

        def can_start() -> bool:
            if len(self) and None in self.active_jobs:
                return True
            self.idle_waits += 1
            return False

        def running() -> bool:
            if any(job is not None for job in self.active_jobs):
                return True
            self.idle_waits += 1
            return False

        self.sleep_when_free = UntilWork(0.05, can_start, work)
        self.progress_update_sleep_when_free = UntilWork(0.1, running, busy)

    def compute_analytics_summary(self, records: Any) -> Any:
        """The /monitoring page's summary, never recomputed: the studio launches with monitoring off."""
        return self.cached_event_analytics_summary

    async def push(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().push(*args, **kwargs)
        self._work_event.set()
        return result

    async def process_events(self, *args: Any, **kwargs: Any) -> Any:
        self._busy_event.set()
        try:
            return await super().process_events(*args, **kwargs)
        finally:
            self._work_event.set()    # a slot is free: a waiting event may start


def calm_queue(demo: Any) -> Any:
    """Make ``demo``'s queue (after ``demo.queue()``, before ``launch``) sleep while idle and skip Gradio's
    monitoring summary; returns ``demo``."""
    queue = getattr(demo, "_queue", None)
    if type(queue) is queueing.Queue:
        queue.__class__ = WakeableQueue
        queue.make_sleepy()
        queue.ANALYTICS_MAX_EVENTS = ANALYTICS_KEPT
        if not isinstance(queueing.asyncio, _Asyncio):
            queueing.asyncio = _Asyncio()
    return demo


class CalmServer(http_server.Server):
    """Gradio's uvicorn server, ticking once a second; ``close`` wakes the tick so the server stops at once."""

    async def main_loop(self) -> None:
        self._tick_loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000     # uvicorn's on_tick does its once-a-second work at multiples of 10
            try:
                await asyncio.wait_for(self._wake.wait(), SERVER_TICK_S)
            except asyncio.TimeoutError:
                pass
            should_exit = await self.on_tick(counter)

    def close(self) -> None:
        self.should_exit = True
        loop, wake = getattr(self, "_tick_loop", None), getattr(self, "_wake", None)
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:      # the loop has already ended
                pass
        super().close()


def calm_server() -> None:
    """Servers Gradio starts from now on in this process tick once a second (``CalmServer``)."""
    if http_server.Server is not CalmServer and issubclass(CalmServer, http_server.Server):
        http_server.Server = CalmServer
