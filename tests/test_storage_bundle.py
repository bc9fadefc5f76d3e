"""Run bundles: export a run as one zip, import it elsewhere with the same result, refuse corrupt ones."""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest

from storage import IntegrityError, InvalidInput, NotFound, open_store
from tests.storage_helpers import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)


def _make_run(st):
    st.save_version("template", "sst2", 'v1 {"mask"}', message="first", author="ann")
    st.save_version("template", "sst2", 'v2 {"mask"}', message="second")
    t = st.save_version("template", "sst2", 'v3 {"mask"}', message="third", parent=1)
    v = st.save_version("verbalizer", "pn", '{"neg": ["bad"], "pos": ["good"]}')
    snap = st.save_dataset_snapshot("csv:x.csv", {"text_a": "s"}, "fp", {"test": 2}, ["neg", "pos"])
    parent = st.create_run({"lr": 0.1}, method="soft")
    rid = st.create_run({"lr": 0.1, "nested": {"k": [1, 2]}}, method="soft", seed=3,
                        model_id="tiny", model_revision="r1", template_version_id=t.id,
                        verbalizer_version_id=v.id, dataset_snapshot_id=snap, parent_run_id=parent,
                        tags=["exp"], project="demo")
    st.set_status(rid, "running")
    st.append_metrics(rid, [{"key": "loss", "step": s, "value": 1 / (s + 1), "wall_time": 10.0 + s}
                            for s in range(20)] + [{"key": "gn", "step": 20, "value": float("nan")}])
    st.add_predictions(rid, [{"index": i, "gold": "pos", "predicted": "neg", "probs": [0.3, 0.7]}
                             for i in range(2)])
    st.attach_artifact(rid, "adapter", "adapter_model.safetensors", b"\x00weights" * 1000)
    st.attach_artifact(rid, "adapter", "adapter_config.json", b'{"r": 8}')
    st.set_status(rid, "succeeded")
    return rid


def _portable(st, rid):
    """Everything about a run that must survive export/import (database ids excluded)."""
    run = st.get_run(rid).to_dict()
    for k in ("id", "template_version_id", "verbalizer_version_id", "dataset_snapshot_id",
              "parent_run_id"):
        run.pop(k)
    for a in run["artifacts"]:
        a.pop("id"), a.pop("run_id")
    run["metrics"] = {k: (None if math.isnan(v) else v) for k, v in run["metrics"].items()}
    info = st.get_run(rid)
    versions = {kind: st.get_version_by_id(vid).to_dict() for kind, vid in
                (("template", info.template_version_id), ("verbalizer", info.verbalizer_version_id))}
    for v in versions.values():
        v.pop("id")
    events = [{k: m[k] for k in ("key", "step", "wall_time")} for m in st.get_metrics(rid)]
    return {"run": run, "versions": versions, "metrics": events,
            "predictions": st.get_predictions(rid),
            "snapshot": {k: v for k, v in st.get_dataset_snapshot(info.dataset_snapshot_id)
                         .to_dict().items() if k != "id"},
            "blobs": {a.sha256: st.read_artifact(a.sha256) for a in info.artifacts}}


def test_round_trip_to_an_empty_database(store, tmp_path):
    rid = _make_run(store)
    bundle = store.export_run(rid, tmp_path / "run.zip")
    with open_store(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other-artifacts") as other:
        new_id = other.import_bundle(bundle)
        assert _portable(other, new_id) == _portable(store, rid)
        # the whole lineage came along, so the version numbers and parents are the same
        assert [(v.number, v.parent, v.message) for v in other.list_versions("template", "sst2")] == \
               [(1, None, "first"), (2, 1, "second"), (3, 1, "third")]
        assert other.import_bundle(bundle) == new_id  # importing twice changes nothing
        again = other.export_run(new_id, tmp_path / "again.zip")
        m1 = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
        m2 = json.loads(zipfile.ZipFile(again).read("manifest.json"))
        assert m1["files"] == m2["files"] and m1["run"] == m2["run"]


def test_parent_link_is_restored_when_the_parent_is_imported_first(store, tmp_path):
    parent = store.create_run({}, method="soft")
    child = store.create_run({}, method="soft", parent_run_id=parent)
    for rid in (parent, child):  # only a finished run is exported
        store.set_status(rid, "cancelled")
    pz, cz = store.export_run(parent, tmp_path / "p.zip"), store.export_run(child, tmp_path / "c.zip")
    with open_store(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "oa") as other:
        new_parent = other.import_bundle(pz)
        assert other.get_run(other.import_bundle(cz)).parent_run_id == new_parent
    with open_store(f"sqlite:///{tmp_path / 'o2.db'}", tmp_path / "oa") as other:  # child first
        new_child = other.import_bundle(cz)
        assert other.get_run(new_child).parent_run_id is None
        assert other.get_run(new_child).parent_uid == store.get_run(parent).uid
        new_parent = other.import_bundle(pz)
        assert other.get_run(new_child).parent_run_id == new_parent


def _rewrite(src: Path, dst: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename == name else zin.read(item.filename))


def test_corrupt_bundles_are_refused_before_anything_is_written(store, tmp_path):
    rid = _make_run(store)
    good = store.export_run(rid, tmp_path / "run.zip")
    blob = next(n for n in zipfile.ZipFile(good).namelist() if n.startswith("blobs/"))
    cases = {"metrics.jsonl": b'{"key": "loss"}\n', blob: b"tampered", "config.json": b"{}"}
    with open_store(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "oa") as other:
        for name, data in cases.items():
            bad = tmp_path / "bad.zip"
            _rewrite(good, bad, name, data)
            with pytest.raises(IntegrityError, match="corrupt"):
                other.import_bundle(bad)
        assert other.list_runs() == [] and other.list_names("template") == []
        truncated = tmp_path / "trunc.zip"
        truncated.write_bytes(good.read_bytes()[:200])
        with pytest.raises(IntegrityError, match="not a valid zip file"):
            other.import_bundle(truncated)
        plain = tmp_path / "plain.zip"
        with zipfile.ZipFile(plain, "w") as zf:
            zf.writestr("hello.txt", "hi")
        with pytest.raises(InvalidInput, match="has no manifest.json"):
            other.import_bundle(plain)
        with pytest.raises(NotFound, match="does not exist"):
            other.import_bundle(tmp_path / "missing.zip")


def test_export_refuses_a_corrupt_artifact(store, tmp_path):
    rid = store.create_run({}, method="m")
    art = store.attach_artifact(rid, "weights", "w", b"good")
    store.set_status(rid, "cancelled")
    store.artifacts.path_for(art.sha256).write_bytes(b"bad!")
    with pytest.raises(IntegrityError):
        store.export_run(rid, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    assert list(tmp_path.glob("*.partial")) == [], "a failed export left its temp file"


def test_two_concurrent_exports_of_one_run_to_one_path_both_succeed(store, tmp_path):
    import threading

    rid = _make_run(store)
    out = tmp_path / "run.zip"
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def export() -> None:
        start.wait()
        try:
            for _ in range(5):
                store.export_run(rid, out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.zip")] == []  # no temp left
    with open_store(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other-artifacts") as other:
        assert _portable(other, other.import_bundle(out)) == _portable(store, rid)
