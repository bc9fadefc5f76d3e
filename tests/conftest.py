"""Shared pytest setup: the repo root on sys.path (for ``tests.tiny``), the ``slow`` marker, and
session-scoped real tokenizers so the slow ones load once. The fixtures are shared by every test: a test
that adds tokens or changes settings must take its own copy from ``tests.tiny`` instead."""
from __future__ import annotations

import os
import sys
from pathlib import Path

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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~10 s (still runs in CI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """For pytest-xdist's ``--dist loadgroup``: a module's tests stay on one worker (its module-scoped
    studio, store or model is set up once), and every Ray test shares one worker (one local Ray
    instance at a time on the machine)."""
    for item in items:
        module = item.nodeid.split("::")[0]
        ray = "ray_local" in getattr(item, "fixturenames", ()) or module.startswith("tests/test_ray_")
        item.add_marker(pytest.mark.xdist_group("ray" if ray else module))


@pytest.fixture(scope="session")
def smol_tok():
    from tests.tiny import smol_tokenizer

    return smol_tokenizer()


@pytest.fixture(scope="session")
def bert_tok():
    from tests.tiny import bert_tokenizer

    return bert_tokenizer()
