"""``python -m backend ...`` from a test: one way to start the CLI, so every CLI test sees the same
environment (the repo on PYTHONPATH, run from the repo root, output captured as text)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def backend_cli(*args: str, cwd: Path = ROOT, timeout: float = 600,
                drop_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the CLI to the end; ``drop_env``: variables the child must not inherit (e.g. PYTHONWARNINGS,
    so a test sees the warnings a user would)."""
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def loaded_torch(stderr: str) -> bool:
    """Whether a CLI run under ``PYTHONPROFILEIMPORTTIME=1`` imported torch (its import lines on stderr):
    a config's mistake is said before the seconds that import takes."""
    return any(line.startswith("import time:") and line.split("|")[-1].strip() == "torch"
               for line in stderr.splitlines())
