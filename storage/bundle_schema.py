"""The shape of every file in a run bundle, checked before anything of it reaches the database.

Why: a bundle is input from anyone (an upload to a shared studio, a file someone mailed), and its hashes
prove nothing, since whoever made it computed them. Valid JSON of the wrong shape must be refused with
one message naming the file and the field (``manifest.json: files["config.json"].sha256: expected a
string``), never reach the database as a traceback. Each ``check_*`` returns the document with optional
fields filled in, so the importer reads every field without guessing.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from . import projects as projects_repo
from . import versions as versions_repo
from .errors import IntegrityError, InvalidInput
from .paths import check_artifact_name
from .types import RUN_STATUSES

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
UID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,35}$")   # what uuid4 strings look like; it names files
METADATA = ("config.json", "template.json", "verbalizer.json", "dataset.json", "metrics.jsonl",
            "predictions.jsonl", "artifacts.json")
REQUIRED = ("config.json", "metrics.jsonl", "predictions.jsonl", "artifacts.json")
MAX_ARTIFACTS = 10_000   # a run's artifacts (adapter files, checkpoints, reports): far fewer in practice
MAX_FILES = len(METADATA) + MAX_ARTIFACTS   # the manifest's files: each artifact has at most one blob
INT32 = 2**31
INT64 = 2**63


def _child(where: str, key: str | int, field: bool = True) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    if not field:
        return f"{where}[{json.dumps(key)}]"
    return f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"


def _bad(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where.rstrip(': ')}: {problem}")


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _bad(where, f"expected an object, not {_type(v)}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _bad(where, f"expected a list, not {_type(v)}")
    return v


def _type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _get(d: dict[str, Any], key: str, where: str, optional: bool) -> tuple[Any, str]:
    at = _child(where, key)
    if key not in d:
        if optional:
            return None, at
        raise _bad(at, "missing")
    return d[key], at


def text(d: dict[str, Any], key: str, where: str, *, optional: bool = False, max_len: int | None = None,
         nonempty: bool = False) -> str | None:
    """A string field (``None`` allowed when ``optional``): no NUL, valid UTF-8, at most ``max_len``."""
    v, at = _get(d, key, where, optional)
    if v is None and optional:
        return None
    return _as_text(v, at, max_len=max_len, nonempty=nonempty)


def _as_text(v: Any, at: str, *, max_len: int | None = None, nonempty: bool = False) -> str:
    if not isinstance(v, str):
        raise _bad(at, f"expected a string, not {_type(v)}")
    _check_str(v, at)
    if nonempty and not v:
        raise _bad(at, "expected a non-empty string")
    if max_len is not None and len(v) > max_len:
        raise _bad(at, f"longer than {max_len} characters")
    return v


def _check_str(v: str, at: str) -> None:
    if "\x00" in v:
        raise _bad(at, "contains a NUL character")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(at, "is not valid Unicode (a lone surrogate)") from None


def integer(d: dict[str, Any], key: str, where: str, *, optional: bool = False, lo: int = -INT32,
            hi: int = INT32) -> int | None:
    v, at = _get(d, key, where, optional)
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(at, f"expected an integer, not {_type(v)}")
    if not lo <= v < hi:
        raise _bad(at, f"expected an integer from {lo} to {hi - 1}, not {v}")
    return v


def number(d: dict[str, Any], key: str, where: str, *, optional: bool = False,
           finite: bool = True) -> float | None:
    v, at = _get(d, key, where, optional)
    if v is None and optional:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _bad(at, f"expected a number, not {_type(v)}")
    if isinstance(v, int) and not -INT64 <= v < INT64 or finite and not math.isfinite(v):
        raise _bad(at, f"expected a finite number, not {v}")
    return float(v)


def sha(d: dict[str, Any], key: str, where: str) -> str:
    v = text(d, key, where)
    if not SHA_RE.match(v):
        raise _bad(_child(where, key), f"expected a sha256 (64 lowercase hex characters), not {v[:80]!r}")
    return v


def json_text(v: Any, where: str) -> Any:
    """Any JSON value whose strings (keys too) the database can store; walked without recursion."""
    stack = [(v, where)]
    while stack:
        x, at = stack.pop()
        if isinstance(x, str):
            _check_str(x, at)
        elif isinstance(x, dict):
            for k, y in x.items():
                _check_str(k, at)
                stack.append((y, _child(at, k, field=False)))
        elif isinstance(x, list):
            stack.extend((y, _child(at, i)) for i, y in enumerate(x))
        elif isinstance(x, int) and not isinstance(x, bool) and not -INT64 <= x < INT64:
            raise _bad(at, f"integer {x} is out of range")
    return v


def uid(d: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    v = text(d, key, where, optional=optional)
    if v is not None and not UID_RE.match(v):
        raise _bad(_child(where, key), f"expected a run id (letters, digits, '-', '_'; at most 36), "
                                       f"not {v[:80]!r}")
    return v


# -- the files --------------------------------------------------------------------------------------

def check_manifest(m: Any, fmt: str, fmt_version: int) -> dict[str, Any]:
    where = "manifest.json: "
    _obj(m, where)
    found = m.get("format")
    if found != fmt:
        raise InvalidInput(f"not a run bundle (manifest.json: format is {found!r}, expected {fmt!r})")
    version = integer(m, "format_version", where, lo=1)
    if version > fmt_version:
        raise InvalidInput(f"bundle format {version}; this version of Prompt Studio reads up to {fmt_version}")
    number(m, "exported_at", where, optional=True)
    files = _obj(_get(m, "files", where, False)[0], "manifest.json: files")
    if len(files) > MAX_FILES:
        raise _bad("manifest.json: files", f"{len(files)} files, over the limit of {MAX_FILES} "
                                           f"({MAX_ARTIFACTS} artifacts)")
    for name, meta in files.items():
        at = _child("manifest.json: files", name, field=False)
        if name not in METADATA and not (name.startswith("blobs/") and SHA_RE.match(name[6:])):
            raise InvalidInput(f"{at}: not a file a run bundle has (expected {', '.join(METADATA)} or "
                               f"blobs/<sha256>)")
        _obj(meta, at)
        digest = sha(meta, "sha256", at)
        integer(meta, "size", at, lo=0, hi=INT64)
        if name.startswith("blobs/") and digest != name[6:]:
            raise IntegrityError(f"{at}.sha256 is {digest}, but the blob is named by {name[6:]}")
    for name in REQUIRED:
        if name not in files:
            raise _bad(_child("manifest.json: files", name, field=False), "missing")
    return dict(m, run=check_run(_get(m, "run", where, False)[0], "manifest.json: run"))


def check_run(r: Any, where: str) -> dict[str, Any]:
    _obj(r, where)
    status = text(r, "status", where)
    if status not in RUN_STATUSES:
        raise _bad(_child(where, "status"), f"expected one of {', '.join(RUN_STATUSES)}, not {status[:40]!r}")
    project = text(r, "project", where, optional=True, nonempty=True, max_len=200)
    if project is not None:  # checked here, not when the run is written: by then its blobs are stored
        try:
            projects_repo.check_name(project)
        except InvalidInput as exc:
            raise _bad(_child(where, "project"), exc.message) from None
    out = {"uid": uid(r, "uid", where), "parent_uid": uid(r, "parent_uid", where, optional=True),
           "status": status, "method": text(r, "method", where, nonempty=True, max_len=100),
           "seed": integer(r, "seed", where, optional=True), "pid": integer(r, "pid", where, optional=True),
           "cancel_requested": bool(_bool(r, "cancel_requested", where)),
           "created_at": number(r, "created_at", where), "project": project}
    for k in ("model_id", "model_revision", "error"):
        out[k] = text(r, k, where, optional=True)
    for k in ("host", "worker"):
        out[k] = text(r, k, where, optional=True, max_len=255)
    for k in ("started_at", "finished_at", "heartbeat_at"):
        out[k] = number(r, k, where, optional=True)
    tags = _list(_get(r, "tags", where, True)[0] or [], _child(where, "tags"))
    out["tags"] = [_as_text(t, _child(_child(where, "tags"), i), max_len=100) for i, t in enumerate(tags)]
    history = _list(_get(r, "history", where, True)[0] or [], _child(where, "history"))
    out["history"] = [_status_event(h, _child(_child(where, "history"), i)) for i, h in enumerate(history)]
    return out


def _bool(d: dict[str, Any], key: str, where: str) -> bool:
    v, at = _get(d, key, where, True)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(at, f"expected true or false, not {_type(v)}")
    return v


def _status_event(h: Any, where: str) -> dict[str, Any]:
    _obj(h, where)
    extra = sorted(set(h) - {"status", "at", "host", "pid", "note"})
    if extra:
        raise _bad(_child(where, extra[0]), "unknown field")
    return {"status": text(h, "status", where, max_len=20), "at": number(h, "at", where),
            "host": text(h, "host", where, optional=True, max_len=255),
            "pid": integer(h, "pid", where, optional=True), "note": text(h, "note", where, optional=True)}


def check_artifacts(a: Any, blobs: dict[str, int]) -> list[dict[str, Any]]:
    """``artifacts.json``; ``blobs`` maps each blob sha in the manifest to its size."""
    out, seen = [], set()
    if len(_list(a, "artifacts.json")) > MAX_ARTIFACTS:
        raise _bad("artifacts.json", f"{len(a)} artifacts, over the limit of {MAX_ARTIFACTS}")
    for i, e in enumerate(a):
        where = _child("artifacts.json", i)
        _obj(e, where)
        name = check_artifact_name(_get(e, "name", where, False)[0], _child(where, "name"))
        row = {"kind": text(e, "kind", where, nonempty=True, max_len=100), "name": name,
               "sha256": sha(e, "sha256", where), "size": integer(e, "size", where, lo=0, hi=INT64),
               "created_at": number(e, "created_at", where)}
        if (row["kind"], name) in seen:
            raise _bad(where, f"a second {row['kind']} artifact named {name!r}")
        seen.add((row["kind"], name))
        if row["sha256"] not in blobs:
            raise IntegrityError(f"artifact {name!r} has no blob in the bundle")
        if blobs[row["sha256"]] != row["size"]:
            raise IntegrityError(f"{where}.size is {row['size']}, but its blob has {blobs[row['sha256']]} bytes")
        out.append(row)
    return out


def check_lineage(doc: Any, kind: str) -> dict[str, Any]:
    """``template.json`` / ``verbalizer.json``: the used version and every version before it."""
    where = f"{kind}.json: "
    _obj(doc, where)
    if doc.get("kind") != kind:
        raise _bad(_child(where, "kind"), f"expected {kind!r}")
    out = {"kind": kind, "name": text(doc, "name", where, nonempty=True, max_len=200),
           "used": integer(doc, "used", where), "versions": []}
    if not out["name"].strip():
        raise _bad(_child(where, "name"), "expected a name, not only spaces")
    for i, v in enumerate(_list(_get(doc, "versions", where, False)[0], f"{kind}.json: versions")):
        at = _child(f"{kind}.json: versions", i)
        _obj(v, at)
        out["versions"].append({
            "number": integer(v, "number", at), "parent": integer(v, "parent", at, optional=True),
            "content": text(v, "content", at), "message": text(v, "message", at, optional=True) or "",
            "author": text(v, "author", at, optional=True, max_len=200) or "",
            "created_at": number(v, "created_at", at), "sha256": sha(v, "sha256", at)})
        if versions_repo.content_sha256(out["versions"][-1]["content"]) != out["versions"][-1]["sha256"]:
            raise IntegrityError(f"{at}: content does not match its sha256 (the bundle is corrupt)")
    if out["used"] not in {v["number"] for v in out["versions"]}:
        raise _bad(_child(where, "used"), f"version {out['used']} is not among the versions")
    return out


def check_dataset(doc: Any) -> dict[str, Any]:
    where = "dataset.json: "
    _obj(doc, where)
    out = {"source": text(doc, "source", where), "fingerprint": text(doc, "fingerprint", where, nonempty=True,
                                                                     max_len=200),
           "created_at": number(doc, "created_at", where)}
    for k, check in (("columns", _obj), ("row_counts", _obj), ("labels", _list)):
        out[k] = json_text(check(_get(doc, k, where, False)[0], _child(where, k)), _child(where, k))
    return out


def check_config(doc: Any) -> dict[str, Any]:
    return json_text(_obj(doc, "config.json: "), "config.json")


def check_metric(e: Any, where: str) -> dict[str, Any]:
    _obj(e, where)
    return {"key": text(e, "key", where, nonempty=True, max_len=200), "step": integer(e, "step", where),
            "value": number(e, "value", where, optional=True, finite=False),
            "wall_time": number(e, "wall_time", where)}


def check_prediction(p: Any, where: str, seen: set[int]) -> dict[str, Any]:
    _obj(p, where)
    index = integer(p, "index", where)
    if index in seen:
        raise _bad(_child(where, "index"), f"a second prediction for example {index}")
    seen.add(index)
    probs = p.get("probs")
    if probs is not None and not isinstance(probs, (list, dict)):
        raise _bad(_child(where, "probs"), f"expected a list or an object, not {_type(probs)}")
    return json_text({"index": index, "gold": p.get("gold"), "predicted": p.get("predicted"), "probs": probs},
                     where)
