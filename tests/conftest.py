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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~10 s (still runs in CI)")


@pytest.fixture(scope="session")
def smol_tok():
    from tests.tiny import smol_tokenizer

    return smol_tokenizer()


@pytest.fixture(scope="session")
def bert_tok():
    from tests.tiny import bert_tokenizer

    return bert_tokenizer()
