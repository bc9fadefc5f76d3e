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

from storage import StorageError, open_store
from tests.storage_helpers import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)

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
    store.set_status(rid, "cancelled")  # only a finished run is exported
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


# -- one artifact folder, several databases ------------------------------------------------------------
# Two SQLite files in one folder share <folder>/artifacts by default: each database's blobs look like
# orphans to the other, so gc must refuse rather than delete what the other database references.

def _two_databases_one_folder(tmp_path: Path):
    a = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    b = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    assert a.artifacts.root == b.artifacts.root == tmp_path / "artifacts"
    rid = b.create_run({}, method="m")
    kept = b.attach_artifact(rid, "weights", "w.bin", b"b's weights")
    _age(b.artifacts.path_for(kept.sha256), 2 * HOUR)
    return a, b, kept


def test_gc_refuses_a_folder_another_database_uses(tmp_path):
    a, b, kept = _two_databases_one_folder(tmp_path)
    with a, b:
        with pytest.raises(StorageError) as err:
            a.gc(min_age_s=0)
        msg = err.value.message
        assert str(tmp_path / "b.db") in msg and "--artifacts" in msg and "folder of its own" in msg
        with pytest.raises(StorageError):
            a.gc(dry_run=True)
        assert b.read_artifact(kept.sha256) == b"b's weights"


def test_gc_names_a_server_database_by_its_redacted_url(tmp_path):
    a = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    with a:
        a.artifacts.register_owner("postgresql://bob@db.example/runs", "postgresql://bob:***@db.example/runs")
        with pytest.raises(StorageError, match=r"postgresql://bob:\*\*\*@db.example/runs"):
            a.gc()


def test_the_same_database_under_another_spelling_is_not_another_owner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as st:
        st.gc()
    with open_store("sqlite:///a.db") as st:  # relative: the same file
        assert st.gc()["blobs"] == 0


def test_a_deleted_sqlite_database_no_longer_holds_the_folder(tmp_path):
    a, b, kept = _two_databases_one_folder(tmp_path)
    b.close()
    (tmp_path / "b.db").unlink()
    with a:
        assert a.gc(min_age_s=0)["blobs"] == 1  # b is gone: its blob is an orphan now
        assert not a.artifacts.path_for(kept.sha256).exists()


def test_check_warns_about_a_shared_folder_and_does_not_call_its_blobs_orphans(tmp_path):
    a, b, kept = _two_databases_one_folder(tmp_path)
    with a, b:
        report = a.check()
        assert report["ok"], report["problems"]
        assert any("shared" in w and str(tmp_path / "b.db") in w for w in report["warnings"])
        assert any("1 blob" in w for w in report["warnings"])
        assert b.check()["warnings"] and b.check()["ok"]


def test_cli_gc_on_a_shared_folder_exits_2_and_check_prints_the_warning(tmp_path):
    a, b, kept = _two_databases_one_folder(tmp_path)
    a.close()
    b.close()
    res = cli("gc", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--min-age", "0", home=tmp_path)
    assert res.returncode == 2 and "b.db" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "artifacts" / kept.sha256[:2] / kept.sha256).exists()
    res = cli("check", "--db", f"sqlite:///{tmp_path / 'a.db'}", home=tmp_path)
    assert res.returncode == 0 and "warning:" in res.stdout and "b.db" in res.stdout


# -- hostile names already in a database --------------------------------------------------------------

def test_check_flags_artifact_rows_whose_name_is_not_a_safe_file_name(store):
    from sqlalchemy import update

    from storage.models import Artifact

    rid = store.create_run({}, method="m")
    art = store.attach_artifact(rid, "weights", "w.bin", b"weights")
    _age(store.artifacts.path_for(art.sha256), 2 * HOUR)
    assert store.check()["ok"]
    with store.write() as s:  # a row written before names were checked
        s.execute(update(Artifact).where(Artifact.run_id == rid).values(name="../../etc/cron.d/x"))
    report = store.check()
    assert not report["ok"]
    assert any(f"run {rid}" in p and "'../../etc/cron.d/x'" in p and "not a safe file name" in p
               for p in report["problems"])
