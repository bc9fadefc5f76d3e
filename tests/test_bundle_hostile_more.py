"""More hostile bundles: artifact names no file system takes, zips whose central directory is the attack,
entries the manifest does not list, and runs that had not finished where they were exported.

Each is refused (or, for an unfinished run, made inert) with one typed error, before a single blob
reaches the artifact store."""
from __future__ import annotations

import json
import struct
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from storage import IntegrityError, InvalidInput, InvalidTransition, open_store
from storage import bundle as bundle_mod
from storage.paths import check_artifact_name
from tests.test_storage_bundle_security import _nothing_imported, _renamed, forge
from tests.test_storage_bundle_security import good, other  # noqa: F401  (fixtures)

# -- 1. names the file system or the database cannot take -------------------------------------------

UNTAKEABLE = {"lone surrogate": "w\ud800.bin", "a 300-byte file name": "a" * 300,
              "a 400-byte folder name": "d/" + "é" * 200 + "/x.bin",
              "1205 bytes in 605 characters": "/".join(["é" * 100] * 6)}


@pytest.mark.parametrize("name", UNTAKEABLE.values(), ids=UNTAKEABLE.keys())
def test_names_no_file_system_takes_are_refused(name):
    with pytest.raises(InvalidInput, match="not a safe file name: (it is not valid Unicode|it is .* bytes "
                                           "long|its part .* bytes long)"):
        check_artifact_name(name)


def test_the_limits_are_in_utf8_bytes_and_a_name_at_them_is_fine():
    for name in ("é" * 127 + "x", "/".join(["p" * 255] * 3 + ["q" * 254, "r"])):
        assert len(name.encode()) in (255, 1024) and check_artifact_name(name) == name
    for name in ("é" * 128, "/".join(["p" * 255] * 3 + ["q" * 254, "r" * 2])):   # one byte over each
        with pytest.raises(InvalidInput, match="bytes"):
            check_artifact_name(name)


@pytest.mark.parametrize("name", UNTAKEABLE.values(), ids=UNTAKEABLE.keys())
def test_a_bundle_with_such_a_name_is_refused_and_leaves_no_blob(good, other, tmp_path, name):
    with pytest.raises(InvalidInput, match=r"artifacts.json\[0\].name .*not a safe file name"):
        other.import_bundle(_renamed(good, tmp_path / "evil.zip", name))
    _nothing_imported(other)


def _set_run(**fields):
    def apply(m):
        m["run"].update(fields)
    return apply


def _template_content(src: Path, content: str) -> bytes:
    doc = json.loads(zipfile.ZipFile(src).read("template.json"))
    doc["versions"][0]["content"] = content
    return json.dumps(doc).encode()


def test_what_the_database_would_refuse_is_refused_before_any_blob_is_stored(good, other, tmp_path):
    """A project name the studio does not allow, a version whose content is not what its sha256 says:
    both used to fail while the run was written, after its blobs were already in the store."""
    with pytest.raises(InvalidInput, match=r"manifest.json: run.project: .*character '/' is not allowed"):
        other.import_bundle(forge(good, tmp_path / "p.zip", manifest=_set_run(project="a/b")))
    _nothing_imported(other)
    bad = forge(good, tmp_path / "t.zip", files={"template.json": _template_content(good, "changed {mask}")})
    with pytest.raises(IntegrityError, match=r"template.json: versions\[0\]: content does not match its sha256"):
        other.import_bundle(bad)
    _nothing_imported(other)


# -- 2. the central directory -----------------------------------------------------------------------

def _many_entries(path: Path, n: int, *, zip64: bool) -> Path:
    """A zip whose central directory lists ``n`` one-byte entries, all pointing at one local header."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 1, 1, 1, 0) + b"a"
    cd = b"".join(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 1, 1, len(name), 0, 0, 0,
                              0, 0, 0) + name for name in (b"%x" % i for i in range(n)))
    path.write_bytes(local + cd + _end(len(local) + len(cd), n, len(cd), len(local), zip64=zip64))
    return path


def _end(at: int, n: int, cd_size: int, cd_offset: int, *, zip64: bool) -> bytes:
    """The end records of a zip whose central directory (``n`` entries) ends at offset ``at``."""
    if not zip64:
        return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, cd_size, cd_offset, 0)
    return (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_offset)
            + struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
            + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


def _as_zip64(src: Path, dst: Path, *, entries: int | None = None, cd_size: int | None = None) -> Path:
    """``src`` with zip64 end records (as a bundle over 4 GiB has), optionally declaring other sizes."""
    raw = src.read_bytes()
    _, _, _, _, n, size, offset, comment = struct.unpack("<4s4H2LH", raw[-22:])
    assert comment == 0
    dst.write_bytes(raw[:-22] + _end(len(raw) - 22, entries or n, cd_size or size, offset, zip64=True))
    return dst


@pytest.fixture
def no_zipfile(monkeypatch):
    """Fails the test if zipfile parses the bundle: the refusal must come before it."""
    def refuse(*a, **k):
        raise AssertionError("zipfile.ZipFile was opened before the directory was checked")
    monkeypatch.setattr(bundle_mod.zipfile, "ZipFile", refuse)


@pytest.mark.parametrize("zip64", [False, True], ids=["plain", "zip64"])
def test_a_directory_of_too_many_entries_is_refused_before_zipfile_parses_it(other, tmp_path, zip64,
                                                                            no_zipfile):
    bomb = _many_entries(tmp_path / "many.zip", 0xFFFF, zip64=zip64)   # ~3 MB: the most a plain record counts
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"many.zip: the zip('s central directory is \d+ bytes| lists "
                                           r"\d+ entries)"):
        other.import_bundle(bomb)
    assert time.perf_counter() - started < 0.5
    _nothing_imported(other)


def test_the_entry_count_alone_is_checked(other, tmp_path, no_zipfile):
    small = _many_entries(tmp_path / "few.zip", 3, zip64=False)
    raw = bytearray(small.read_bytes())
    raw[-12:-10] = struct.pack("<H", 60_000)  # the end record's entry count, its directory unchanged
    small.write_bytes(bytes(raw))
    with pytest.raises(InvalidInput, match=f"lists 60000 entries; a run bundle has at most "
                                           f"{bundle_mod.MAX_ZIP_ENTRIES}"):
        other.import_bundle(small)


def test_a_zip64_bundle_is_read_and_its_zip64_record_is_checked(good, other, tmp_path):
    big = _as_zip64(good, tmp_path / "z64.zip")
    with zipfile.ZipFile(big) as zf:
        assert zf.namelist() == zipfile.ZipFile(good).namelist()   # zipfile reads it as the same bundle
    for bad in (_as_zip64(good, tmp_path / "n.zip", entries=10**9),
                _as_zip64(good, tmp_path / "s.zip", cd_size=1 << 40)):
        with pytest.raises(InvalidInput, match="the zip"):
            other.import_bundle(bad)
    _nothing_imported(other)
    assert other.import_bundle(big)


def test_entries_the_manifest_does_not_list_are_refused(good, other, tmp_path):
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(extra, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        zout.writestr("payload.sh", b"#!/bin/sh\n")
    with pytest.raises(InvalidInput, match="an entry the manifest does not list: 'payload.sh'"):
        other.import_bundle(extra)
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(twice, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zout.writestr("config.json", b'{"lr": 99}')
    with pytest.raises(InvalidInput, match="two entries named 'config.json'"):
        other.import_bundle(twice)
    _nothing_imported(other)


# -- 3. runs that had not finished ------------------------------------------------------------------

@pytest.mark.parametrize("status", ["queued", "running"])
def test_an_unfinished_run_is_not_exported(tmp_path, status):
    with open_store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a-artifacts") as st:
        rid = st.create_run({"data": {"train": "/etc/passwd"}}, method="lora", status=status)
        with pytest.raises(InvalidTransition, match=f"run {rid} is {status}; only a finished run .* can "
                                                    f"be exported"):
            st.export_run(rid, tmp_path / "q.zip")
        from backend.services import runs as runs_service

        ctx = SimpleNamespace(store=st, run=st.get_run, exports_dir=tmp_path / "exports")
        res = runs_service.export_bundle(ctx, rid)
        assert "only a finished run" in res["error"]["message"], res
    assert not (tmp_path / "q.zip").exists() and list(tmp_path.rglob("*.zip*")) == []


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_bundle_of_an_unfinished_run_is_imported_as_failed_and_never_claimed(good, other, tmp_path,
                                                                                status):
    """An old or hand-made bundle: the run must not become a job here, nor look alive."""
    now = time.time()
    made = forge(good, tmp_path / "u.zip", manifest=_set_run(
        status=status, host="elsewhere", pid=4242, worker="studio-A", heartbeat_at=now, started_at=now,
        finished_at=None, cancel_requested=True))
    rid = other.import_bundle(made)
    run = other.get_run(rid)
    assert run.status == "failed" and run.finished_at is not None
    assert (run.host, run.pid, run.worker, run.heartbeat_at, run.cancel_requested) == (None, None, None, None,
                                                                                      False)
    assert run.error == f"imported while {status} elsewhere"
    assert (run.history[-1].status, run.history[-1].note) == ("failed", f"imported while {status} elsewhere")
    assert other.claim_next_run("studio-B") is None
    assert other.import_bundle(made) == rid  # the same bundle again: the same run
