"""Export a run as one self-contained zip, and import it into any other database.

Layout: ``manifest.json`` (format, the run record, and the sha256 and size of every other file),
``config.json``, ``template.json`` / ``verbalizer.json`` (the used version and its whole lineage up to it,
so an empty database replays the same version numbers), ``dataset.json``, ``metrics.jsonl``,
``predictions.jsonl``, ``artifacts.json`` and ``blobs/<sha256>``. Import verifies every file before it
writes anything, keeps the run's ``uid`` (importing the same bundle twice returns the same run), and
never trusts a path from the zip (blobs are addressed by their verified hash only).

A bundle is untrusted input (an upload to a shared studio): every file's shape is checked
(``bundle_schema``), artifact names must be safe relative paths, each entry's declared size must match
the manifest and stay under the limits below before anything is decompressed, blobs are streamed with a
hard cap and kept only when their hash matches, and every failure is one StorageError naming the bundle.
The zip's central directory is sized from its end record before ``zipfile`` parses it (``bundle_zip``),
an entry the manifest does not list is refused, and nothing reaches the artifact store before every
metadata file has been checked (a refused bundle leaves no blob behind).

Only a finished run travels: export refuses a queued or running one (its bundle would be a job for
whoever imports it), and a bundle that still says queued or running (an old or hand-made one) is
imported as failed, with a note and without the host, pid and heartbeat of the machine it ran on, so no
job runner here claims it or mistakes it for one of its own.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DataError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from . import metrics as metrics_repo
from . import runs as runs_repo
from . import snapshots as snapshots_repo
from . import bundle_schema as schema
from . import projects as projects_repo
from . import versions as versions_repo
from .bundle_zip import check_directory
from .errors import IntegrityError, InvalidInput, InvalidTransition, NotFound, StorageError
from .models import Artifact, Entity, Run, StatusEvent, Version
from .paths import check_not_store_file
from .types import TERMINAL_STATUSES

FORMAT = "prompt-studio-run-bundle"
FORMAT_VERSION = 1
# Limits on what an imported bundle may make us decompress (module constants, so tests can lower them).
MAX_METADATA_BYTES = 64 << 20   # each json / jsonl file, held in memory while it is checked
MAX_BUNDLE_BYTES = 256 << 30    # everything together, blobs included
MAX_RATIO = 200                 # uncompressed / compressed, for entries over RATIO_FROM_BYTES
RATIO_FROM_BYTES = 1 << 20      # (deflate reaches ~1000:1 on zeros; real JSON stays far below 200:1)
MAX_ZIP_ENTRIES = 1 + schema.MAX_FILES   # manifest.json and the files it may list
MAX_DIRECTORY_BYTES = 256 * MAX_ZIP_ENTRIES   # a bundle's entry takes ~120 bytes there (zip64: ~150)
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


def _check_target(store: Any, out_zip: Path, overwrite: bool) -> None:
    """Refuse, before any work, a target that is one of the store's own files (the database, its
    companions, the artifact folder: the export would destroy what it reads), a folder (say which name
    to give), and, unless ``overwrite``, an existing file (a bundle is a deliverable: replacing someone's
    file because of a typo must not be silent)."""
    check_not_store_file(out_zip, store.url, store.artifacts.root, "bundle")
    if out_zip.is_dir():
        raise InvalidInput(f"bundle: {out_zip} is a folder; give the bundle's file name, such as "
                           f"{out_zip / 'run.zip'}")
    if not overwrite:
        _refuse_existing(out_zip)


def _place(tmp: Path, out_zip: Path, overwrite: bool) -> None:
    """Move the finished bundle to its name. Without ``overwrite`` a hard link makes the name, which fails
    if the name appeared meanwhile (no window between a check and a rename); a file system without hard
    links falls back to check-then-rename."""
    if overwrite:
        os.replace(tmp, out_zip)
        return
    try:
        os.link(tmp, out_zip)
    except FileExistsError:
        raise _exists(out_zip) from None
    except OSError:  # no hard links here (some network and FUSE file systems)
        _refuse_existing(out_zip)
        os.replace(tmp, out_zip)
        return
    tmp.unlink()


def _refuse_existing(out_zip: Path) -> None:
    if out_zip.exists() or out_zip.is_symlink():
        raise _exists(out_zip)


def _exists(out_zip: Path) -> InvalidInput:
    return InvalidInput(f"bundle: {out_zip} already exists; refusing to replace it (python -m storage "
                        f"export: --force replaces it)")


def export_run(store: Any, run_id: int, out_zip: Path, overwrite: bool = True) -> Path:
    """Write run ``run_id`` to ``out_zip`` (atomically: a temp file renamed into place).

    Refused for a run that has not finished: its bundle would carry a half-written record, and a job
    for whichever studio imported it (see the module's docstring). Refused too, before any work, when
    ``out_zip`` is one of the store's own files or a folder, or exists and ``overwrite`` is false (the
    CLI's default; the studio writes fresh names in its own exports folder and keeps ``overwrite``)."""
    out_zip = Path(out_zip)
    _check_target(store, out_zip, overwrite)
    files: dict[str, bytes] = {}
    with store.read() as s:
        run = runs_repo.get_row(s, run_id)
        if run.status not in TERMINAL_STATUSES:
            raise InvalidTransition(f"run {run.id} is {run.status}; only a finished run (succeeded, failed or "
                                    f"cancelled) can be exported: wait for it to finish, or cancel it")
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
    # A unique temp file beside the target: two exports of one run never write one inode or rename each
    # other's file away, and the bundle appears under its name whole or not at all.
    fd, tmp_name = tempfile.mkstemp(dir=out_zip.parent, prefix=f".{out_zip.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
            for sha in sorted({a["sha256"] for a in arts}):
                path = store.artifact_path(sha)  # verified: never export a corrupt file
                zf.write(path, f"blobs/{sha}", compress_type=zipfile.ZIP_STORED)
                manifest["files"][f"blobs/{sha}"] = {"sha256": sha, "size": path.stat().st_size}
            zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, indent=1))
            zf.close()   # writes the central directory, so the fsync below covers the whole zip
            os.fchmod(raw.fileno(), 0o644)   # mkstemp makes 0600; a bundle is meant to be shared
            raw.flush()
            os.fsync(raw.fileno())
        _place(tmp, out_zip, overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed export (corrupt blob, full disk) leaves nothing behind
        raise
    return out_zip


def _entry(zf: zipfile.ZipFile, name: str, size: int | None) -> zipfile.ZipInfo:
    """The zip entry for ``name``, after checking what it declares against the limits and ``size``
    (the manifest's), so that nothing is decompressed that could be larger than expected."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise IntegrityError(f"{name} is listed in the manifest but missing") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
        raise InvalidInput(f"{name}: compression method {info.compress_type} (or encryption) is not "
                           f"supported; bundles use stored or deflate entries")
    if size is not None and info.file_size != size:
        raise IntegrityError(f"{name}: the zip entry declares {info.file_size} bytes, the manifest "
                             f"{size} (the bundle is corrupt)")
    if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise InvalidInput(f"{name}: compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                           f"is over the limit of {MAX_RATIO}:1 (a zip bomb?)")
    return info


def _read_capped(zf: zipfile.ZipFile, name: str, size: int | None) -> bytes:
    """A metadata file's bytes, never more than ``MAX_METADATA_BYTES`` in memory."""
    info = _entry(zf, name, size)
    if info.file_size > MAX_METADATA_BYTES:
        raise InvalidInput(f"{name}: {info.file_size} bytes is over the limit of {MAX_METADATA_BYTES} "
                           f"bytes for a metadata file")
    with zf.open(info) as f:
        raw = f.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{name}: more than {MAX_METADATA_BYTES} bytes")
    return raw


def _parse(name: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidInput(f"{name}: JSON nested too deeply") from None
    except ValueError as exc:  # also a UnicodeDecodeError
        raise IntegrityError(f"{name} is not valid JSON ({exc})") from None


def _parse_lines(name: str, raw: bytes) -> list[Any]:
    try:
        lines = raw.decode().splitlines()
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"{name} is not valid UTF-8 ({exc})") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            out.append((i, json.loads(line)))
        except RecursionError:
            raise InvalidInput(f"{name} line {i}: JSON nested too deeply") from None
        except ValueError as exc:
            raise IntegrityError(f"{name} line {i}: not valid JSON ({exc})") from None
    return out


def _read_verified(zf: zipfile.ZipFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked manifest and every metadata file, parsed and checked (see bundle_schema)."""
    if "manifest.json" not in zf.namelist():
        raise InvalidInput("not a run bundle: it has no manifest.json")
    manifest = schema.check_manifest(_parse("manifest.json", _read_capped(zf, "manifest.json", None)),
                                     FORMAT, FORMAT_VERSION)
    files = manifest["files"]
    names, seen = zf.namelist(), set()
    for name in names:  # of two entries with one name, zipfile reads the last, another tool the first
        if name in seen:
            raise InvalidInput(f"the zip has two entries named {name[:200]!r}")
        seen.add(name)
    unlisted = sorted(set(names) - set(files) - {"manifest.json"})
    if unlisted:
        raise InvalidInput(f"the zip has an entry the manifest does not list: {unlisted[0][:200]!r}"
                           + (f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""))
    total = sum(meta["size"] for meta in files.values())
    if total > MAX_BUNDLE_BYTES:
        raise InvalidInput(f"the bundle expands to {total} bytes, over the limit of {MAX_BUNDLE_BYTES} bytes")
    for name, meta in files.items():  # every declared size checked before any blob is extracted
        _entry(zf, name, meta["size"])
    raw = {}
    for name, meta in files.items():
        if name.startswith("blobs/"):
            continue  # streamed and verified by the artifact store on import
        raw[name] = _read_capped(zf, name, meta["size"])
        if hashlib.sha256(raw[name]).hexdigest() != meta["sha256"]:
            raise IntegrityError(f"{name} does not match its sha256 in the manifest (the bundle is corrupt)")
    blobs = {name[6:]: meta["size"] for name, meta in files.items() if name.startswith("blobs/")}
    docs: dict[str, Any] = {
        "config.json": schema.check_config(_parse("config.json", raw["config.json"])),
        "artifacts.json": schema.check_artifacts(_parse("artifacts.json", raw["artifacts.json"]), blobs),
        "metrics.jsonl": [schema.check_metric(e, f"metrics.jsonl line {i}: ")
                          for i, e in _parse_lines("metrics.jsonl", raw["metrics.jsonl"])]}
    seen: set[int] = set()
    docs["predictions.jsonl"] = [schema.check_prediction(p, f"predictions.jsonl line {i}: ", seen)
                                 for i, p in _parse_lines("predictions.jsonl", raw["predictions.jsonl"])]
    for kind in ("template", "verbalizer"):
        if f"{kind}.json" in raw:
            docs[f"{kind}.json"] = schema.check_lineage(_parse(f"{kind}.json", raw[f"{kind}.json"]), kind)
    if "dataset.json" in raw:
        docs["dataset.json"] = schema.check_dataset(_parse("dataset.json", raw["dataset.json"]))
    return manifest, docs


def _import_blobs(store: Any, zf: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    for name, meta in manifest["files"].items():
        if not name.startswith("blobs/"):
            continue
        try:
            with zf.open(_entry(zf, name, meta["size"])) as f:
                store.artifacts.put(f, expected_sha256=meta["sha256"], max_size=meta["size"])
        except IntegrityError as exc:
            raise IntegrityError(f"{name}: {exc.message} (the bundle is corrupt)") from None


def _replay_lineage(s: Any, lineage: dict[str, Any] | None, project: str | None) -> int | None:
    if lineage is None:
        return None
    numbers: dict[int, int] = {}  # bundle number -> number in this database
    used = None
    for v in lineage["versions"]:
        parent = numbers.get(v["parent"]) if v.get("parent") is not None else None
        info = versions_repo.save(s, lineage["kind"], lineage["name"], v["content"], v["message"],
                                  v["author"], parent=parent, created_at=v["created_at"], project=project)
        if info.sha256 != v["sha256"]:
            raise IntegrityError(f"{lineage['kind']} {lineage['name']!r} v{v['number']}: content does "
                                 f"not match its sha256 in the bundle")
        numbers[v["number"]] = info.number
        if v["number"] == lineage["used"]:
            used = info.id
    return used


def import_bundle(store: Any, zip_path: Path) -> int:
    """Import a bundle written by :func:`export_run`; return the run id in this database.

    Every error the bundle can cause is a StorageError whose message starts with the bundle's path.
    """
    if not zip_path.is_file():
        raise NotFound(f"bundle {zip_path} " + ("is a folder; give the bundle's .zip file" if zip_path.is_dir()
                                                 else "does not exist"))
    try:
        return _import(store, zip_path)
    except StorageError as exc:
        raise type(exc)(f"{zip_path}: {exc.message}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise IntegrityError(f"{zip_path} cannot be read ({exc}); it is not a valid, intact "
                             f"zip file (truncated or corrupt?)") from None
    except (SAIntegrityError, DataError) as exc:  # a shape the schema let through but the database not
        raise InvalidInput(f"{zip_path}: the database refused the bundle's content ({exc.orig})") from None


def _settled(rec: dict[str, Any]) -> dict[str, Any]:
    """The run record to write: a queued or running one becomes failed here (see the module docstring)."""
    if rec["status"] in TERMINAL_STATUSES:
        return rec
    note = f"imported while {rec['status']} elsewhere"
    now = time.time()
    return dict(rec, status="failed", error=rec["error"] or note, host=None, pid=None, worker=None,
                heartbeat_at=None, cancel_requested=False, finished_at=now,
                history=rec["history"] + [{"status": "failed", "at": now, "host": None, "pid": None,
                                           "note": note}])


def _import(store: Any, zip_path: Path) -> int:
    check_directory(zip_path, MAX_ZIP_ENTRIES, MAX_DIRECTORY_BYTES)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise IntegrityError("not a valid zip file (truncated or corrupt?)") from None
    with zf:
        manifest, docs = _read_verified(zf)
        rec = _settled(manifest["run"])
        with store.read() as s:
            existing = s.scalar(select(Run.id).where(Run.uid == rec["uid"]))
        if existing is not None:
            return existing
        _import_blobs(store, zf, manifest)

    with store.write() as s:
        existing = s.scalar(select(Run.id).where(Run.uid == rec["uid"]))
        if existing is not None:  # a concurrent import of the same bundle won
            return existing
        # the run and its versions go to the project it was exported from (checked: the name is the bundle's)
        project = projects_repo.check_name(rec["project"]) if rec["project"] is not None else None
        tv = _replay_lineage(s, docs.get("template.json"), project)
        vv = _replay_lineage(s, docs.get("verbalizer.json"), project)
        snap = docs.get("dataset.json")
        snap_id = snapshots_repo.save(s, snap["source"], snap["columns"], snap["fingerprint"],
                                      snap["row_counts"], snap["labels"],
                                      snap["created_at"]) if snap else None
        parent = (s.scalar(select(Run.id).where(Run.uid == rec["parent_uid"]))
                  if rec["parent_uid"] else None)
        run_id = runs_repo.create(s, docs["config.json"], method=rec["method"], seed=rec["seed"],
                                  model_id=rec["model_id"], model_revision=rec["model_revision"],
                                  template_version_id=tv, verbalizer_version_id=vv,
                                  dataset_snapshot_id=snap_id, parent_run_id=parent,
                                  tags=rec["tags"], project=project, uid=rec["uid"],
                                  parent_uid=rec["parent_uid"], created_at=rec["created_at"])
        run = runs_repo.get_row(s, run_id)
        for k in _RUN_FIELDS:
            setattr(run, k, rec[k])
        # children imported before their parent get linked now
        s.execute(update(Run).where(Run.parent_uid == rec["uid"], Run.parent_run_id.is_(None))
                  .values(parent_run_id=run_id))
        s.execute(delete(StatusEvent).where(StatusEvent.run_id == run_id))
        s.add_all(StatusEvent(run_id=run_id, **h) for h in rec["history"])
        metrics_repo.append(s, [dict(m, run_id=run_id) for m in docs["metrics.jsonl"]])
        metrics_repo.add_predictions(s, run_id, docs["predictions.jsonl"])
        for a in docs["artifacts.json"]:
            s.add(Artifact(run_id=run_id, kind=a["kind"], name=a["name"], sha256=a["sha256"],
                           size=a["size"], path=store.artifacts.relpath(a["sha256"]),
                           created_at=a["created_at"]))
        return run_id
