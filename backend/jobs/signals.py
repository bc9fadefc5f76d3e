"""SIGTERM / SIGINT as a request to stop a run cleanly instead of a kill.

Why: a process killed by SIGTERM (``docker stop``, systemd, a worker shutting down) or Ctrl-C used to die
at once and leave its run ``running`` forever, with up to ``checkpoint_every`` steps of work lost. Inside
``StopOnSignal`` the handler only records which signal came; the training loop reads the flag before
each optimizer step (it is the loop's ``cancel_check``), saves a last checkpoint and ends the run as
``cancelled``; the process then exits with the signal's conventional status (128 + signal number).
A second signal means "now": it raises ``RunStopped`` so a stuck process still dies.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunStopped(KeyboardInterrupt):
    """Raised where a loop has no cancel check of its own (or on a second signal): the run was stopped."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


class StopOnSignal:
    """Context manager; calling it says whether a stop signal arrived (a ``cancel_check``)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._depth = 0     # entered again by an inner ``with`` (the CLI, then ``execute``): install once

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int | None:
        """128 + the signal number (what a shell reports for a process the signal ended), or None."""
        return None if self.signum is None else 128 + self.signum

    @property
    def note(self) -> str:
        return f"stopped by {self.signal_name}"

    def raise_if_stopped(self, *_: Any) -> None:
        """For loops that only offer a progress callback (evaluation): stop there by raising."""
        if self.signal_name is not None:
            raise RunStopped(self.signal_name)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise RunStopped(signal.Signals(signum).name)
        self.signum, self.signal_name = signum, signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        # Handlers can only be set from the main thread; elsewhere (a studio request thread) the
        # process's own handling stays as it is and the flag simply never rises.
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
