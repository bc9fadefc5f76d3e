"""Projects in the studio: the demo project it opens on, the start screen's list, creating and opening one,
and the project's saved settings (its data choice and its one seed).

Why the demo is saved: the page must open ready to use, and what it shows must be a real version (so
"Save" makes v2, and the first run already points at v1). The content is the CLI's demo config, so the
studio and ``python -m backend eval demo`` start from the same prompt. A new project opens on the same
prompt as a draft (nothing saved until the user saves), and on the data it was created with.

Every function works in ``ctx.project``: the studio passes a view scoped to the browser session's project
(``StudioContext.scoped``), so two browsers on two projects never see each other's versions or runs.
"""
from __future__ import annotations

from typing import Any

from backend.services.context import StudioContext
from backend.services.results import service
from backend.services.versions import canonical_verbalizer, label_words_text
from storage import CURRENT_VERSION as CURRENT

# What of a data selection a project keeps (the Data tab's choice, including the one seed).
SELECTION_KEYS = ("source", "columns", "split", "limit", "shots", "seed", "dev_fraction")
BEST_OF = 500   # runs looked at for a project's best result on the start screen


def demo_config() -> dict[str, Any]:
    from backend.config import DEMO_CONFIG

    return DEMO_CONFIG


@service("project")
def bootstrap(ctx: StudioContext) -> dict[str, Any]:
    """Make sure the demo template and verbalizer exist in the demo project when it is the one opened;
    return the editors' starting content for ``ctx.project``."""
    from storage import DEFAULT_PROJECT

    cfg = demo_config()
    store, name = ctx.store, ctx.project
    store.ensure_project(name)
    if name == DEFAULT_PROJECT:
        if name not in store.list_names("template", project=name):
            store.save_version("template", name, cfg["template"], message="demo project", project=name)
        if name not in store.list_names("verbalizer", project=name):
            store.save_version("verbalizer", name, canonical_verbalizer(cfg["verbalizer"], None),
                               message="demo project", project=name)
    return opening(ctx, name)


def _name_in(ctx: StudioContext, kind: str, preferred: str) -> str | None:
    names = ctx.store.list_names(kind, project=ctx.project)
    return preferred if preferred in names else (names[0] if names else None)


@service("project")
def opening(ctx: StudioContext, name: str | None = None) -> dict[str, Any]:
    """The editors' content for the session's project: its current template and label words under the
    name ``name`` (default: the project's name; else its first saved name; else the demo prompt as an
    unsaved draft), its saved data selection (else the demo data) and its one seed."""
    from backend.services.data import default_selection, seed_of

    ctx.store.get_project(ctx.project)   # NotFound ("no project named ...") for a project never created
    cfg = demo_config()
    preferred = name or ctx.project
    t_name, v_name = _name_in(ctx, "template", preferred), _name_in(ctx, "verbalizer", preferred)
    template = ctx.store.get_version("template", t_name, CURRENT, project=ctx.project).content if t_name \
        else cfg["template"]
    words = ctx.store.get_version("verbalizer", v_name, CURRENT, project=ctx.project).content if v_name \
        else canonical_verbalizer(cfg["verbalizer"], None)
    selection = settings(ctx).get("data") or default_selection()
    return {"name": t_name or preferred, "verbalizer_name": v_name or preferred, "template": template,
            "label_words": label_words_text(words), "selection": selection, "seed": seed_of(selection),
            "project": ctx.project,
            "data": {"source": selection.get("source"), "split": selection.get("split")},
            "max_length": cfg.get("max_length", 256),
            "calibration": (cfg.get("eval") or {}).get("calibration")}


def settings(ctx: StudioContext) -> dict[str, Any]:
    from storage import NotFound

    try:
        return ctx.store.get_project(ctx.project).settings
    except NotFound:
        return {}


@service("project")
def save_selection(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """Keep the Data tab's choice (source, columns, split, dev fraction, shots, the one seed) in the
    project, so opening it again, in any browser, starts from the same data. A selection whose numbers
    cannot be used (shots "x", a negative limit...) is refused with the data service's error and nothing
    is saved: kept, it would break every later opening of the project."""
    from backend.services.data import check_selection

    if not isinstance(selection, dict) or not selection.get("source"):
        return {"saved": False}
    check_selection(selection)
    kept = {k: selection.get(k) for k in SELECTION_KEYS if k in selection}
    ctx.store.ensure_project(ctx.project)
    ctx.store.update_project_settings(ctx.project, {"data": kept})
    return {"saved": True, "data": kept}


@service("project")
def create(ctx: StudioContext, name: str, selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new, empty project (the name is checked: letters, digits, space, _ . -; at most 64)."""
    name = (name or "").strip()
    info = ctx.store.create_project(name, {"data": {k: selection.get(k) for k in SELECTION_KEYS if k in selection}}
                                    if isinstance(selection, dict) and selection.get("source") else None)
    return {"project": info.name}


@service("project")
def catalogue(ctx: StudioContext) -> dict[str, Any]:
    """Every project for the start screen: runs, saved names and its best result (the succeeded run with
    the highest accuracy: its id, method and name)."""
    from backend.services.runs import headline

    rows = []
    for p in ctx.store.list_projects():
        best: dict[str, Any] | None = None
        for r in ctx.store.list_runs(status="succeeded", limit=BEST_OF, project=p.name):
            acc = headline(r.metrics)["accuracy"]
            if acc is not None and acc == acc and (best is None or acc > best["accuracy"]):
                best = {"accuracy": acc, "run_id": r.id, "method": r.method, "name": (r.config or {}).get("name")}
        rows.append({"name": p.name, "runs": p.runs, "templates": p.templates, "verbalizers": p.verbalizers,
                     "best": best, "updated_at": p.updated_at, "seed": (p.settings.get("data") or {}).get("seed"),
                     "source": (p.settings.get("data") or {}).get("source")})
    return {"projects": rows}
