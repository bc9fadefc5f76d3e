"""Content-addressed artifact files: ``<root>/<sha[:2]>/<sha256>``.

Why content addressing: identical weights attached to two runs are stored once, a file's name proves
what it must contain (so corruption is detectable years later), and a database row can never point at a
half-written file: bytes go to a temporary file in ``<root>/tmp``, are fsynced, then atomically renamed
into place (and the folder fsynced), and only then does the caller insert the row. A process killed at
any point leaves at worst a stray temp file (removed by :meth:`ArtifactStore.clean_tmp`) or an
unreferenced complete blob (found by ``Store.check``, removed by ``Store.gc``), never a row pointing at
garbage.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from collections.abc import Iterable
from typing import BinaryIO

from .errors import IntegrityError, InvalidInput, NotFound

CHUNK = 1 << 20
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path: Path | str) -> None:
    """Flush a file's or folder's contents to disk (a folder: its entries, so a rename in it is durable).
    One helper for every atomic write: the artifact store's, uploads', checkpoints'."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Files named by their sha256 under ``root``; every read is verified."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.owners_dir = self.root / "owners"

    def relpath(self, sha256: str) -> str:
        if not _SHA_RE.match(sha256):
            raise InvalidInput(f"{sha256!r} is not a sha256 hex digest (64 lowercase hex characters)")
        return f"{sha256[:2]}/{sha256}"

    def path_for(self, sha256: str) -> Path:
        return self.root / self.relpath(sha256)

    def put(self, src: Path | bytes | BinaryIO, *, expected_sha256: str | None = None,
            max_size: int | None = None) -> tuple[str, int]:
        """Store ``src`` (a file path, bytes or a binary stream); return ``(sha256, size)``.

        Untrusted streams (a bundle's blobs) pass ``max_size`` (writing stops and fails past it: a zip
        bomb cannot fill the disk) and ``expected_sha256`` (content that does not match is deleted,
        never renamed into place as a blob nothing references). Either failure is an IntegrityError.
        """
        if expected_sha256 is not None:
            self.relpath(expected_sha256)  # a malformed digest fails before anything is written
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            h, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(src):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise IntegrityError(f"content is more than {max_size} bytes")
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fchmod(out.fileno(), 0o644)  # mkstemp makes 0600; blobs are shared read-only data
                os.fsync(out.fileno())
            sha = h.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise IntegrityError(f"content hashes to {sha}, expected {expected_sha256}")
            final = self.path_for(sha)
            if self._claim(final) and self._intact(final, sha, size):
                tmp.unlink()  # identical content is stored once
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                fsync_path(final.parent)
            return sha, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def verified_path(self, sha256: str) -> Path:
        """The blob's path after checking its content still hashes to ``sha256``."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound(f"artifact {sha256} is missing from the store at {path}")
        actual = sha256_file(path)
        if actual != sha256:
            raise IntegrityError(f"artifact file {path} is corrupt: its content hashes to {actual}, "
                                 f"expected {sha256}")
        return path

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, verified against ``sha256`` (read once, hashed in memory)."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound(f"artifact {sha256} is missing from the store at {path}")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(f"artifact file {path} is corrupt: its content hashes to {actual}, "
                                 f"expected {sha256}")
        return data

    def clean_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temp files left by killed writers; return how many.

        Only files untouched for ``older_than_s`` go, so a writer still streaming a large file in
        another process keeps its temp file (pass 0 when no writer can be running).
        """
        cutoff = time.time() - older_than_s
        return sum(self.remove_if_older(p, cutoff) for p, _ in self.stale_tmp(older_than_s))

    def stale_tmp(self, older_than_s: float) -> list[tuple[Path, int]]:
        """``(path, size)`` of temp files untouched for ``older_than_s`` seconds."""
        return self._older(self.tmp.iterdir() if self.tmp.is_dir() else [], older_than_s)

    # -- owners: which databases use this folder ------------------------------------------------------
    # Why: two SQLite files in one folder share <folder>/artifacts by default (and every server database
    # shares <home>/artifacts), so a blob one database does not reference may be another's. ``gc`` may only
    # delete when no other database is registered here. A marker is ``owners/<sha256 of the identity>``
    # holding JSON: the printable (password-free) URL, and for a SQLite file its path, so a database that
    # was deleted stops holding the folder.
    def register_owner(self, identity: str, label: str, sqlite_path: Path | None = None) -> None:
        """Record that the database ``identity`` uses this folder (once; a read-only folder is left alone)."""
        marker = self.owners_dir / hashlib.sha256(identity.encode()).hexdigest()
        if marker.exists():
            return
        body = json.dumps({"identity": identity, "url": label,
                           "sqlite": str(sqlite_path) if sqlite_path else None})
        try:
            self.owners_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.owners_dir, prefix=".new-")
            with os.fdopen(fd, "w") as f:
                f.write(body)
            os.chmod(tmp, 0o644)
            os.replace(tmp, marker)  # whole or absent: a reader never sees half a marker
        except OSError:
            pass  # a store shared read-only: its owner registered it; this process cannot gc it anyway

    def other_owners(self, identity: str | None) -> list[tuple[str, Path]]:
        """``(printable url, marker file)`` of every live database other than ``identity`` using this folder.

        A SQLite owner whose file no longer exists is skipped (its blobs really are orphans now); a
        marker that cannot be read counts as an unknown owner, so doubt never leads to deleting.
        """
        mine = hashlib.sha256(identity.encode()).hexdigest() if identity else None
        out = []
        markers = self.owners_dir.iterdir() if self.owners_dir.is_dir() else []
        for marker in sorted(p for p in markers if not p.name.startswith(".") and p.name != mine):
            try:
                info = json.loads(marker.read_text())
                label, sqlite = str(info["url"]), info.get("sqlite")
            except (OSError, ValueError, KeyError, TypeError):
                label, sqlite = f"an unknown database (marker {marker.name[:12]})", None
            if sqlite and not Path(sqlite).exists():
                continue
            out.append((label, marker))
        return out

    def blobs(self) -> list[Path]:
        """Every complete blob in the store (for audits and tests)."""
        return sorted(p for p in self.root.glob("??/*") if p.is_file() and _SHA_RE.match(p.name))

    def old_blobs(self, older_than_s: float) -> list[tuple[Path, int]]:
        """``(path, size)`` of blobs whose mtime is ``older_than_s`` seconds ago or more.

        Why an age: a writer renames its blob into place (or touches an existing one it reuses)
        before it inserts the row, so a young blob without a row may be about to get one.
        """
        return self._older(self.blobs(), older_than_s)

    @staticmethod
    def _older(paths: Iterable[Path], older_than_s: float) -> list[tuple[Path, int]]:
        out, cutoff = [], time.time() - older_than_s
        for p in paths:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime <= cutoff:
                out.append((p, st.st_size))
        return sorted(out)

    @staticmethod
    def remove_if_older(path: Path, cutoff: float) -> bool:
        """Unlink ``path`` if its mtime is still at or before ``cutoff`` (checked again right before)."""
        try:
            if path.stat().st_mtime <= cutoff:
                path.unlink()
                return True
        except FileNotFoundError:
            pass
        return False

    @staticmethod
    def _claim(final: Path) -> bool:
        """Touch an existing blob before reusing it, so that ``gc`` (which spares blobs younger than
        its age threshold) cannot delete it between now and the caller inserting its row."""
        try:
            os.utime(final)
            return True
        except FileNotFoundError:
            return False
        except PermissionError:  # a read-only store shared by another user: reuse without touching
            return final.exists()

    @staticmethod
    def _intact(path: Path, sha: str, size: int) -> bool:
        return path.stat().st_size == size and sha256_file(path) == sha


def _chunks(src: Path | bytes | BinaryIO):
    if isinstance(src, (bytes, bytearray, memoryview)):
        yield bytes(src)
        return
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.is_file():
            raise NotFound(f"artifact source {p} does not exist or is not a file")
        with open(p, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
        return
    if hasattr(src, "read"):
        yield from iter(lambda: src.read(CHUNK), b"")
        return
    raise InvalidInput(f"artifact source must be a path, bytes or a binary file, not {type(src).__name__}")
