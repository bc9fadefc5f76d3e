"""The tabs share editors explicitly: any tab can use any shared editor whatever the tab order.

The shared editors (template, its name, max length, truncation, label words, the verbalizer's name) are
created unrendered in ``Shared.create`` and placed by the tab that owns them, so a tab placed before the
owner wires the same components. These tests build the page with the tabs in reverse order.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SHARED_IDS = ("ps-template-name", "ps-template", "ps-max-length", "ps-truncate", "ps-verbalizer-name",
              "ps-label-words")


def _build(tmp_path, monkeypatch, tabs):
    from backend.services.testing import make_context
    from studio import app

    monkeypatch.setattr(app, "TABS", tabs)
    ctx = make_context(tmp_path)   # a model that never loads: only the page's wiring is read
    try:
        return app.build_app(ctx)
    finally:
        ctx.close()


def _owner_tab(demo, block) -> str | None:
    """The elem_id of the tab a block is placed in (None when it is placed nowhere)."""
    import gradio as gr

    parent = block.parent
    while parent is not None and not isinstance(parent, gr.Tab):
        parent = parent.parent
    return getattr(parent, "elem_id", None)


def test_tabs_in_reverse_order_wire_the_same_shared_editors(tmp_path, monkeypatch):
    from studio import app

    demo = _build(tmp_path, monkeypatch, tuple(reversed(app.TABS)))
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None) in SHARED_IDS}
    assert sorted(by_id) == sorted(SHARED_IDS)
    owners = {elem_id: _owner_tab(demo, block) for elem_id, block in by_id.items()}
    assert owners == {"ps-template-name": "tab-template", "ps-template": "tab-template",
                      "ps-max-length": "tab-template", "ps-truncate": "tab-template",
                      "ps-verbalizer-name": "tab-verbalizer", "ps-label-words": "tab-verbalizer"}
    # the Evaluate tab, now built before the Template and Verbalizer tabs, reads the placed editors
    evaluate = next(fn for fn in demo.fns.values() if fn.api_name == "evaluate")
    inputs = {getattr(c, "elem_id", None) for c in evaluate.inputs}
    assert {"ps-template", "ps-label-words", "ps-max-length", "ps-truncate", "ps-template-name"} <= inputs


def test_a_shared_editor_no_tab_places_is_named(tmp_path, monkeypatch):
    from studio import app

    without_verbalizer = tuple((label, module) for label, module in app.TABS if label != "Verbalizer")
    with pytest.raises(RuntimeError, match=r"verbalizer_name \(#ps-verbalizer-name\), label_words"):
        _build(tmp_path, monkeypatch, without_verbalizer)
