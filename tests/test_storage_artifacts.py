"""Content-addressed artifact store: atomic writes, dedupe, verification on read, clear corruption errors."""
from __future__ import annotations

import io
import os

import pytest

from storage import IntegrityError, InvalidInput, NotFound
from storage.artifacts import ArtifactStore, sha256_file
from tests.storage_helpers import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)


def test_attach_copies_into_the_store_and_verifies(store, tmp_path):
    src = tmp_path / "adapter_model.safetensors"
    src.write_bytes(os.urandom(3 * (1 << 20) + 17))  # spans several chunks
    rid = store.create_run({}, method="lora", status="running")
    art = store.attach_artifact(rid, "adapter", "adapter_model.safetensors", src)
    assert art.sha256 == sha256_file(src) and art.size == src.stat().st_size
    path = store.artifact_path(art.sha256)
    assert path.read_bytes() == src.read_bytes() and path != src
    assert store.read_artifact(art.sha256) == src.read_bytes()
    assert store.list_artifacts(rid) == [art] and store.get_run(rid).artifacts == (art,)


def test_identical_content_is_stored_once(store):
    a = store.create_run({}, method="m")
    b = store.create_run({}, method="m")
    x = store.attach_artifact(a, "weights", "w.bin", b"same bytes")
    y = store.attach_artifact(b, "weights", "other.bin", io.BytesIO(b"same bytes"))
    assert x.sha256 == y.sha256 and len(store.artifacts.blobs()) == 1
    assert store.attach_artifact(a, "weights", "w.bin", b"same bytes") == x  # idempotent


def test_same_name_with_other_content_is_refused(store):
    rid = store.create_run({}, method="m")
    store.attach_artifact(rid, "weights", "w.bin", b"one")
    with pytest.raises(InvalidInput, match="already has a weights artifact named 'w.bin'"):
        store.attach_artifact(rid, "weights", "w.bin", b"two")


def test_corruption_is_detected_with_a_clear_error(store):
    rid = store.create_run({}, method="m")
    art = store.attach_artifact(rid, "weights", "w.bin", b"precious weights")
    path = store.artifacts.path_for(art.sha256)
    path.write_bytes(b"precious weightz")
    with pytest.raises(IntegrityError, match=f"{path} is corrupt: .* expected {art.sha256}"):
        store.read_artifact(art.sha256)
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.artifact_path(art.sha256)
    report = store.check()
    assert not report["ok"] and "corrupt" in report["problems"][0]
    # attaching the good bytes again repairs the blob in place
    store.attach_artifact(rid, "weights", "w.bin", b"precious weights")
    assert store.read_artifact(art.sha256) == b"precious weights" and store.check()["ok"]


def test_missing_blob_and_bad_inputs(tmp_path):
    arts = ArtifactStore(tmp_path)
    with pytest.raises(NotFound, match="is missing from the store"):
        arts.read("0" * 64)
    with pytest.raises(InvalidInput, match="is not a sha256 hex digest"):
        arts.path_for("../../etc/passwd")
    with pytest.raises(NotFound, match="does not exist or is not a file"):
        arts.put(tmp_path / "nope.bin")
    with pytest.raises(InvalidInput, match="must be a path, bytes or a binary file"):
        arts.put(12)  # type: ignore[arg-type]


def test_attach_to_missing_run_copies_nothing(store):
    with pytest.raises(NotFound, match="no run with id 5"):
        store.attach_artifact(5, "weights", "w.bin", b"x")
    assert store.artifacts.blobs() == []


def test_failed_write_leaves_no_blob_and_no_temp_file(tmp_path):
    class Exploding(io.RawIOBase):
        calls = 0

        def read(self, n=-1):  # type: ignore[override]
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk pulled out")
            return b"x" * 1024

    arts = ArtifactStore(tmp_path)
    with pytest.raises(OSError, match="disk pulled out"):
        arts.put(Exploding())
    assert arts.blobs() == [] and list(arts.tmp.iterdir()) == []


def test_clean_tmp_removes_only_old_leftovers(tmp_path):
    arts = ArtifactStore(tmp_path)
    arts.tmp.mkdir(parents=True)
    old, fresh = arts.tmp / "put-old", arts.tmp / "put-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (0, 0))
    assert arts.clean_tmp(older_than_s=3600) == 1
    assert not old.exists() and fresh.exists()


def test_blobs_are_named_by_their_content(store):
    rid = store.create_run({}, method="m")
    for i in range(5):
        store.attach_artifact(rid, "ckpt", f"step-{i}", os.urandom(100))
    blobs = store.artifacts.blobs()
    assert len(blobs) == 5 and all(sha256_file(p) == p.name for p in blobs)
    assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in blobs)
