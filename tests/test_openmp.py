"""OpenMP waits that sleep (backend/openmp.py): asked for where our processes start, before torch loads
libgomp, never over a value the user set."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from backend.openmp import WAIT_POLICY, sleeping_waits

ROOT = Path(__file__).resolve().parents[1]
# ``python -m backend --help``, then the environment a later ``import torch`` in that process would see
PROBE = ("import atexit, os, sys\n"
         "atexit.register(lambda: print('policy', os.environ.get('OMP_WAIT_POLICY')))\n"
         "sys.argv = ['backend', '--help']\n"
         "import runpy\n"
         "runpy.run_module('backend', run_name='__main__', alter_sys=True)\n")


def test_passive_unless_the_user_chose():
    assert sleeping_waits({}) == {WAIT_POLICY: "PASSIVE"}
    assert sleeping_waits({WAIT_POLICY: "ACTIVE"}) == {WAIT_POLICY: "ACTIVE"}


def _cli_policy(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != WAIT_POLICY}
    env.update(extra, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=str(ROOT), env=env,
                         timeout=120)
    return next(line for line in out.stdout.splitlines() if line.startswith("policy"))


def test_the_cli_asks_for_it():
    assert _cli_policy({}) == "policy PASSIVE"
    assert _cli_policy({WAIT_POLICY: "ACTIVE"}) == "policy ACTIVE"


def test_every_job_child_gets_it(monkeypatch, tmp_path):
    from backend.jobs import runner

    seen = []
    monkeypatch.setattr(runner.subprocess, "Popen", lambda cmd, **kw: seen.append(kw["env"]))
    store = SimpleNamespace(url="sqlite:///x.db", artifacts=SimpleNamespace(root=tmp_path), append_metrics=lambda *a: 0)
    monkeypatch.delenv(WAIT_POLICY, raising=False)
    runner.spawn(store, 1, warm=False)   # a cold child; warm ones: tests/test_jobs_warm.py
    monkeypatch.setenv(WAIT_POLICY, "ACTIVE")
    runner.spawn(store, 2, warm=False)
    assert [env[WAIT_POLICY] for env in seen] == ["PASSIVE", "ACTIVE"]


def test_ray_workers_get_it(monkeypatch):
    """What ``connect`` hands ray.init for its workers (a real worker's environment: test_ray_executor)."""
    from backend.jobs import ray_executor

    seen = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: seen.append(kw))
    monkeypatch.setattr(ray_executor, "ray_module", lambda: fake)
    monkeypatch.delenv(WAIT_POLICY, raising=False)
    ray_executor.connect(None, num_cpus=1)
    monkeypatch.setenv(WAIT_POLICY, "ACTIVE")
    ray_executor.connect(None, num_cpus=1)
    assert [kw["runtime_env"]["env_vars"][WAIT_POLICY] for kw in seen] == ["PASSIVE", "ACTIVE"]
