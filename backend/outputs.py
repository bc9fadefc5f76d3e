"""Checking where a command will write, before it does any work.

Why first: an evaluation or a training run takes minutes and is recorded in the run database as it
starts; finding only at the end that ``--predictions /nonexistent/dir/p.jsonl`` cannot be written
loses the work and leaves a recorded run with no output. These checks are cheap and write nothing
(a folder that does not exist yet is created later, by the command that needs it).
"""
from __future__ import annotations

import os
from pathlib import Path

from backend.errors import ConfigError


def _first_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")


def check_output_file(path: str | Path, field: str) -> Path:
    """``path`` can be written: not a folder, its folder exists and is writable."""
    p = Path(path).expanduser()
    if str(path).strip() == "" or "\0" in str(path):
        raise ConfigError(f"{str(path)!r} is not a file name", field=field)
    if p.is_dir():
        raise ConfigError(f"{str(p)!r} is a folder; give a file name such as {str(p / 'predictions.jsonl')!r}",
                          field=field)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {str(p)!r}: the folder {str(folder)!r} does not exist", field=field)
    if not os.access(folder, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"cannot write {str(p)!r}: permission denied", field=field)
    return p


def check_output_dir(path: str | Path, field: str) -> Path:
    """``path`` is a folder, or can be created: its nearest existing ancestor is a writable folder."""
    p = Path(path).expanduser()
    if "\0" in str(path):
        raise ConfigError(f"{str(path)!r} is not a folder name", field=field)
    base = _first_existing(p)
    if not base.is_dir():
        raise ConfigError(f"cannot create the folder {str(p)!r}: {str(base)!r} is a file", field=field)
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in {str(base)!r}: permission denied", field=field)
    return p
