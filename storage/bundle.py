"""Export a run as one self-contained zip, and import it into any other database.

Layout: ``manifest.json`` (format, the run record, and the sha256 and size of every other file),
``config.json``, ``template.json`` / ``verbalizer.json`` (the used version and its whole lineage up to it,
so an empty database replays the same version numbers), ``dataset.json``, ``metrics.jsonl``,
``predictions.jsonl``, ``artifacts.json`` and ``blobs/<sha256>``. Import verifies every file before it
writes anything, keeps the run's ``uid`` (importing the same bundle twice returns the same run), and
never trusts a path from the zip (blobs are addressed by their verified hash only).
"""
from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from . import metrics as metrics_repo
from . import runs as runs_repo
from . import snapshots as snapshots_repo
from . import versions as versions_repo
from .errors import IntegrityError, InvalidInput, NotFound
from .models import Artifact, Entity, Run, StatusEvent, Version

FORMAT = "prompt-studio-run-bundle"
FORMAT_VERSION = 1
_RUN_FIELDS = ("uid", "parent_uid", "status", "method", "seed", "model_id", "model_revision", "host", "pid", "worker",
               "error", "cancel_requested", "created_at", "started_at", "finished_at", "heartbeat_at")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


def _lineage(s: Any, version_id: int | None) -> dict[str, Any] | None:
    if version_id is None:
        return None
    used = s.get(Version, version_id)
    ent = s.get(Entity, used.entity_id)
    rows = s.scalars(select(Version).where(Version.entity_id == ent.id,
                                           Version.number <= used.number).order_by(Version.number))
    return {"kind": ent.kind, "name": ent.name, "used": used.number,
            "versions": [{k: v for k, v in versions_repo.to_info(s, r, ent).to_dict().items()
                          if k not in ("id", "kind", "name", "aliases")} for r in rows]}


def export_run(store: Any, run_id: int, out_zip: Path) -> Path:
    """Write run ``run_id`` to ``out_zip`` (atomically: a temp file renamed into place)."""
    files: dict[str, bytes] = {}
    with store.read() as s:
        run = runs_repo.get_row(s, run_id)
        info = runs_repo.info(s, run)
        record = {k: getattr(run, k) for k in _RUN_FIELDS}
        record.update(project=info.project, tags=list(info.tags),
                      history=[h.to_dict() for h in info.history])
        files["config.json"] = json.dumps(run.config, sort_keys=True, indent=1).encode()
        for kind, vid in (("template", run.template_version_id),
                          ("verbalizer", run.verbalizer_version_id)):
            lineage = _lineage(s, vid)
            if lineage is not None:
                files[f"{kind}.json"] = json.dumps(lineage, sort_keys=True, indent=1).encode()
        if run.dataset_snapshot_id is not None:
            snap = snapshots_repo.get(s, run.dataset_snapshot_id).to_dict()
            snap.pop("id")
            files["dataset.json"] = json.dumps(snap, sort_keys=True, indent=1).encode()
        files["metrics.jsonl"] = _jsonl([{k: m[k] for k in ("key", "step", "value", "wall_time")}
                                         for m in metrics_repo.fetch(s, run_id)])
        files["predictions.jsonl"] = _jsonl(metrics_repo.get_predictions(s, run_id))
        arts = [{k: a.to_dict()[k] for k in ("kind", "name", "sha256", "size", "created_at")}
                for a in info.artifacts]
        files["artifacts.json"] = json.dumps(arts, sort_keys=True, indent=1).encode()
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "exported_at": time.time(), "run": record,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in files.items()}}
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(out_zip.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for sha in sorted({a["sha256"] for a in arts}):
            path = store.artifact_path(sha)  # verified: never export a corrupt file
            zf.write(path, f"blobs/{sha}", compress_type=zipfile.ZIP_STORED)
            manifest["files"][f"blobs/{sha}"] = {"sha256": sha, "size": path.stat().st_size}
        zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, indent=1))
    tmp.replace(out_zip)
    return out_zip


def _read_verified(zf: zipfile.ZipFile, zip_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise InvalidInput(f"{zip_path} is not a run bundle: it has no manifest.json") from None
    except ValueError as exc:
        raise IntegrityError(f"{zip_path}: manifest.json is not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{zip_path} is not a run bundle (format {manifest.get('format')!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise InvalidInput(f"{zip_path} has bundle format {manifest['format_version']}; this version "
                           f"of Prompt Studio reads up to {FORMAT_VERSION}")
    data: dict[str, bytes] = {}
    for name, meta in manifest["files"].items():
        if name.startswith("blobs/"):
            continue  # streamed and verified by the artifact store on import
        try:
            raw = zf.read(name)
        except KeyError:
            raise IntegrityError(f"{zip_path}: {name} is listed in the manifest but missing") from None
        if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
            raise IntegrityError(f"{zip_path}: {name} does not match its sha256 in the manifest "
                                 f"(the bundle is corrupt)")
        data[name] = raw
    for a in json.loads(data.get("artifacts.json", b"[]")):
        if f"blobs/{a['sha256']}" not in manifest["files"]:
            raise IntegrityError(f"{zip_path}: artifact {a['name']!r} has no blob in the bundle")
    return manifest, data


def _import_blobs(store: Any, zf: zipfile.ZipFile, zip_path: Path, manifest: dict[str, Any]) -> None:
    for name, meta in manifest["files"].items():
        if not name.startswith("blobs/"):
            continue
        try:
            with zf.open(name) as f:
                sha, _ = store.artifacts.put(f)
        except KeyError:
            raise IntegrityError(f"{zip_path}: {name} is listed in the manifest but missing") from None
        if sha != meta["sha256"]:
            raise IntegrityError(f"{zip_path}: {name} hashes to {sha}, not {meta['sha256']} "
                                 f"(the bundle is corrupt)")


def _replay_lineage(s: Any, lineage: dict[str, Any] | None) -> int | None:
    if lineage is None:
        return None
    numbers: dict[int, int] = {}  # bundle number -> number in this database
    used = None
    for v in lineage["versions"]:
        parent = numbers.get(v["parent"]) if v.get("parent") is not None else None
        info = versions_repo.save(s, lineage["kind"], lineage["name"], v["content"], v["message"],
                                  v["author"], parent=parent, created_at=v["created_at"])
        if info.sha256 != v["sha256"]:
            raise IntegrityError(f"{lineage['kind']} {lineage['name']!r} v{v['number']}: content does "
                                 f"not match its sha256 in the bundle")
        numbers[v["number"]] = info.number
        if v["number"] == lineage["used"]:
            used = info.id
    return used


def import_bundle(store: Any, zip_path: Path) -> int:
    """Import a bundle written by :func:`export_run`; return the run id in this database."""
    if not zip_path.is_file():
        raise NotFound(f"bundle {zip_path} does not exist")
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise IntegrityError(f"{zip_path} is not a valid zip file (truncated or corrupt?)") from None
    with zf:
        manifest, data = _read_verified(zf, zip_path)
        rec = manifest["run"]
        with store.read() as s:
            existing = s.scalar(select(Run.id).where(Run.uid == rec["uid"]))
        if existing is not None:
            return existing
        _import_blobs(store, zf, zip_path, manifest)

    def load(name: str) -> Any:
        return json.loads(data[name]) if name in data else None

    with store.write() as s:
        existing = s.scalar(select(Run.id).where(Run.uid == rec["uid"]))
        if existing is not None:  # a concurrent import of the same bundle won
            return existing
        tv = _replay_lineage(s, load("template.json"))
        vv = _replay_lineage(s, load("verbalizer.json"))
        snap = load("dataset.json")
        snap_id = snapshots_repo.save(s, snap["source"], snap["columns"], snap["fingerprint"],
                                      snap["row_counts"], snap["labels"],
                                      snap["created_at"]) if snap else None
        parent = (s.scalar(select(Run.id).where(Run.uid == rec["parent_uid"]))
                  if rec.get("parent_uid") else None)
        run_id = runs_repo.create(s, load("config.json"), method=rec["method"], seed=rec["seed"],
                                  model_id=rec["model_id"], model_revision=rec["model_revision"],
                                  template_version_id=tv, verbalizer_version_id=vv,
                                  dataset_snapshot_id=snap_id, parent_run_id=parent,
                                  tags=rec["tags"], project=rec["project"], uid=rec["uid"],
                                  parent_uid=rec.get("parent_uid"), created_at=rec["created_at"])
        run = runs_repo.get_row(s, run_id)
        for k in _RUN_FIELDS:
            setattr(run, k, rec[k])
        # children imported before their parent get linked now
        s.execute(update(Run).where(Run.parent_uid == rec["uid"], Run.parent_run_id.is_(None))
                  .values(parent_run_id=run_id))
        s.execute(delete(StatusEvent).where(StatusEvent.run_id == run_id))
        s.add_all(StatusEvent(run_id=run_id, **h) for h in rec["history"])
        metrics_repo.append(s, [dict(m, run_id=run_id) for m in _lines(data["metrics.jsonl"])])
        metrics_repo.add_predictions(s, run_id, _lines(data["predictions.jsonl"]))
        for a in load("artifacts.json") or []:
            s.add(Artifact(run_id=run_id, kind=a["kind"], name=a["name"], sha256=a["sha256"],
                           size=a["size"], path=store.artifacts.relpath(a["sha256"]),
                           created_at=a["created_at"]))
        return run_id


def _lines(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line]
