"""OpenMP threads that sleep while they wait, in every process of ours that computes on a CPU.

Why: torch's CPU kernels run on an OpenMP team (libgomp) whose threads, by default, spin at the end of
each parallel region until the slowest has finished. When something else wants a core (the studio's page
redrawing a training curve, the studio itself, another program, or simply the job child's own lower
priority), a spinning thread holds its core while the thread it waits for is not running, and every op of a
step pays for it. With ``OMP_WAIT_POLICY=PASSIVE`` the waiting threads sleep instead
(bench/results/contention.md: a SmolLM2 training step with one of two cores busy, and what it costs on a
free machine). libgomp reads the variable once, when torch loads it, so it is set at each entry point before
torch is imported (the CLI, launch.py), in the environment of every job child and in Ray's workers'
(backend/jobs/ray_executor.connect); a value the user set wins.
"""
from __future__ import annotations

import os
from typing import MutableMapping

WAIT_POLICY = "OMP_WAIT_POLICY"


def sleeping_waits(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Ask for sleeping OpenMP waits in ``env`` (default: this process's environment, which only works
    before torch is imported) unless it says otherwise; returns ``env``."""
    target = os.environ if env is None else env
    target.setdefault(WAIT_POLICY, "PASSIVE")
    return target


def wait_policy_for_elsewhere() -> dict[str, str]:
    """The variable for processes started on this one's behalf by someone else (Ray's workers): this
    process's own value when it has one, sleeping waits otherwise."""
    return {WAIT_POLICY: sleeping_waits(dict(os.environ))[WAIT_POLICY]}
