"""The suite's xdist grouping (tests/conftest.py): a module stays on one worker, Ray tests and browser
tests each share one. It once silently did nothing (pytest 9.2 no longer read the ids xdist rewrote), so
the real scheduler is checked here too, not only the naming rule."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import suite_group

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("nodeid, group", [
    ("tests/test_templates.py::test_parse[a]", "tests/test_templates.py"),
    ("tests/test_ray_tune.py::test_asha", "ray"),
    ("tests/test_ray_executor.py::TestX::test_y", "ray"),
    ("tests/test_studio_browser.py::test_tabs", "browser"),
    ("tests/test_studio_ux_flow_browser.py::test_flow", "browser"),
    ("tests/test_browser_helpers_like.py::test_x", "tests/test_browser_helpers_like.py"),
])
def test_the_group_of_a_test(nodeid, group):
    assert suite_group(nodeid) == group


@pytest.mark.slow
def test_a_module_runs_on_one_worker():
    """The six cases above, under the real scheduler: on one worker (xdist's own ``load`` without the
    suite's hook spreads them over both: ``--noconftest``)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "load", "-v", "-p",
                          "no:cacheprovider", "tests/test_suite_grouping.py", "-k", "group_of"],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    workers = re.findall(r"\[(gw\d+)\][^\n]*PASSED", out.stdout)
    assert len(workers) == 6 and len(set(workers)) == 1, out.stdout[-3000:]
