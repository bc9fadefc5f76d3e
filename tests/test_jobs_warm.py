"""Run children forked from the warm job server (backend/jobs/warm.py): the database URL never in their
argv or environment, their output in the run's log, their exit status as Popen gives it (a kill is
-SIGKILL), at the studio's lower priority, and a cold start once the environment or the checkout's
version has changed since the server started. Whole runs through it: tests/test_jobs_worker.py (and a worker killed takes its runs'
processes with it) and every test that trains through a worker or the studio."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# in a fresh interpreter: the server (one per process) must start with this test's environment
SCRIPT = r'''
import json, os, sys, time
from pathlib import Path
from types import SimpleNamespace
from backend.jobs import runner, warm
from tests.test_jobs_warm import studio_child_then_sleep

secret, tmp = sys.argv[1], Path(sys.argv[2])
out = {"starts": []}
said = lambda run_id, events: out["starts"].extend([run_id, e["key"], e["value"]] for e in events)
run = lambda run_id: SimpleNamespace(uid="a1b2c3d4e5f6" * 3)
store = SimpleNamespace(url=f"postgresql://ps:{secret}@127.0.0.1:9/runs", artifacts=SimpleNamespace(root=tmp),
                        append_metrics=said, get_run=run)
child = runner.spawn(store, 7, tmp / "logs", preexec_fn=studio_child_then_sleep)
out["warm"] = isinstance(child, warm.WarmChild)
deadline = time.monotonic() + 60       # forked at once; its preexec_fn runs once it has unpickled its work
while time.monotonic() < deadline:
    out["nice"] = os.getpriority(os.PRIO_PROCESS, child.pid) - os.getpriority(os.PRIO_PROCESS, 0)
    if out["nice"]:
        break
    time.sleep(0.05)
# asleep in preexec_fn, before any code of ours ran
shown = [Path(f"/proc/{child.pid}/{part}").read_bytes() for part in ("cmdline", "environ")]
out["secret_shown"] = any(secret.encode() in s for s in shown)
child.kill()
out["killed"] = child.wait(timeout=30)
out["reason"] = runner.exit_reason(out["killed"])
sqlite = SimpleNamespace(url=f"sqlite:///{tmp / 'runs.db'}", artifacts=SimpleNamespace(root=tmp / "artifacts"),
                         append_metrics=said, get_run=run)
os.chdir(tmp)                                          # a log folder named from the caller's own folder
ended = runner.spawn(sqlite, 8, Path("logs"))         # no run 8 in that database: the child fails at once
out["ended_warm"] = isinstance(ended, warm.WarmChild)
out["ended"] = ended.wait(timeout=120)
out["log"] = (tmp / "logs" / "run-8-a1b2c3d4e5f6.log").read_text()
os.environ["PS_SOMETHING_NEW"] = "1"
out["after_change"] = warm.start(9, sqlite.url, str(tmp), None)
out["cold_ended"] = runner.spawn(sqlite, 11, None).wait(timeout=120)   # started cold: no run 11 either
del os.environ["PS_SOMETHING_NEW"]
import backend.recording as recording
checkout = recording.describe_code()
recording.describe_code = lambda: checkout + "-changed"     # the checkout moved on since the server started
out["after_code_change"] = warm.start(10, sqlite.url, str(tmp), None)
print(json.dumps(out))
'''


def studio_child_then_sleep() -> None:
    """The studio's preexec_fn (lower priority, die with the parent), then asleep before any run code."""
    import time

    from backend.services.jobs import _background_child

    _background_child()
    time.sleep(120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm starts use Linux's forkserver")
def test_warm_children_hide_the_url_log_and_exit_as_popen_and_a_changed_environment_starts_cold(tmp_path):
    secret = "s3cret-warm-start"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, secret, str(tmp_path)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["warm"] and out["ended_warm"]
    from backend.services.jobs import NICENESS

    assert out["nice"] == NICENESS                        # the studio's runs yield the CPU to the page
    assert out["secret_shown"] is False                   # neither argv nor the environment of the child
    assert out["killed"] == -9 and "killed by SIGKILL" in out["reason"]
    assert out["ended"] == 1
    from backend.jobs.warm import WARM_NOTE

    assert out["log"].startswith(WARM_NOTE) and "Traceback" in out["log"]   # the child's own output, in its log
    assert out["after_change"] is None and out["after_code_change"] is None   # runner.spawn starts them cold
    assert out["cold_ended"] == 1
    # each run says how it started (the cost card prices a start from runs that started alike): the first
    # waited for the job server to import torch, the next was forked warm, the last imported torch itself
    cold = {run: v for run, key, v in out["starts"] if key == "run/cold_start"}
    waited = {run: v for run, key, v in out["starts"] if key == "run/job_server_s"}
    assert cold == {7: 1.0, 8: 0.0, 11: 1.0}
    assert waited[7] > 0.5 and waited[8] == waited[11] == 0.0     # the first start waited for torch's import
