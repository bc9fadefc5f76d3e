"""Orphan blobs (a writer killed between writing a blob and inserting its row, an import that failed
half way) are reported by ``check`` and removed by ``gc``; blobs a writer may still be about to
reference (younger than the age threshold, or just reused) are never removed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import open_store
from storage.testing import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600.0


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _orphan(st, data: bytes, age: float = 2 * HOUR) -> Path:
    sha, _ = st.artifacts.put(data)  # a blob without a row: what a crash leaves
    path = st.artifacts.path_for(sha)
    _age(path, age)
    return path


def _stale_tmp(st, age: float = 2 * HOUR) -> Path:
    st.artifacts.tmp.mkdir(parents=True, exist_ok=True)
    p = st.artifacts.tmp / "put-killed"
    p.write_bytes(b"half a blob")
    _age(p, age)
    return p


def test_check_reports_old_orphans_with_their_count_and_size(store):
    rid = store.create_run({}, method="m")
    kept = store.attach_artifact(rid, "weights", "w.bin", b"referenced")
    _age(store.artifacts.path_for(kept.sha256), 2 * HOUR)
    assert store.check()["ok"]
    _orphan(store, b"orphan-1")
    _orphan(store, b"orphan-22")
    report = store.check()
    assert not report["ok"]
    assert report["orphans"] == {"count": 2, "bytes": 17}
    assert any("2 orphan blobs (17 bytes)" in p and "gc" in p for p in report["problems"])


def test_check_does_not_flag_a_blob_a_writer_may_still_reference(store):
    _orphan(store, b"just written", age=0)  # renamed into place, its row not inserted yet
    assert store.check()["ok"]
    assert not store.check(orphan_min_age_s=0)["ok"]


def test_gc_removes_old_orphans_and_stale_temp_files_only(store):
    rid = store.create_run({}, method="m")
    kept = store.attach_artifact(rid, "weights", "w.bin", b"referenced")
    _age(store.artifacts.path_for(kept.sha256), 2 * HOUR)
    old, young = _orphan(store, b"old orphan"), _orphan(store, b"young orphan", age=60)
    tmp = _stale_tmp(store)
    fresh_tmp = store.artifacts.tmp / "put-writing"
    fresh_tmp.write_bytes(b"streaming")

    dry = store.gc(dry_run=True)
    assert dry == {"dry_run": True, "blobs": 1, "blob_bytes": 10, "tmp_files": 1, "tmp_bytes": 11}
    assert old.exists() and tmp.exists()

    assert store.gc() == dict(dry, dry_run=False)
    assert not old.exists() and not tmp.exists()
    assert young.exists() and fresh_tmp.exists()
    assert store.read_artifact(kept.sha256) == b"referenced" and store.check()["ok"]
    assert store.gc(min_age_s=0) == {"dry_run": False, "blobs": 1, "blob_bytes": 12, "tmp_files": 1,
                                     "tmp_bytes": 9}
    assert store.artifacts.blobs() == [store.artifacts.path_for(kept.sha256)]


def test_reusing_an_old_orphan_protects_it_from_gc(store):
    """put() of content already stored touches the blob: the writer's row comes after gc's age check."""
    path = _orphan(store, b"same bytes")
    sha, _ = store.artifacts.put(b"same bytes")
    assert time.time() - path.stat().st_mtime < 60
    assert store.gc()["blobs"] == 0 and path.exists()


def test_blobs_left_by_a_failed_import_are_collected(store, tmp_path):
    """The first blob of a bundle is imported, the second fails its hash: the first is an orphan."""
    import hashlib
    import zipfile

    rid = store.create_run({}, method="m")
    store.attach_artifact(rid, "weights", "a.bin", b"first blob")
    store.attach_artifact(rid, "weights", "b.bin", b"second blob")
    good = store.export_run(rid, tmp_path / "good.zip")
    bad = tmp_path / "bad.zip"
    second = "blobs/" + hashlib.sha256(b"second blob").hexdigest()
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, b"second blOb" if n == second else zin.read(n))
    with open_store(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "oa") as other:
        with pytest.raises(Exception, match="corrupt"):
            other.import_bundle(bad)
        left = other.artifacts.blobs()  # the first blob, if it sorted before the bad one
        assert left == [other.artifacts.path_for(hashlib.sha256(b"first blob").hexdigest())][:len(left)]
        assert other.check(orphan_min_age_s=0)["orphans"]["count"] == len(left)
        assert other.gc(min_age_s=0) == {"dry_run": False, "blobs": len(left), "blob_bytes": 10 * len(left),
                                         "tmp_files": 0, "tmp_bytes": 0}
        assert other.artifacts.blobs() == [] and other.check(orphan_min_age_s=0)["ok"]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storage", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PROMPT_STUDIO_HOME": str(home)}, timeout=60)


def test_cli_check_and_gc(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with open_store(url) as st:
        rid = st.create_run({}, method="m")
        st.attach_artifact(rid, "weights", "w.bin", b"referenced")
        _orphan(st, b"orphan", age=10)
    res = cli("check", "--db", url, home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = cli("check", "--db", url, "--min-age", "0", home=tmp_path)
    assert res.returncode == 1 and "1 orphan blob (6 bytes)" in res.stdout
    res = cli("gc", "--db", url, "--min-age", "0", "--dry-run", home=tmp_path)
    assert res.returncode == 0 and "would remove 1 orphan blob (6 bytes) and 0 temp files" in res.stdout
    res = cli("gc", "--db", url, home=tmp_path)  # default: only blobs older than an hour
    assert res.returncode == 0 and "removed 0 orphan blobs" in res.stdout
    res = cli("gc", "--db", url, "--min-age", "0", "--json", home=tmp_path)
    assert res.returncode == 0 and '"blobs": 1' in res.stdout
    assert cli("check", "--db", url, "--min-age", "0", home=tmp_path).returncode == 0
    res = cli("gc", "--db", url, "--min-age", "-5", home=tmp_path)
    assert res.returncode == 2 and "min-age" in res.stderr
