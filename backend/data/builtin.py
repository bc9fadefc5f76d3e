"""The demo datasets that ship with the product (written for Prompt Studio, not copied from any corpus).

Each is a directory under ``backend/data/builtin/`` with ``train.jsonl`` and ``dev.jsonl``; a source
``builtin:<name>`` reads it, so the studio works on a fresh install with no downloads.
"""
from __future__ import annotations

from pathlib import Path

from backend.errors import DatasetError

BUILTIN_PREFIX = "builtin:"
BUILTIN_DEFAULT = "builtin:movie-reviews"
_ROOT = Path(__file__).resolve().parent / "builtin"


def builtin_datasets() -> dict[str, Path]:
    """Name -> directory of every shipped dataset."""
    if not _ROOT.is_dir():
        return {}
    return {p.name: p for p in sorted(_ROOT.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))}


def builtin_dir(source: str) -> Path:
    """Directory for ``builtin:<name>``; DatasetError naming the available ones otherwise."""
    name = source[len(BUILTIN_PREFIX):].strip()
    found = builtin_datasets()
    if name not in found:
        raise DatasetError(f"no built-in dataset {name!r}; available: "
                           + ", ".join(BUILTIN_PREFIX + n for n in found))
    return found[name]
