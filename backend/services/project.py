"""The demo project the studio opens on: the built-in dataset, a template and label words, saved once.

Why saved: the page must open ready to use, and what it shows must be a real version (so "Save" makes
v2, and the first run already points at v1). The content is the CLI's demo config, so the studio and
``python -m backend eval demo`` start from the same prompt.
"""
from __future__ import annotations

from typing import Any

from backend.services.context import StudioContext
from backend.services.results import service
from backend.services.versions import canonical_verbalizer, label_words_text


def demo_config() -> dict[str, Any]:
    from backend.config import DEMO_CONFIG

    return DEMO_CONFIG


@service("project")
def bootstrap(ctx: StudioContext) -> dict[str, Any]:
    """Make sure the demo template and verbalizer exist; return the editors' starting content."""
    cfg = demo_config()
    name = ctx.project
    store = ctx.store
    if name not in store.list_names("template"):
        store.save_version("template", name, cfg["template"], message="demo project")
    if name not in store.list_names("verbalizer"):
        store.save_version("verbalizer", name, canonical_verbalizer(cfg["verbalizer"], None),
                           message="demo project")
    return opening(ctx, name)


@service("project")
def opening(ctx: StudioContext, name: str) -> dict[str, Any]:
    """The latest template and verbalizer of ``name`` as editor text, plus the demo data source."""
    cfg = demo_config()
    template = ctx.store.get_version("template", name).content
    verbalizer = label_words_text(ctx.store.get_version("verbalizer", name).content)
    return {"name": name, "template": template, "label_words": verbalizer,
            "data": {"source": cfg["data"]["eval"], "split": cfg["data"].get("eval_split")},
            "max_length": cfg.get("max_length", 256),
            "calibration": (cfg.get("eval") or {}).get("calibration")}
