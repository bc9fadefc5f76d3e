"""A job process killed with SIGKILL in the middle of writing leaves the database and the artifact
store consistent: every metric batch is all-or-nothing, every artifact row points at a complete,
verified file, and the next process carries on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import open_store
from storage.artifacts import sha256_file
from tests.storage_helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
BATCH = 50
# Appends metric batches forever and, every few batches, attaches a large random artifact (so the
# kill often lands inside a file write or its fsync); steps continue from what is already stored.
WRITER = r"""
import os, sys
from storage import open_store
st = open_store(sys.argv[1], sys.argv[2])
run_id = int(sys.argv[3])
step = len(st.get_metrics(run_id))
b = 0
while True:
    st.append_metrics(run_id, [{"key": "loss", "step": step + i, "value": 0.5} for i in range(%d)])
    step += %d
    b += 1
    if b %% 3 == 0:
        st.attach_artifact(run_id, "ckpt", f"step-{step}", os.urandom(4 << 20))
    st.save_version("template", "t", f"step {step}")
""" % (BATCH, BATCH)


def _check_consistent(url: str, artifacts: Path, run_id: int) -> int:
    with open_store(url, artifacts) as st:
        report = st.check()  # PRAGMA integrity_check + every artifact row's file verified
        assert report["ok"], report["problems"]
        steps = sorted(m["step"] for m in st.get_metrics(run_id))
        assert len(steps) % BATCH == 0, "a metric batch was half written"
        assert steps == list(range(len(steps))), "a committed batch was lost"
        for blob in st.artifacts.blobs():  # complete files only, each named by its content
            assert sha256_file(blob) == blob.name
        numbers = [v.number for v in st.list_versions("template", "t")] if st.list_names("template") else []
        assert numbers == list(range(1, len(numbers) + 1))
        return len(steps)


@pytest.mark.slow
def test_kill_9_mid_write_leaves_everything_consistent(tmp_path):
    url, artifacts = f"sqlite:///{tmp_path / 'crash.db'}", tmp_path / "artifacts"
    with open_store(url, artifacts) as st:
        run_id = st.create_run({}, method="m", status="running")
        count = lambda: len(st.get_metrics(run_id))  # noqa: E731
        previous = 0
        for round_ in range(4):
            proc = subprocess.Popen([sys.executable, "-c", WRITER, url, str(artifacts), str(run_id)],
                                    cwd=ROOT, stderr=subprocess.PIPE)
            try:
                assert wait_for(lambda: count() > previous + BATCH * (2 + round_), timeout=60), \
                    proc.stderr.read().decode() if proc.poll() is not None else "writer made no progress"
                time.sleep(0.013 * (round_ + 1))  # land the kill at different points
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            assert proc.returncode == -signal.SIGKILL
            now = _check_consistent(url, artifacts, run_id)
            assert now > previous  # and the next process carried on from there
            previous = now
        assert len(st.list_artifacts(run_id)) >= 1
    with open_store(url, artifacts) as st:
        st.artifacts.clean_tmp(older_than_s=0)  # leftovers of killed writers, if any
        assert not any(st.artifacts.tmp.iterdir())
