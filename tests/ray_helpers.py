"""The Ray test fixture: one private local Ray instance per test module (starting one costs ~10 s).

Skipped with the reason when the ``ray`` package is missing. Started through the code's own ``connect``
(quiet: no dashboard, workers' output in Ray's log files), 2 CPUs as the test machine has.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray tests skipped: the 'ray' package is not installed")
    from backend.jobs.ray_executor import connect

    if ray.is_initialized():
        ray.shutdown()
    connect(None, num_cpus=2)
    yield ray
    ray.shutdown()
