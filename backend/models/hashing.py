"""Content hashes of weight files, the provenance recorded on every run (``LoadedModel.revision``).

Hashing a multi-gigabyte checkpoint on every load would cost seconds, so digests are remembered in a small
JSON file in the cache directory (absolute path -> [size:mtime, digest]): a file whose size or mtime
changed is hashed again. The memo is an optimisation only; losing or corrupting it just costs a re-hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

_MEMO_NAME = "file-hashes.json"
_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _read_memo(memo: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(memo.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(memo: Path, data: dict[str, list[str]]) -> None:
    """Atomic replace so a concurrent reader never sees half a file; failures are ignored (memo only)."""
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=".file-hashes-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=0, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, memo)
    except OSError:
        pass


def sha256_files(paths: list[Path], cache_dir: Path | None) -> dict[Path, str]:
    """sha256 of each file, reusing digests remembered in ``cache_dir`` when size and mtime still match."""
    memo_path = cache_dir / _MEMO_NAME if cache_dir is not None else None
    memo = _read_memo(memo_path) if memo_path else {}
    out: dict[Path, str] = {}
    changed = False
    for p in paths:
        key, stamp = str(p.resolve()), _stamp(p)
        entry = memo.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            digest = str(entry[1])
        else:
            digest = sha256_file(p)
            memo[key] = [stamp, digest]
            changed = True
        out[p] = digest
    if changed and memo_path is not None:
        _write_memo(memo_path, memo)
    return out


def combined_digest(named_digests: dict[str, str]) -> str:
    """One sha256 over several files' (name, digest) pairs, independent of listing order."""
    h = hashlib.sha256()
    for name in sorted(named_digests):
        h.update(f"{name}\0{named_digests[name]}\n".encode())
    return h.hexdigest()


def refuse_other_revision(trained_on: str | None, loaded: str | None, who: str, model: str, why: str,
                          field: str = "model") -> None:
    """ConfigError when what ``who`` learned on (``trained_on``, a recorded revision) is not the base model
    loaded now: the same name (``model``) with other weights, e.g. a model folder rewritten since. ``why``
    says what would go wrong. Unknown revisions (either None) are not refused: nothing to compare."""
    if trained_on and loaded and trained_on != loaded:
        from backend.errors import ConfigError

        raise ConfigError(f"{who} trained on revision {trained_on[:12]} of {model!r}; the one loaded now is "
                          f"{loaded[:12]} (its files changed since): {why}", field=field)
