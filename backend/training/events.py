"""Progress events: what a training run reports, and sinks that receive them.

A sink is anything with ``emit(key, value, step)`` and ``flush()`` — ``storage.sink.StoreSink`` writes
them to the run database; ``MemorySink`` keeps them for tests and the CLI; ``TerminalSink`` draws a
progress bar. ``Progress`` computes the derived numbers (tokens/s, elapsed, ETA) in one place so every
sink sees the same values.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class Sink(Protocol):
    def emit(self, key: str, value: float, step: int) -> None: ...

    def flush(self) -> Any: ...


@dataclass
class MemorySink:
    events: list[tuple[str, float, int]] = field(default_factory=list)

    def emit(self, key: str, value: float, step: int) -> None:
        self.events.append((key, float(value), int(step)))

    def flush(self) -> None:
        return None

    def values(self, key: str) -> list[float]:
        return [v for k, v, _ in self.events if k == key]


class TeeSink:
    """Send every event to several sinks (e.g. the store and the terminal)."""

    def __init__(self, *sinks: Sink | None) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def emit(self, key: str, value: float, step: int) -> None:
        for s in self.sinks:
            s.emit(key, value, step)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()


class TerminalSink:
    """A one-line progress bar on stderr from ``train/*`` events; eval results print on their own line."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.last: dict[str, float] = {}

    def emit(self, key: str, value: float, step: int) -> None:
        if key == "train/total_steps":
            self.total = int(value)
        if key == "params/percent":
            self.stream.write(f"trainable parameters: {int(self.last.get('params/trainable', 0)):,} of "
                              f"{int(self.last.get('params/total', 0)):,} ({value:.4f}%)\n")
        self.last[key] = value
        if key == "train/loss":
            self._bar(step)
        elif key.startswith("eval/") and key.endswith("accuracy"):
            self.stream.write(f"\n  step {step}: {key} = {value:.4f}\n")

    def _bar(self, step: int) -> None:
        total = max(self.total, 1)
        done = int(30 * step / total)
        eta = self.last.get("train/eta_s", 0.0)
        self.stream.write(f"\r[{'#' * done}{'.' * (30 - done)}] {step}/{total} loss "
                          f"{self.last.get('train/loss', 0):.4f} lr {self.last.get('train/lr', 0):.2e} "
                          f"{self.last.get('train/tokens_per_s', 0):.0f} tok/s ETA {eta:.0f}s ")
        self.stream.flush()

    def flush(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class Progress:
    """Derive tokens/s, elapsed and ETA; emit one step's events.

    Two rates: ``train/tokens_per_s`` over the loop's whole wall time (what the run has been doing, dev
    evaluations included; the ETA follows it) and ``train/step_tokens_per_s`` over the training steps alone
    (``pause`` takes the evaluations out, ``saved`` the checkpoints and best weights written). The cost card
    predicts a run from the second and adds its evaluations and writes itself, so a run with few evaluations
    is not charged for another's many, nor a small adapter for a full model's checkpoints."""

    def __init__(self, sink: Sink, total_steps: int, start_step: int = 0) -> None:
        self.sink = sink
        self.total = total_steps
        self.start_step = start_step
        self.t0 = time.perf_counter()
        self.tokens = 0
        self.paused = 0.0
        self.saving = 0.0
        self.saved_bytes = 0

    def pause(self, seconds: float) -> None:
        """``seconds`` of the loop spent off its training steps (a dev evaluation)."""
        self.paused += max(seconds, 0.0)

    def saved(self, seconds: float, nbytes: int = 0) -> None:
        """``seconds`` spent writing ``nbytes`` of weights (a checkpoint, the best weights so far): off the
        steps too, and kept apart (``train/saving_s``, ``train/saved_bytes``) since what a write costs follows
        the trained weights' size: the cost card prices the next run's writes at this rate."""
        self.pause(seconds)
        self.saving += max(seconds, 0.0)
        self.saved_bytes += nbytes

    def close(self, step: int) -> None:
        """The loop's totals: its writes, and its whole wall time (``train/elapsed_s`` stops at the last step,
        before that step's evaluation and checkpoint; the cost card prices what a run does outside the loop)."""
        self.sink.emit("train/saving_s", self.saving, step)
        self.sink.emit("train/saved_bytes", float(self.saved_bytes), step)
        self.sink.emit("train/loop_s", time.perf_counter() - self.t0, step)

    def step(self, step: int, *, loss: float, lr: float, epoch: float, tokens: int) -> None:
        self.tokens += tokens
        elapsed = time.perf_counter() - self.t0
        stepping = elapsed - self.paused
        done = max(step - self.start_step, 1)
        eta = elapsed / done * (self.total - step)
        for key, value in (("train/loss", loss), ("train/lr", lr), ("train/epoch", epoch),
                           ("train/tokens_per_s", self.tokens / elapsed if elapsed > 0 else 0.0),
                           ("train/step_tokens_per_s", self.tokens / stepping if stepping > 0 else 0.0),
                           ("train/elapsed_s", elapsed), ("train/eta_s", eta)):
            self.sink.emit(key, value, step)

    def metrics(self, prefix: str, metrics: dict[str, Any], step: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.sink.emit(f"{prefix}/{k}", float(v), step)
