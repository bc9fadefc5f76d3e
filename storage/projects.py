"""Projects: named workspaces that own templates, verbalizers and runs, with their settings.

Why projects: a user with two tasks must never see one task's label words or runs in the other. Every
entity (template / verbalizer name) and every run belongs to exactly one project; the same template name
in two projects is two independent histories. A run or entity created without a project goes to
``DEFAULT_PROJECT`` (where migration 0002 put every row written before projects existed).

A project name is shown on the start screen, typed on the command line (``--project``) and may end up in
a file name (exports), so it is checked here, once: 1-64 characters, letters / digits / space / ``_ . -``,
starting with a letter or digit, no trailing space or dot — never a path, never empty, never a control
character. Settings are a small JSON object the backend validates (this layer only bounds its size).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import InvalidInput, NotFound
from .models import Entity, Project, Run
from .types import ProjectInfo

DEFAULT_PROJECT = "demo"
MAX_NAME = 64
MAX_SETTINGS_BYTES = 64 * 1024
_NAME = re.compile(r"[^\W_][\w .\-]*", re.UNICODE)


def check_name(name: Any) -> str:
    """``name`` if it is a valid project name, else InvalidInput saying what is wrong with it."""
    if not isinstance(name, str):
        raise InvalidInput(f"project name must be text, not {type(name).__name__}")
    if not name.strip():
        raise InvalidInput("project name is empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"project name is {len(name)} characters long; at most {MAX_NAME}")
    if not _NAME.fullmatch(name) or name.endswith((" ", ".")):
        bad = next((c for c in name if not (c.isalnum() or c in " _.-")), None)
        why = f"character {bad!r} is not allowed" if bad is not None else \
            "it must start with a letter or digit and not end with a space or dot"
        raise InvalidInput(f"project name {name[:40]!r}: {why} (use letters, digits, space, _ . -)")
    return name


def _settings(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise InvalidInput(f"project settings must be an object, not {type(settings).__name__}")
    try:
        size = len(json.dumps(settings, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"project settings must be plain JSON: {exc}") from None
    if size > MAX_SETTINGS_BYTES:
        raise InvalidInput(f"project settings are {size} bytes as JSON; at most {MAX_SETTINGS_BYTES}")
    return settings


def find(s: Session, name: str) -> Project | None:
    return s.scalar(select(Project).where(Project.name == name))


def row(s: Session, name: str) -> Project:
    """The project called ``name``, or NotFound."""
    p = find(s, check_name(name))
    if p is None:
        raise NotFound(f"no project named {name!r}")
    return p


def ensure(s: Session, name: str | None) -> Project:
    """The project called ``name`` (``None``: the default one), created when missing."""
    name = DEFAULT_PROJECT if name is None else check_name(name)
    p = find(s, name)
    if p is None:
        now = time.time()
        p = Project(name=name, settings={}, created_at=now, updated_at=now)
        s.add(p)
        s.flush()
    return p


def create(s: Session, name: str, settings: dict[str, Any] | None = None) -> ProjectInfo:
    check_name(name)
    if find(s, name) is not None:
        raise InvalidInput(f"a project named {name!r} already exists")
    now = time.time()
    p = Project(name=name, settings=_settings(settings), created_at=now, updated_at=now)
    s.add(p)
    s.flush()
    return info(s, p)


def rename(s: Session, old: str, new: str) -> ProjectInfo:
    p = row(s, old)
    check_name(new)
    if new != old and find(s, new) is not None:
        raise InvalidInput(f"a project named {new!r} already exists")
    p.name, p.updated_at = new, time.time()
    s.flush()
    return info(s, p)


def update_settings(s: Session, name: str, changes: dict[str, Any]) -> ProjectInfo:
    """Merge ``changes`` into the project's settings (a key set to None is removed)."""
    p = row(s, name)
    merged = {**(p.settings or {}), **_settings(changes)}
    p.settings = _settings({k: v for k, v in merged.items() if v is not None})
    p.updated_at = time.time()
    s.flush()
    return info(s, p)


def info(s: Session, p: Project) -> ProjectInfo:
    def count(q: Any) -> int:
        return int(s.scalar(q) or 0)

    return ProjectInfo(
        id=p.id, name=p.name, settings=dict(p.settings or {}), created_at=p.created_at, updated_at=p.updated_at,
        runs=count(select(func.count(Run.id)).where(Run.project_id == p.id)),
        templates=count(select(func.count(Entity.id)).where(Entity.project_id == p.id, Entity.kind == "template")),
        verbalizers=count(select(func.count(Entity.id)).where(Entity.project_id == p.id,
                                                             Entity.kind == "verbalizer")))


def list_all(s: Session) -> list[ProjectInfo]:
    """Every project, most recently changed first."""
    return [info(s, p) for p in s.scalars(select(Project).order_by(Project.updated_at.desc(), Project.id))]
