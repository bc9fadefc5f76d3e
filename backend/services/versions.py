"""Versioned templates and verbalizers: save (validated first), history, diffs and aliases.

Storage keeps versions immutable and content-addressed; this layer makes sure only content that parses is
saved (a version must be usable by a run later) and turns records into plain rows for the studio.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from backend.prompts.template import parse_template
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from storage import CURRENT_VERSION, InvalidInput, VersionInfo

KINDS = ("template", "verbalizer")


def version_row(v: VersionInfo) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "version": v.number, "message": v.message,
            "aliases": list(v.aliases), "sha256": v.sha256[:12], "created_at": v.created_at,
            "parent": v.parent}


def canonical_verbalizer(spec: Any, classes: Sequence[str] | None) -> str:
    """The verbalizer as stored: canonical JSON of its parsed form (so equal content hashes equal)."""
    from backend.prompts.verbalizer import parse_verbalizer

    if isinstance(spec, str):
        spec = parse_label_words(spec)
    return parse_verbalizer(spec, list(classes) if classes else None).canonical_json()


def parse_label_words(text: str) -> Any:
    """The studio's label-word editor text -> a verbalizer spec.

    Accepts JSON (our saved form or ``{"class": ["word", ...]}``) or one line per class:
    ``positive: great, good, wonderful``.
    """
    from backend.errors import VerbalizerError

    stripped = text.strip()
    if not stripped:
        raise VerbalizerError("no label words: write one line per class, e.g. 'positive: great, good'")
    if stripped[0] in "{[":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise VerbalizerError(f"not valid JSON: {exc.msg}", row=exc.lineno) from None
    spec: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cls, sep, words = line.partition(":")
        if not sep or not cls.strip():
            raise VerbalizerError(f"line {lineno} should look like 'class: word, word'", row=lineno)
        items = [w.strip() for w in words.split(",") if w.strip()]
        if not items:
            raise VerbalizerError(f"class {cls.strip()!r} has no label words", row=lineno)
        if cls.strip() in spec:
            raise VerbalizerError(f"class {cls.strip()!r} appears twice", row=lineno)
        spec[cls.strip()] = items
    return spec


def label_words_text(canonical: str) -> str:
    """A stored verbalizer as the editor's text: the friendly ``class: word, word`` lines when they read
    back as exactly the same verbalizer, else its JSON, indented.

    Why the check: the editor saves what it shows, so a lossy form silently changes a saved verbalizer on
    the next save — the line form has no room for settings (``multi_token`` / ``aggregate``), splits a
    word at its commas, drops a class named ``#...`` as a comment, cuts a class name at its first ``:``
    and strips spaces around words. JSON (which ``parse_label_words`` reads) keeps all of it.
    """
    from backend.errors import VerbalizerError
    from backend.prompts.verbalizer import parse_verbalizer

    try:
        data = json.loads(canonical)
    except (ValueError, RecursionError):
        return canonical          # not JSON (never saved by this layer): shown as is, for the user to fix
    pretty = json.dumps(data, indent=2, ensure_ascii=False)
    if not isinstance(data, (dict, list)):
        return pretty
    try:
        verb = parse_verbalizer(data)
        lines = "\n".join(f"{c}: {', '.join(ws)}" for c, ws in zip(verb.classes, verb.words))
        same = canonical_verbalizer(parse_label_words(lines), None) == verb.canonical_json()
    except VerbalizerError:
        return pretty
    return lines if same else pretty


@service("versions")
def save(ctx: StudioContext, kind: str, name: str, content: str, message: str = "",
         classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Validate and save the next version; saving unchanged content returns the existing version."""
    if kind not in KINDS:
        return user_error(f"unknown kind {kind!r}", "versions")
    if not (name or "").strip():
        return user_error(f"give the {kind} a name", "name")
    if kind == "template":
        parse_template(content)
        stored = content
    else:
        stored = canonical_verbalizer(content, classes)
    before = {v.id for v in _versions_or_empty(ctx, kind, name.strip())}
    v = ctx.store.save_version(kind, name.strip(), stored, message=message or "", project=ctx.project)
    # an earlier version saved again (a revert) is now the one the project opens with (storage: CURRENT)
    return {"version": version_row(v), "created": v.id not in before, "content": v.content,
            "now_current": CURRENT_VERSION in v.aliases}


def _versions_or_empty(ctx: StudioContext, kind: str, name: str) -> list[VersionInfo]:
    if name not in ctx.store.list_names(kind, project=ctx.project):
        return []
    return ctx.store.list_versions(kind, name, project=ctx.project)


@service("versions")
def history(ctx: StudioContext, kind: str, name: str) -> dict[str, Any]:
    """All versions of ``name``, newest first (an unknown name is simply empty)."""
    rows = [version_row(v) for v in _versions_or_empty(ctx, kind, (name or "").strip())]
    return {"versions": rows[::-1], "names": ctx.store.list_names(kind, project=ctx.project)}


@service("versions")
def get(ctx: StudioContext, kind: str, name: str, ref: int | str | None = None) -> dict[str, Any]:
    v = ctx.store.get_version(kind, name, _ref(ref), project=ctx.project)
    return {"version": version_row(v), "content": v.content}


@service("versions")
def diff(ctx: StudioContext, kind: str, name: str, a: int | str | None, b: int | str | None) -> dict[str, Any]:
    return {"diff": ctx.store.diff_versions(kind, name, _ref(a), _ref(b), project=ctx.project)}


@service("alias")
def set_alias(ctx: StudioContext, kind: str, name: str, alias: str, version: int | str) -> dict[str, Any]:
    if not (alias or "").strip():
        return user_error("type an alias name, e.g. 'prod'", "alias")
    v = ctx.store.set_alias(kind, name, alias.strip(), _ref(version), project=ctx.project)
    return {"version": version_row(v)}


def _ref(ref: int | str | float | None) -> int | str | None:
    """A version number (int, whole float or numeric text), an alias, or None/'' for the latest.

    A float that is not a whole number is refused rather than truncated: 2.7 must not quietly mean v2."""
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        return None
    if isinstance(ref, float):   # a number box: 3.0 is version 3; 2.7, NaN or inf name no version
        if not (math.isfinite(ref) and ref.is_integer()):
            raise InvalidInput(f"a version number must be a whole number, not {ref!r}")
        return int(ref)
    return ref.strip() if isinstance(ref, str) else ref
