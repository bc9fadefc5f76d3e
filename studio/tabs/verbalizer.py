"""Verbalizer tab: label words per class, their coverage in the model's vocabulary, a zero-shot probe
with suggested label words, and versions."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import data as data_service
from backend.services import verbalizer as verbalizer_service
from backend.services.context import StudioContext
from backend.services.versions import label_words_text
from studio.shared import Shared
from studio.tabs.common import as_int, guard, row_picker
from studio.tabs.versioning import versions_panel
from studio.views.messages import error_html, info_html
from studio.views.verbalizer import coverage_html, probe_html, suggestions_note, suggestions_text

HELP = ("Say which words the model should produce at the mask for each class, one line per class: "
        "`positive: great, good`. A class scores high when its words are likely at the mask.")


def classes_of(ctx: StudioContext, sel: dict[str, Any]) -> list[str] | None:
    try:
        return data_service.label_names(ctx, sel) or None
    except Exception:  # noqa: BLE001 - without data the verbalizer's own classes are used
        return None


def use_suggestions(suggested: str | None) -> Any:
    """The suggested label words into the editor (nothing to copy: the editor keeps what it has)."""
    return suggested or gr.skip()


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=5):
            # this tab owns these shared editors (created in Shared.create): it places them here
            name = shared.verbalizer_name.render()
            words = shared.label_words.render()   # read-only until the page load fills it
            feedback = gr.HTML(elem_id="ps-verbalizer-feedback")
            panel = versions_panel(ctx, "verbalizer", name, words, [shared.data_sel],
                                   lambda sel: classes_of(ctx, sel), label_words_text, project=shared.project)
        with gr.Column(scale=6):
            coverage = gr.HTML(elem_id="ps-coverage")
            with gr.Row():
                rows = gr.Dropdown([], allow_custom_value=True, value=[], multiselect=True, label="Examples to probe",
                                   max_choices=verbalizer_service.PROBE_MAX, elem_id="ps-probe-rows", scale=3)
                top_k = gr.Number(10, label="top-k", precision=0, minimum=1, maximum=50, scale=1)
            probe_btn = gr.Button("Probe the model (zero-shot)", elem_id="ps-probe")
            probe_msg = gr.HTML()
            suggestions = gr.Textbox(label="Suggested label words (mined from the top-k per class)", lines=3,
                                     interactive=False, elem_id="ps-suggestions")
            use_btn = gr.Button("Use the suggestions as label words")
            probe_out = gr.HTML(elem_id="ps-probe-out")

    @guard
    def do_coverage(text: str, template: str, sel: dict[str, Any]) -> tuple[str, str]:
        if ctx.model.status()["state"] != "ready":
            return "", info_html(ctx.model.status()["message"])
        res = verbalizer_service.coverage(ctx, text or "", template or "", classes_of(ctx, sel))
        if "error" in res:
            return error_html(res), ""
        return "", coverage_html(res)

    @guard
    def do_probe(template: str, text: str, sel: dict[str, Any], picked: list[Any], k: Any, max_len: Any,
                 trunc: str) -> tuple[str, str, str]:
        if ctx.model.status()["state"] != "ready":
            return info_html(ctx.model.status()["message"]), gr.skip(), gr.skip()
        try:
            chosen = data_service.pick(ctx, sel, [as_int(r, 0) for r in picked or []])
        except Exception as exc:  # noqa: BLE001 - DatasetError: shown next to the button
            return error_html({"error": {"message": getattr(exc, "message", str(exc))}}), "", ""
        if not chosen:
            return error_html({"error": {"message": "pick at least one example to probe"}}), "", ""
        res = verbalizer_service.probe(ctx, template or "", text or "", chosen, classes_of(ctx, sel),
                                       max_len, trunc, as_int(k, 10), selection=sel)
        if "error" in res:
            return error_html(res), "", ""
        return suggestions_note(res), probe_html(res), suggestions_text(res["suggestions"])

    @guard
    def refresh_rows(sel: dict[str, Any], picked: list[Any]) -> Any:
        return row_picker(ctx, sel, picked, 4)

    cov_inputs = [words, shared.template_text, shared.data_sel]
    # one listener for the coverage table, so no older label words' table lands over a newer one
    gr.on([words.change, shared.model_state.change, shared.page.load], do_coverage, cov_inputs,
          [feedback, coverage], trigger_mode="always_last", api_name="coverage", show_progress="hidden")
    probe_btn.click(do_probe, [shared.template_text, words, shared.data_sel, rows, top_k, shared.max_length,
                               shared.truncate], [probe_msg, probe_out, suggestions], api_name="probe")
    use_btn.click(guard(use_suggestions), [suggestions], [words], api_visibility="private")
    shared.data_sel.change(refresh_rows, [shared.data_sel, rows], [rows], api_visibility="private")
    shared.on_load.append((panel["refresh"], [name, shared.project], panel["history_outputs"]))
    shared.on_load.append((refresh_rows, [shared.data_sel, rows], [rows]))
