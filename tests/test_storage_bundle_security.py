"""Bundles are untrusted input: whoever sends one (or logs in to a shared studio) must not reach the
server's disk. Hostile artifact names, zip bombs and wrong-shaped manifests are refused with one clear
typed error, nothing is written outside the store, and no blob survives a failed hash."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest

from storage import IntegrityError, InvalidInput, StorageError, open_store
from storage import bundle as bundle_mod
from storage.artifacts import ArtifactStore
from storage.models import Artifact
from storage.paths import check_artifact_name, safe_join

ROOT = Path(__file__).resolve().parents[1]

HOSTILE_NAMES = ["../../evil.txt", "/tmp/evil-abs.txt", "a/../../evil.txt", "..", ".", "", "a//b",
                 "dir/", "C:evil.txt", "c:/evil.txt", "..\\..\\evil.txt", "a\x00b", "x\n.txt"]


# -- forging bundles: an attacker can recompute every hash, so only structure and limits protect us ---

def _make_run(st, blob: bytes = b"\x00weights" * 100) -> int:
    t = st.save_version("template", "t", 'It was {"mask"}.')
    rid = st.create_run({"lr": 0.1}, method="soft", template_version_id=t.id, status="running")
    st.append_metrics(rid, [{"key": "loss", "step": 1, "value": 0.5}])
    st.attach_artifact(rid, "weights", "run.json", blob)
    st.set_status(rid, "succeeded")
    return rid


@pytest.fixture
def good(tmp_path) -> Path:
    with open_store(f"sqlite:///{tmp_path / 'src.db'}", tmp_path / "src-artifacts") as st:
        return st.export_run(_make_run(st), tmp_path / "good.zip")


def forge(src: Path, dst: Path, *, files: dict[str, bytes | None] | None = None,
          manifest: Callable[[dict[str, Any]], None] | None = None, rehash: bool = True,
          compress: dict[str, int] | None = None) -> Path:
    """Copy bundle ``src`` to ``dst`` with ``files`` replaced (None: removed), the manifest's hashes and
    sizes recomputed (``rehash``), then ``manifest`` applied to the manifest dict."""
    files, compress = files or {}, compress or {}
    with zipfile.ZipFile(src) as zin:
        data = {n: zin.read(n) for n in zin.namelist()}
    man = json.loads(data.pop("manifest.json"))
    for name, raw in files.items():
        if raw is None:
            data.pop(name, None)
            man["files"].pop(name, None)
            continue
        data[name] = raw
        if rehash:
            man["files"][name] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    if manifest is not None:
        manifest(man)
    with zipfile.ZipFile(dst, "w") as zout:
        for name, raw in data.items():
            zout.writestr(name, raw, compress_type=compress.get(name, zipfile.ZIP_DEFLATED))
        zout.writestr("manifest.json", json.dumps(man))
    return dst


def _artifacts_json(src: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(src) as zf:
        return json.loads(zf.read("artifacts.json"))


def _renamed(src: Path, dst: Path, name: str) -> Path:
    arts = _artifacts_json(src)
    arts[0]["name"] = name
    return forge(src, dst, files={"artifacts.json": json.dumps(arts).encode()})


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")} if path.exists() else set()


@pytest.fixture
def other(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'dst.db'}", tmp_path / "dst-artifacts") as st:
        yield st


@pytest.fixture
def store_sqlite(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "s-artifacts") as st:
        yield st


def _nothing_imported(st) -> None:
    assert st.list_runs() == [] and st.list_names("template") == []
    assert st.artifacts.blobs() == [], "a blob of a refused bundle was kept"
    assert not st.artifacts.tmp.exists() or not any(st.artifacts.tmp.iterdir()), "a temp file was left"


# -- 1. names that become paths ---------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_by_the_path_helper(tmp_path, name):
    with pytest.raises(InvalidInput, match="not a safe file name|expected a string"):
        safe_join(tmp_path, name)


@pytest.mark.parametrize("name", ["w.bin", "adapter/adapter_config.json", "a.b..c", "...x"])
def test_plain_and_nested_relative_names_stay_under_the_root(tmp_path, name):
    assert safe_join(tmp_path, name) == (tmp_path / name).resolve()
    assert check_artifact_name(name) == name


def test_a_symlink_inside_the_root_cannot_lead_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "adapter").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside"):
        safe_join(root, "adapter/x.bin")


@pytest.mark.parametrize("name", ["../../evil.txt", "/tmp/evil-abs.txt", "w\ud800.bin", "a" * 300],
                         ids=["parent", "absolute", "lone surrogate", "300 bytes"])
def test_cli_import_of_a_bundle_with_a_hostile_artifact_name_exits_2(good, tmp_path, name):
    """A lone surrogate was an uncaught UnicodeEncodeError from the database, after its blob was stored."""
    evil = _renamed(good, tmp_path / "evil.zip", name)
    home = tmp_path / "home"
    before = _files_under(tmp_path)
    res = subprocess.run([sys.executable, "-m", "storage", "import", str(evil), "--db",
                          f"sqlite:///{home / 'studio.db'}"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PROMPT_STUDIO_HOME": str(home)}, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "artifacts.json[0].name" in res.stderr and "not a safe file name" in res.stderr
    assert _files_under(tmp_path) - _files_under(home) - {home} == before  # nothing written outside the store
    with open_store(f"sqlite:///{home / 'studio.db'}") as st:
        _nothing_imported(st)


def test_a_hostile_uid_is_refused(good, other, tmp_path):
    """The uid names files too (the studio's export folder uses it)."""
    def bad_uid(m):
        m["run"]["uid"] = "../../../../evil"
    with pytest.raises(InvalidInput, match=r"manifest.json: run.uid"):
        other.import_bundle(forge(good, tmp_path / "uid.zip", manifest=bad_uid))
    _nothing_imported(other)


@pytest.mark.parametrize("name", ["../../evil.txt", "/abs/evil.txt", "a\x00b"])
def test_attach_artifact_refuses_hostile_names(store_sqlite, name):
    rid = store_sqlite.create_run({}, method="m")
    with pytest.raises(InvalidInput, match="not a safe file name"):
        store_sqlite.attach_artifact(rid, "weights", name, b"x")
    assert store_sqlite.artifacts.blobs() == []


def test_serving_refuses_a_hostile_name_from_the_database(store_sqlite, tmp_path):
    """A row written before names were checked (or by another tool) still cannot escape the folder."""
    from backend.serving import materialize_run

    rid = store_sqlite.create_run({}, method="lora")
    art = store_sqlite.attach_artifact(rid, "weights", "run.json", b"{}")
    escape = tmp_path / "escaped.txt"
    with store_sqlite.write() as s:
        s.get(Artifact, art.id).name = "../../escaped.txt"
    serve = tmp_path / "serve" / "x"
    with pytest.raises(InvalidInput, match="not a safe file name"):
        materialize_run(store_sqlite, rid, serve)
    assert not escape.exists() and not (tmp_path / "serve" / "escaped.txt").exists()


# -- 2. zip bombs -----------------------------------------------------------------------------------

def _blob_name(src: Path) -> str:
    return next(n for n in zipfile.ZipFile(src).namelist() if n.startswith("blobs/"))


def test_a_blob_declaring_more_than_its_manifest_size_is_refused_before_extraction(good, other, tmp_path):
    blob = _blob_name(good)
    sha = blob.split("/")[1]
    bomb = forge(good, tmp_path / "bomb.zip", files={blob: bytes(4 << 20)}, rehash=False)
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo(blob).compress_size < 64 << 10
    with pytest.raises(IntegrityError, match=rf"{blob}: .*4194304 bytes.*manifest.*\d+"):
        other.import_bundle(bomb)
    _nothing_imported(other)
    assert not other.artifacts.path_for(sha).exists()


def test_a_blob_that_fails_its_hash_is_not_kept(good, other, tmp_path):
    blob = _blob_name(good)
    size = json.loads(zipfile.ZipFile(good).read("manifest.json"))["files"][blob]["size"]
    bad = forge(good, tmp_path / "bad.zip", files={blob: b"t" * size}, rehash=False)
    with pytest.raises(IntegrityError, match="corrupt"):
        other.import_bundle(bad)
    _nothing_imported(other)


def test_a_highly_compressed_entry_is_refused(good, other, tmp_path, monkeypatch):
    """Sizes and hashes all consistent (an attacker can do that): the ratio alone gives it away."""
    blob_sha = hashlib.sha256(bytes(4 << 20)).hexdigest()
    arts = _artifacts_json(good)
    arts[0].update(sha256=blob_sha, size=4 << 20)
    bomb = forge(good, tmp_path / "ratio.zip", files={"artifacts.json": json.dumps(arts).encode(),
                                                      _blob_name(good): None,
                                                      f"blobs/{blob_sha}": bytes(4 << 20)})
    with pytest.raises(InvalidInput, match="compression ratio"):
        other.import_bundle(bomb)
    _nothing_imported(other)
    monkeypatch.setattr(bundle_mod, "MAX_RATIO", 10_000)  # the same bundle is fine without the limit
    assert other.import_bundle(bomb)


def test_metadata_files_and_the_whole_bundle_have_caps(good, other, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "MAX_METADATA_BYTES", 3000)
    big = json.dumps({"pad": "x" * 5000}).encode()
    with pytest.raises(InvalidInput, match=rf"config.json: {len(big)} bytes.*limit.*3000"):
        other.import_bundle(forge(good, tmp_path / "cfg.zip", files={"config.json": big}))
    monkeypatch.setattr(bundle_mod, "MAX_METADATA_BYTES", 64 << 20)
    monkeypatch.setattr(bundle_mod, "MAX_BUNDLE_BYTES", 500)
    with pytest.raises(InvalidInput, match="expands to .* bytes.*limit.*500"):
        other.import_bundle(good)
    _nothing_imported(other)


def test_a_manifest_json_over_the_cap_is_refused(good, other, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "MAX_METADATA_BYTES", 100)
    with pytest.raises(InvalidInput, match=r"manifest.json: .*bytes.*limit.*100"):
        other.import_bundle(good)


def test_unsupported_compression_is_refused(good, other, tmp_path):
    """bzip2 / lzma decompress a whole chunk at once, so they could blow up memory inside one read."""
    bz = forge(good, tmp_path / "bz.zip", files={"config.json": b'{"lr": 0.1}'},
               compress={"config.json": zipfile.ZIP_BZIP2})
    with pytest.raises(InvalidInput, match="config.json: .*compression"):
        other.import_bundle(bz)


def test_a_bad_crc_is_an_integrity_error(good, other, tmp_path):
    """A flipped byte inside a deflated entry: zipfile raises BadZipFile / zlib.error mid-read."""
    with pytest.raises(IntegrityError, match="cannot be read"):
        other.import_bundle(_flipped(good, tmp_path / "crc.zip", "config.json"))


def _flipped(src: Path, dst: Path, name: str) -> Path:
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(name)
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[data_start + info.compress_size // 2] ^= 0x55
    dst.write_bytes(bytes(raw))
    return dst


def test_put_with_a_size_cap_or_an_expected_hash_keeps_nothing_on_mismatch(tmp_path):
    arts = ArtifactStore(tmp_path / "a")
    with pytest.raises(IntegrityError, match="more than 10 bytes"):
        arts.put(b"x" * 11, max_size=10)
    with pytest.raises(IntegrityError, match="hashes to .* expected"):
        arts.put(b"x" * 10, expected_sha256="0" * 64)
    assert arts.blobs() == [] and not any(arts.tmp.iterdir())
    sha, size = arts.put(b"x" * 10, expected_sha256=hashlib.sha256(b"x" * 10).hexdigest(), max_size=10)
    assert size == 10 and arts.read(sha) == b"x" * 10


# -- 3. wrong-shaped manifests ----------------------------------------------------------------------

def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(m: dict[str, Any]) -> None:
        target = m
        for k in path[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return apply


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    (["files"], _DELETE, "manifest.json: files: missing"),
    (["run"], _DELETE, "manifest.json: run: missing"),
    (["files"], [], "manifest.json: files: expected an object"),
    (["files", "config.json", "sha256"], 5, r'manifest.json: files\["config.json"\].sha256: expected a string'),
    (["files", "config.json", "sha256"], _DELETE, r'manifest.json: files\["config.json"\].sha256: missing'),
    (["files", "config.json", "size"], -1, r'manifest.json: files\["config.json"\].size: expected'),
    (["files", "config.json"], "x", r'manifest.json: files\["config.json"\]: expected an object'),
    (["run", "uid"], 3, "manifest.json: run.uid: expected a string"),
    (["run", "tags"], "a", "manifest.json: run.tags: expected a list"),
    (["run", "history"], [{"status": 1}], r"manifest.json: run.history\[0\].status: expected a string"),
    (["run", "status"], "exploded", "manifest.json: run.status: expected one of"),
    (["run", "created_at"], "now", "manifest.json: run.created_at: expected a number"),
    (["format_version"], "1", "manifest.json: format_version: expected an integer"),
])
def test_wrong_shaped_manifests_name_the_bad_field(good, other, tmp_path, path, value, message):
    bad = forge(good, tmp_path / "bad.zip", manifest=_set(path, value))
    with pytest.raises(StorageError, match=message):
        other.import_bundle(bad)
    _nothing_imported(other)


def test_a_manifest_that_is_not_an_object_is_refused(good, other, tmp_path):
    bad = tmp_path / "list.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, b"[1, 2]" if n == "manifest.json" else zin.read(n))
    with pytest.raises(InvalidInput, match="manifest.json: expected an object"):
        other.import_bundle(bad)


@pytest.mark.parametrize("entry, message", [
    ("x", r"artifacts.json\[0\]: expected an object"),
    ({"kind": "w", "name": "a", "size": 1, "created_at": 1.0}, r"artifacts.json\[0\].sha256: missing"),
    ({"kind": "w", "name": "a", "sha256": "zz", "size": 1, "created_at": 1.0},
     r"artifacts.json\[0\].sha256: expected a sha256"),
    ({"kind": 1, "name": "a", "sha256": "0" * 64, "size": 1, "created_at": 1.0},
     r"artifacts.json\[0\].kind: expected a string"),
])
def test_wrong_artifacts_entries_name_the_bad_field(good, other, tmp_path, entry, message):
    bad = forge(good, tmp_path / "bad.zip", files={"artifacts.json": json.dumps([entry]).encode()})
    with pytest.raises(StorageError, match=message):
        other.import_bundle(bad)
    _nothing_imported(other)


def test_wrong_shaped_metadata_files_name_the_file(good, other, tmp_path):
    cases = {"config.json": (b"[1]", "config.json: expected an object"),
             "metrics.jsonl": (b'{"key": 5, "step": 1, "value": 1}\n', r"metrics.jsonl line 1: key"),
             "predictions.jsonl": (b"not json\n", "predictions.jsonl line 1: not valid JSON"),
             "template.json": (b'{"kind": "template"}', "template.json: name: missing")}
    for name, (raw, message) in cases.items():
        with pytest.raises(StorageError, match=message):
            other.import_bundle(forge(good, tmp_path / "bad.zip", files={name: raw}))
    _nothing_imported(other)


def test_unknown_files_in_the_manifest_are_refused(good, other, tmp_path):
    bad = forge(good, tmp_path / "bad.zip", files={"../../evil.txt": b"x"})
    with pytest.raises(InvalidInput, match=r"manifest.json: files\[\"../../evil.txt\"\]: not a file"):
        other.import_bundle(bad)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def test_any_wrong_shaped_manifest_or_artifacts_list_raises_only_typed_errors(good, tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    with zipfile.ZipFile(good) as zf:
        docs = {"manifest": json.loads(zf.read("manifest.json")), "artifacts": json.loads(zf.read("artifacts.json"))}
    targets = [(doc, p) for doc, d in docs.items() for p in _paths(d)] + [("artifacts", ())]
    values = st.recursive(st.none() | st.booleans() | st.integers(-2, 2**63) | st.floats() | st.text(max_size=4),
                          lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=4), c, max_size=2),
                          max_leaves=4)
    mutation = st.tuples(st.sampled_from(targets), st.booleans(), values)

    with open_store(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "h-artifacts") as st_:
        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(mutation, min_size=1, max_size=3))
        def check(mutations):
            man, arts = json.loads(json.dumps(docs["manifest"])), json.loads(json.dumps(docs["artifacts"]))
            man["run"]["uid"] = str(uuid.uuid4())  # a fresh run each time, so import goes all the way
            for (doc, path), delete, value in mutations:
                root = {"manifest": man, "artifacts": arts}
                if not path:
                    if doc == "artifacts":
                        arts = value
                    continue
                parent = root[doc]
                try:
                    for k in path[:-1]:
                        parent = parent[k]
                    if delete and isinstance(parent, dict):
                        parent.pop(path[-1], None)
                    else:
                        parent[path[-1]] = value
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier mutation removed this path
            raw = json.dumps(arts).encode()

            def put(m):
                m.clear()
                m.update(man)
                if isinstance(m.get("files"), dict) and isinstance(m["files"].get("artifacts.json"), dict):
                    m["files"]["artifacts.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
            bad = forge(good, tmp_path / "h.zip", files={"artifacts.json": raw}, rehash=False, manifest=put)
            try:
                st_.import_bundle(bad)
            except StorageError:
                pass

        check()


@pytest.mark.parametrize("make", ["hostile name", "not a zip", "wrong shape", "bad crc"])
def test_the_studio_import_service_answers_with_a_message_not_a_traceback(good, other, tmp_path, make):
    """What the Runs tab's Import button calls: every refused bundle is an error result."""
    from types import SimpleNamespace

    from backend.services import runs as runs_service

    path = tmp_path / "upload.zip"
    if make == "hostile name":
        _renamed(good, path, "../../evil.txt")
    elif make == "not a zip":
        path.write_bytes(b"PK\x03\x04 not really")
    elif make == "wrong shape":
        forge(good, path, manifest=_set(["run"], [1]))
    else:
        _flipped(good, path, "config.json")
    res = runs_service.import_bundle(SimpleNamespace(store=other), str(path))
    assert "error" in res and res["error"]["message"].startswith("upload.zip"), res
    assert str(tmp_path) not in res["error"]["message"]
    assert "\n" not in res["error"]["message"]
    _nothing_imported(other)
