"""The views that follow the editors as the user types can never show an older input's result.

Gradio runs the calls of one listener one after another (``always_last``), but the calls of two listeners
independently, so two listeners writing the same view can answer out of order. These tests read the
built page's wiring: each live view has exactly one writer, and the editors stay read-only until the page
load has put the drafts in them (an answer landing after the user started typing would replace it).
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

LIVE_VIEWS = ("ps-preview", "ps-template-feedback", "ps-lengths", "ps-lengths-info", "ps-coverage",
              "ps-verbalizer-feedback")


@pytest.fixture(scope="module")
def page(tmp_path_factory, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path_factory.mktemp("live"), tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    yield demo
    ctx.close()


def _by_elem_id(demo) -> dict[str, int]:
    return {b.elem_id: b._id for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def _writers(demo, block_id: int) -> list:
    return [fn for fn in demo.fns.values() if any(o._id == block_id for o in fn.outputs)]


def test_each_live_view_has_exactly_one_writer(page):
    ids = _by_elem_id(page)
    present = [v for v in LIVE_VIEWS if v in ids]
    assert {"ps-preview", "ps-template-feedback", "ps-lengths", "ps-coverage"} <= set(present)
    for view in present:
        writers = _writers(page, ids[view])
        assert len(writers) == 1, (f"#{view} is written by {len(writers)} listeners "
                                   f"({[w.name for w in writers]}); their answers can land out of order")
        assert writers[0].trigger_mode == "always_last"


def test_the_preview_follows_every_input_it_reads(page):
    ids = _by_elem_id(page)
    (preview,) = _writers(page, ids["ps-preview"])
    triggered_by = {t[0] for t in preview.targets}
    for control in ("ps-template", "ps-preview-rows", "ps-max-length", "ps-truncate"):
        assert ids[control] in triggered_by, f"changing #{control} does not refresh the preview"


def test_editors_stay_read_only_until_the_page_load_fills_them(page):
    ids = _by_elem_id(page)
    for editor in ("ps-template", "ps-label-words"):
        block = page.blocks[ids[editor]]
        assert block.interactive is False, f"#{editor} is editable before the drafts are in it"
        fillers = [fn for fn in _writers(page, ids[editor]) if any(t[1] == "load" for t in fn.targets)]
        assert fillers, f"no page-load listener fills #{editor}"


def test_no_two_listeners_ask_for_the_same_api_name(page):
    """Gradio renames a duplicate ``api_name`` (``compare`` -> ``compare_1``) without a word, and a client
    calling ``/compare`` then reaches another tab's handler."""
    import re

    names = [fn.api_name for fn in page.fns.values() if fn.api_name and fn.api_visibility == "public"]
    renamed = [n for n in names if re.search(r"_\d+$", n)]
    assert not renamed, f"api names asked for twice: {renamed}"
