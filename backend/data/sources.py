"""Which data sources a shared server (the studio) may read, and the exact thing it then reads.

The CLI is a local user's own tool and reads any file they name (``readers.read_source``). The studio is
a web page: whoever reaches it must not read the server's disk through a "dataset" box. There a source is
one of: a built-in dataset (``builtin:NAME``), a file under the studio's data folder (uploads are copied
there), or a hub dataset id, read from the local datasets cache. ``confine`` checks a source against that
rule and returns what to read: the resolved real path of a file (symlinks followed, so a link pointing
out of the folder is refused), ``hf:ID`` for a hub id (never a local folder of the same name), or the
built-in name. Everything else — absolute paths elsewhere, ``..``, ``~`` — is a DatasetError.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from backend.data.builtin import BUILTIN_PREFIX, builtin_dir
from backend.data.readers import HUB_PREFIX
from backend.errors import DatasetError

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_HUB_ID = re.compile(rf"^(?P<repo>{_NAME}(?:/{_NAME})?)(?::(?P<config>{_NAME}))?$")
_DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
# ``datasets`` builders that read local files by themselves: never a hub id in the studio
_LOCAL_BUILDERS = {"csv", "json", "pandas", "parquet", "text", "arrow", "sql", "xml", "webdataset",
                   "imagefolder", "audiofolder", "videofolder", "pdffolder", "niftifolder", "generator", "cache"}


def _allowed(roots: Sequence[Path]) -> str:
    return ("the studio reads built-in datasets, uploaded files, files under its data folder "
            f"({', '.join(str(r) for r in roots)}) and hub datasets already in the local cache")


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _file(text: str, roots: Sequence[Path]) -> str:
    """A path, relative to the first root unless absolute, resolved (symlinks too) and kept inside."""
    real_roots = [Path(os.path.realpath(r)) for r in roots]
    raw = Path(text)
    real = Path(os.path.realpath(raw if raw.is_absolute() else Path(roots[0]) / raw))
    if not _inside(real, real_roots):
        raise DatasetError(f"{text!r} is outside the studio's data folder: {_allowed(roots)}")
    if not real.exists():
        raise DatasetError(f"no file or folder {text!r} in the studio's data folder {roots[0]}")
    return str(real)


def _hub(text: str, roots: Sequence[Path]) -> str:
    ident = text[len(HUB_PREFIX):] if text.startswith(HUB_PREFIX) else text
    match = _HUB_ID.match(ident)
    parts = re.split(r"[/:]", ident)
    if match is None or any(p in (".", "..") for p in parts) or match["repo"].lower() in _LOCAL_BUILDERS:
        raise DatasetError(f"{text!r} is not a dataset the studio can read: {_allowed(roots)}")
    if Path(match["repo"]).exists():   # the hub loader would read a local folder of that name instead
        raise DatasetError(f"{text!r} names a path on the server, not a hub dataset: {_allowed(roots)}")
    return HUB_PREFIX + ident


def _looks_like_path(text: str, roots: Sequence[Path]) -> bool:
    parts = re.split(r"[/\\]", text)
    return (Path(text).is_absolute() or ".." in parts or "\\" in text
            or Path(text).suffix.lower() in _DATA_SUFFIXES or (Path(roots[0]) / text).exists())


def confine(source: str, roots: Sequence[Path]) -> str:
    """What the studio reads for ``source`` (see module doc); DatasetError naming the rule otherwise.
    ``roots``: the folders files may come from, the first one also the base of relative paths."""
    text = (source or "").strip()
    if not text:
        raise DatasetError("no data source given")
    if text.startswith(BUILTIN_PREFIX):
        builtin_dir(text)    # only the shipped names exist: "builtin:../x" is refused there
        return text
    if text.startswith("~"):
        raise DatasetError(f"{text!r}: home folders are not readable from the studio; {_allowed(roots)}")
    if text.startswith(HUB_PREFIX):
        return _hub(text, roots)
    if _looks_like_path(text, roots):
        return _file(text, roots)
    return _hub(text, roots)
