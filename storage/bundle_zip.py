"""The size of a zip's central directory, read from the file's tail before ``zipfile`` parses it.

Why: ``zipfile.ZipFile`` reads the whole central directory into memory and builds one ``ZipInfo`` per
entry as soon as it opens a file. A hostile bundle of a few MB can list hundreds of thousands of entries
(seconds and ~100 MB to parse), all of it spent before any check of ours runs. The end-of-central-directory
record (and, for a zip64 file, its zip64 record) says how many entries there are and how many bytes
``zipfile`` will read for them, so a bundle that declares more than a run bundle can have is refused first.
"""
from __future__ import annotations

import struct
from pathlib import Path

from .errors import InvalidInput

_EOCD = struct.Struct("<4s4H2LH")        # signature, disks, entries here, entries, size, offset, comment
_LOCATOR64 = struct.Struct("<4sLQL")     # signature, disk, offset of the zip64 record, disks
_EOCD64 = struct.Struct("<4sQ2H2L4Q")    # signature, size, versions, disks, entries here, entries, size, offset
_MAX_COMMENT = 0xFFFF


def _end_records(path: Path) -> list[tuple[int, int]]:
    """``(entries, directory bytes)`` as each end record declares them (the plain one, then any zip64
    one); empty when there is no end record (``zipfile`` then says the file is not a zip).

    The plain record is found as ``zipfile`` finds it: at the very end, else the last signature in the
    last 64 KiB. A zip64 record is read both where ``zipfile`` 3.11 looks (just before its locator) and
    where the locator points (newer versions), so whichever one a parser uses has been checked.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        tail_len = min(size, _EOCD64.size + _LOCATOR64.size + _EOCD.size + _MAX_COMMENT)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        at = len(tail) - _EOCD.size
        if at < 0:
            return []
        if not (tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
            at = tail.rfind(b"PK\x05\x06", max(0, len(tail) - _EOCD.size - _MAX_COMMENT - 1))
            if at < 0 or at + _EOCD.size > len(tail):
                return []
        fields = _EOCD.unpack_from(tail, at)
        out = [(max(fields[3], fields[4]), fields[5])]
        loc = at - _LOCATOR64.size
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            return out
        records = [tail[loc - _EOCD64.size:loc]] if loc >= _EOCD64.size else []
        offset = _LOCATOR64.unpack_from(tail, loc)[2]
        if offset + _EOCD64.size <= size:
            f.seek(offset)
            records.append(f.read(_EOCD64.size))
    for rec in records:
        if len(rec) == _EOCD64.size and rec[:4] == b"PK\x06\x06":
            fields = _EOCD64.unpack(rec)
            out.append((max(fields[6], fields[7]), fields[8]))
    if len(out) > 1:  # zip64: the plain record may hold placeholders (0xFFFF, 0xFFFFFFFF) for these
        out[0] = (out[0][0] if out[0][0] != 0xFFFF else 0, out[0][1] if out[0][1] != 0xFFFFFFFF else 0)
    return out


def check_directory(path: Path, max_entries: int, max_directory_bytes: int) -> None:
    """Refuse a zip whose end records declare more than ``max_entries`` entries or a central directory
    over ``max_directory_bytes`` (what ``zipfile`` would read and parse on opening it)."""
    for entries, directory in _end_records(path):
        if entries > max_entries:
            raise InvalidInput(f"the zip lists {entries} entries; a run bundle has at most {max_entries} "
                               f"(its metadata files and one blob per artifact)")
        if directory > max_directory_bytes:
            raise InvalidInput(f"the zip's central directory is {directory} bytes, over the limit of "
                               f"{max_directory_bytes} bytes for a run bundle")
