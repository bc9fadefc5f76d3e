"""The start screen's pictures of projects: the list with each project's best result, and the badge naming
the project this browser works in (pure: data in, rows or HTML out)."""
from __future__ import annotations

from html import escape
from typing import Any

PROJECT_HEADERS = ["project", "runs", "best accuracy", "best run", "templates", "label-word sets", "seed", "data"]


def project_rows(projects: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per project: its runs, its best succeeded run by accuracy (id, method, name), what it holds."""
    rows = []
    for p in projects:
        best = p.get("best")
        rows.append([p["name"], p["runs"], f"{best['accuracy']:.3f}" if best else "-",
                     f"#{best['run_id']} {best['method']} {best.get('name') or ''}".strip() if best else "-",
                     p["templates"], p["verbalizers"], "-" if p.get("seed") is None else p["seed"],
                     p.get("source") or "-"])
    return rows


def current_html(project: str) -> str:
    return (f"<div class='ps-msg ps-info' id='ps-current-project' data-project='{escape(project, quote=True)}'>"
            f"Working in project <b>{escape(project)}</b>: its data, template and label-word versions and runs "
            "are shown on every tab.</div>")
