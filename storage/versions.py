"""Immutable, numbered, content-hashed versions of templates and verbalizers, with aliases and diffs.

Canonical content (what the sha256 covers): for a template, its exact text with line endings normalised
to ``\\n`` (so a file saved on Windows is not a "new" version); for a verbalizer, the caller passes its
canonical JSON (``json.dumps(obj, sort_keys=True, ensure_ascii=False)`` or any fixed form) and the
text is hashed as given, after the same line-ending normalisation. Saving content equal to *any* earlier
version of the same name returns that version unchanged: versions are never duplicated nor rewritten.
Names live in a project (``project=None``: the default one): the same name in two projects is two
independent histories, and a lookup never crosses into another project.

``current`` is the version the editor opens: the newest one, unless content equal to an earlier version
was saved since (a revert), which then becomes current. It is kept as the alias ``current`` only while it
differs from the newest, so the history shows it exactly when it matters; a user may also move it.
"""
from __future__ import annotations

import difflib
import hashlib
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import InvalidInput, NotFound
from . import projects
from .models import Alias, Entity, Project, Version
from .types import KINDS, VersionInfo

CURRENT = "current"   # the alias that marks a saved revert (see the module docstring)
# the largest number ``versions.number`` (an Integer column) holds on every backend: PostgreSQL's INTEGER is
# 32-bit and refuses a larger value even in a lookup ("integer out of range"); SQLite's limit is 2**63 - 1
MAX_VERSION_NUMBER = 2**31 - 1


def canonical(content: str) -> str:
    if not isinstance(content, str):
        raise InvalidInput(f"version content must be text, not {type(content).__name__}")
    return content.replace("\r\n", "\n").replace("\r", "\n")


def content_sha256(content: str) -> str:
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


MAX_NAME = 200   # a template / label-word name or an alias: shown in pickers, run tags and messages


def check_name(name: str, what: str = "name") -> str:
    """A name a new version or alias may take: one printable line (a tab, line break or control character
    would break the pickers' ``name vN`` labels and the ``template:NAME`` tags), at most MAX_NAME long."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{what} must be a non-empty string, got {name!r}"[:200])
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} is {len(name):,} characters long; at most {MAX_NAME}")
    bad = next((i for i, c in enumerate(name) if not c.isprintable()), None)
    if bad is not None:
        raise InvalidInput(f"{what} {name[:40]!r}: character {bad} ({ascii(name[bad])}) is not printable; "
                           "use one line of text")
    return name


def _project_id(s: Session, project: str | None) -> int | None:
    """The id of an existing project (None when it does not exist: then it has no names)."""
    p = projects.find(s, projects.DEFAULT_PROJECT if project is None else projects.check_name(project))
    return p.id if p is not None else None


def find_entity(s: Session, kind: str, name: str, project: str | None = None) -> Entity | None:
    pid = _project_id(s, project)
    if pid is None:
        return None
    return s.scalar(select(Entity).where(Entity.project_id == pid, Entity.kind == check_kind(kind),
                                         Entity.name == name))


def _entity_or_raise(s: Session, kind: str, name: str, project: str | None = None) -> Entity:
    ent = find_entity(s, kind, name, project)
    if ent is None:
        raise NotFound(f"no {kind} named {name!r} in project {project or projects.DEFAULT_PROJECT!r}")
    return ent


def to_info(s: Session, v: Version, ent: Entity | None = None) -> VersionInfo:
    ent = ent or s.get(Entity, v.entity_id)
    parent = s.get(Version, v.parent_id).number if v.parent_id is not None else None
    aliases = tuple(s.scalars(select(Alias.alias).where(Alias.version_id == v.id)
                              .order_by(Alias.alias)))
    project = s.get(Project, ent.project_id)
    return VersionInfo(id=v.id, kind=ent.kind, name=ent.name, number=v.number, sha256=v.sha256,
                       content=v.content, parent=parent, message=v.message, author=v.author,
                       created_at=v.created_at, aliases=aliases, project=project.name if project else None)


def save(s: Session, kind: str, name: str, content: str, message: str = "", author: str = "",
         parent: int | str | None = None, created_at: float | None = None,
         project: str | None = None) -> VersionInfo:
    """Create the next version, or return the existing one with identical content.

    ``parent`` (a number or alias) defaults to the current version (the latest, or a revert saved since):
    the lineage the editor started from. Content equal to an earlier version makes that one current.
    Must run in a write transaction (numbers are assigned by max+1 under the write lock). The project is
    created when missing.
    """
    check_kind(kind)
    check_name(name)
    text = canonical(content)
    sha = content_sha256(text)
    proj = projects.ensure(s, project)
    ent = find_entity(s, kind, name, proj.name)
    if ent is None:
        ent = Entity(project_id=proj.id, kind=kind, name=name, created_at=time.time())
        s.add(ent)
        s.flush()
    else:  # PostgreSQL: serialise saves of one name (SQLite's BEGIN IMMEDIATE already does)
        s.execute(select(Entity.id).where(Entity.id == ent.id).with_for_update())
    existing = s.scalar(select(Version).where(Version.entity_id == ent.id, Version.sha256 == sha))
    latest = s.scalar(select(func.max(Version.number)).where(Version.entity_id == ent.id)) or 0
    current = resolve(s, ent, CURRENT) if latest else None   # what the editor started from
    _mark_current(s, ent, existing if existing is not None and existing.number != latest else None)
    if existing is not None:
        return to_info(s, existing, ent)
    parent_row = resolve(s, ent, parent) if parent is not None else current
    v = Version(entity_id=ent.id, number=latest + 1, sha256=sha, content=text,
                parent_id=parent_row.id if parent_row is not None else None, message=message or "",
                author=author or "", created_at=created_at if created_at is not None else time.time())
    s.add(v)
    proj.updated_at = time.time()
    s.flush()
    return to_info(s, v, ent)


def _mark_current(s: Session, ent: Entity, version: Version | None) -> None:
    """Point ``current`` at ``version``, or (None: the newest is current) remove it."""
    row = _current_alias(s, ent)
    if version is None:
        if row is not None:
            s.delete(row)
    elif row is None:
        s.add(Alias(entity_id=ent.id, alias=CURRENT, version_id=version.id, updated_at=time.time()))
    else:
        row.version_id, row.updated_at = version.id, time.time()


def _current_alias(s: Session, ent: Entity) -> Alias | None:
    return s.scalar(select(Alias).where(Alias.entity_id == ent.id, Alias.alias == CURRENT))


def resolve(s: Session, ent: Entity, ref: int | str | None) -> Version:
    """A version of ``ent`` by number, alias, numeric string, or (``None``) the latest; ``"current"``
    without its alias is the latest too."""
    q = select(Version).where(Version.entity_id == ent.id)
    if ref == CURRENT and _current_alias(s, ent) is None:
        ref = None
    if ref is None:
        v = s.scalar(q.order_by(Version.number.desc()).limit(1))
        if v is None:
            raise NotFound(f"{ent.kind} {ent.name!r} has no versions")
        return v
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise InvalidInput(f"version reference must be a number or an alias, not {ref!r}")
    if isinstance(ref, str) and not (ref.isascii() and ref.isdigit()):   # "²" and "-1" are names too
        alias = s.scalar(select(Alias).where(Alias.entity_id == ent.id, Alias.alias == ref))
        if alias is None:
            raise NotFound(f"{ent.kind} {ent.name!r} has no alias {ref!r}")
        return s.get(Version, alias.version_id)
    number = _version_number(ref)
    v = s.scalar(q.where(Version.number == number)) if number is not None else None
    if v is None:
        raise NotFound(f"{ent.kind} {ent.name!r} has no version {_shown_number(ref)}")
    return v


def _version_number(ref: int | str) -> int | None:
    """The number an int or ASCII-digit string names, or None outside 1..MAX_VERSION_NUMBER: no version
    has it, and handing it to the database would raise (SQLite: OverflowError) instead of "not found"."""
    if isinstance(ref, str):
        digits = ref.lstrip("0")
        if len(digits) > len(str(MAX_VERSION_NUMBER)):   # before int(): Python refuses over 4,300 digits
            return None
        ref = int(digits or "0")
    return ref if 1 <= ref <= MAX_VERSION_NUMBER else None


def _shown_number(ref: int | str) -> str:
    """``ref`` for a message, shortened (a pasted 5,000-digit number should not fill the screen; str() of
    an int that long even raises)."""
    text = ref if isinstance(ref, str) else str(ref) if ref.bit_length() < 10_000 else "too large to write"
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text)} digits)"


def get(s: Session, kind: str, name: str, ref: int | str | None = None,
        project: str | None = None) -> VersionInfo:
    ent = _entity_or_raise(s, kind, name, project)
    return to_info(s, resolve(s, ent, ref), ent)


def get_by_id(s: Session, version_id: int) -> VersionInfo:
    v = s.get(Version, version_id)
    if v is None:
        raise NotFound(f"no version with id {version_id}")
    return to_info(s, v)


def list_versions(s: Session, kind: str, name: str, project: str | None = None) -> list[VersionInfo]:
    ent = _entity_or_raise(s, kind, name, project)
    rows = s.scalars(select(Version).where(Version.entity_id == ent.id).order_by(Version.number))
    return [to_info(s, v, ent) for v in rows]


def list_names(s: Session, kind: str, project: str | None = None) -> list[str]:
    check_kind(kind)
    pid = _project_id(s, project)
    if pid is None:
        return []
    return list(s.scalars(select(Entity.name).where(Entity.project_id == pid, Entity.kind == kind)
                          .order_by(Entity.name)))


def diff(s: Session, kind: str, name: str, a: int | str | None, b: int | str | None,
         project: str | None = None) -> str:
    """Unified diff from version ``a`` to version ``b`` (empty string when identical)."""
    ent = _entity_or_raise(s, kind, name, project)
    va, vb = resolve(s, ent, a), resolve(s, ent, b)
    lines = difflib.unified_diff(va.content.splitlines(keepends=True),
                                 vb.content.splitlines(keepends=True),
                                 fromfile=f"{name}@v{va.number}", tofile=f"{name}@v{vb.number}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def set_alias(s: Session, kind: str, name: str, alias: str, version: int | str,
              project: str | None = None) -> VersionInfo:
    """Point ``alias`` at ``version`` (creating or moving it). Aliases may not look like numbers."""
    check_name(alias, "alias")
    if alias.isdigit():
        raise InvalidInput(f"alias {alias!r} would be confused with a version number")
    ent = _entity_or_raise(s, kind, name, project)
    target = resolve(s, ent, version)
    row = s.scalar(select(Alias).where(Alias.entity_id == ent.id, Alias.alias == alias))
    if row is None:
        s.add(Alias(entity_id=ent.id, alias=alias, version_id=target.id, updated_at=time.time()))
    else:
        row.version_id, row.updated_at = target.id, time.time()
    s.flush()
    return to_info(s, target, ent)
