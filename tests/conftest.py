"""Shared pytest setup: the repo root on sys.path (for ``tests.tiny``), the ``slow`` marker, and
session-scoped real tokenizers so the slow ones load once. The fixtures are shared by every test: a test
that adds tokens or changes settings must take its own copy from ``tests.tiny`` instead."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# Nothing in the tests may reach a model hub: hub ids resolve from the local cache only (read by the hub
# libraries at import, hence before any test module imports them; CLI children inherit it). A test of
# the online path unsets it itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Under pytest-xdist (launch.py test runs one worker per core, up to 4): each worker's torch (and the CLI
# and job children it starts) gets its share of the cores, so workers never fight over them with
# spinning OpenMP threads. Set before torch is imported, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
# Each xdist worker searches its own block of ports for the studios it launches: gradio picks the first
# free port from 7860 by binding and releasing it before its server binds, so two workers launching at
# once could both pick 7860 (one then fails its localhost check, the other's browser loads the wrong
# studio). Gradio reads this once, at import.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    os.environ.setdefault("GRADIO_SERVER_PORT", str(7960 + 100 * int(_worker[2:])))
    os.environ.setdefault("GRADIO_NUM_PORTS", "100")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="session")
def _own_studio_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The suite never writes in the user's own studio home (``~/.prompt-studio``): a test (or a CLI child
    it starts) that opens the default store gets a throwaway one. A test of the default itself sets or
    unsets ``PROMPT_STUDIO_HOME`` with monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        if "PROMPT_STUDIO_HOME" not in os.environ:
            mp.setenv("PROMPT_STUDIO_HOME", str(tmp_path_factory.mktemp("studio-home")))
        yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~10 s (still runs in CI)")


def suite_group(nodeid: str) -> str:
    """Which tests must share one pytest-xdist worker, from the test's id alone (the controller that
    schedules never imports the tests): a module's tests (its module-scoped studio, store or model is
    set up once), every Ray test (one local Ray instance on the machine at a time: ``test_ray_*``), and
    every browser test (``*_browser``: two chromiums and their studios at once on a two-core machine
    starve each other past the tests' waits)."""
    module = nodeid.split("::")[0]
    name = Path(module).stem
    if name.startswith("test_ray_"):
        return "ray"
    if name.endswith("_browser"):
        return "browser"
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the two long groups (browser, Ray) first, so they start at once instead of being
    the tail of the run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: {"browser": 0, "ray": 1}.get(suite_group(item.nodeid), 2))


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:   # the suite also runs in one process without pytest-xdist
    LoadScopeScheduling = None
else:
    class SuiteGroupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with ``suite_group`` as the scope. Not ``--dist loadgroup`` with
        ``xdist_group`` marks: under pytest 9.2 xdist 3.8's marks no longer reach the scheduler (it
        renames ``item._nodeid``, which pytest no longer reads), and the tests then ran spread out."""

        def _split_scope(self, nodeid: str) -> str:
            return suite_group(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if LoadScopeScheduling is None or config.getvalue("dist") not in ("load", "loadgroup", "loadscope"):
        return None
    config.option.loadscopereorder = False   # keep the collection's order: the long groups first
    return SuiteGroupScheduling(config, log)


@pytest.fixture(scope="session")
def smol_tok():
    from tests.tiny import smol_tokenizer

    return smol_tokenizer()


@pytest.fixture(scope="session")
def bert_tok():
    from tests.tiny import bert_tokenizer

    return bert_tokenizer()
