"""Template tab: the editor with errors at the exact span as you type, the live token preview of chosen
examples, max length / truncation, the dataset-wide length histogram, lint, and versions."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import data as data_service
from backend.errors import StudioError
from backend.services import preview as preview_service
from backend.services.versions import parse_label_words
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import as_int, guard, row_picker
from studio.tabs.versioning import versions_panel
from studio.views.messages import error_html, lint_html
from studio.views.plots import length_histogram
from studio.views.tokens import preview_html
from studio.views.tables import kv_card

HELP = ("Write the prompt around the input. Short form: `{text_a}`, `{text_b}`, `{mask}`, `{meta:NAME}`, "
        "`{soft}`, `{soft:init text}`; OpenPrompt's `{\"placeholder\": \"text_a\", \"shortenable\": False}` "
        "works too. The **mask** is where the model's answer (a label word) goes.")


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=5):
            # this tab owns these shared editors (created in Shared.create): it places them here
            name = shared.template_name.render()
            editor = shared.template_text.render()   # read-only until the page load fills it
            feedback = gr.HTML(elem_id="ps-template-feedback")
            with gr.Row():
                max_length = shared.max_length.render()
                truncate = shared.truncate.render()
            rows = gr.Dropdown([], allow_custom_value=True, value=[], multiselect=True, label="Examples to preview",
                               elem_id="ps-preview-rows", max_choices=preview_service.MAX_PREVIEW_EXAMPLES)
            panel = versions_panel(ctx, "template", name, editor, [], lambda: None, lambda c: c,
                                   project=shared.project)
        with gr.Column(scale=6):
            preview = gr.HTML(elem_id="ps-preview", min_height=120)
            lengths_plot = gr.Plot(label="Encoded length over the dataset", elem_id="ps-lengths")
            lengths_info = gr.HTML(elem_id="ps-lengths-info")
            lengths_trigger = gr.Button("Measure lengths", elem_id="ps-lengths-trigger")

    @guard
    def do_preview(text: str, picked: list[Any], max_len: Any, trunc: str, sel: dict[str, Any],
                   words: str = "") -> tuple[str, str]:
        try:
            chosen = data_service.pick(ctx, sel, [as_int(r, 0) for r in (picked or [])])
            every = data_service.examples(ctx, sel)
            pool = demo_pool(sel, every) if "demos" in (text or "") else []
        except Exception as exc:  # a missing dataset must not hide the template's own errors
            chosen, every, pool = [], [], []
            data_problem = error_html({"error": {"message": getattr(exc, "message", str(exc))}})
        else:
            data_problem = ""
        res = preview_service.preview(ctx, text or "", chosen, max_len, trunc, lint_examples=every[:500],
                                      demo_pool=pool, label_words=demo_words(words))
        if "error" in res:
            return error_html(res, text or ""), preview_html(res)
        return lint_html(res["lint"], text or "") + data_problem, preview_html(res)

    def demo_pool(sel: dict[str, Any], every: list[Any]) -> list[Any]:
        """Demonstrations come from training rows: the train part when the source is split."""
        parts = data_service.train_dev(ctx, sel)
        return list(parts[0]) if parts else every

    def demo_words(words: Any) -> Any:
        """The label-word editor's {class: [words]}, or None (the class names are shown) while it does not parse."""
        try:
            spec = parse_label_words(words) if isinstance(words, str) else None
        except (StudioError, ValueError, RecursionError):   # half-typed or garbage: shown on the Verbalizer tab
            return None
        return spec if isinstance(spec, dict) else None

    @guard
    def do_lengths(text: str, max_len: Any, trunc: str, sel: dict[str, Any]) -> tuple[Any, str]:
        if ctx.model.status()["state"] != "ready":
            return gr.skip(), f"<div class='ps-msg ps-info'>{ctx.model.status()['message']}</div>"
        try:
            every = data_service.examples(ctx, sel)
        except Exception:  # noqa: BLE001 - the data tab shows why; here there is simply nothing to measure
            return None, ""
        res = preview_service.length_stats(ctx, text or "", every, max_len, trunc)
        if "error" in res:
            return gr.skip(), ""
        items = [("examples measured", f"{res['n']} of {res['total']}"),
                 ("truncated", f"{res['truncated']} ({res['share_truncated']:.1%})"),
                 ("cannot be encoded (mask lost)", res["lost"])]
        card = kv_card(items)
        if res["lost_rows"]:
            card += error_html({"error": {"message": f"row {res['lost_rows'][0]['row']}: "
                                                     f"{res['lost_rows'][0]['message']}"}})
        return length_histogram(res["lengths"], res["max_length"], res["full_lengths"]), card

    @guard
    def refresh_rows(sel: dict[str, Any], picked: list[Any]) -> Any:
        return row_picker(ctx, sel, picked, 2)

    # the label words reach the preview through a state, not as an argument: /preview keeps its signature
    words = gr.State("")
    shared.label_words.change(lambda w: w if isinstance(w, str) else "", [shared.label_words], [words],
                              api_visibility="private", queue=False, show_progress="hidden")
    preview_inputs = [editor, rows, max_length, truncate, shared.data_sel, words]
    preview_outputs = [feedback, preview]
    length_inputs = [editor, max_length, truncate, shared.data_sel]
    # One listener per output, whatever triggers it: Gradio serialises the runs of one listener
    # (always_last: a trigger while one is pending runs once after it, with the inputs of that moment),
    # but not the runs of two listeners, so two listeners writing the same preview can land out of order
    # and show an older template over the one in the editor.
    # queue=False: a keystroke's preview is one plain HTTP request (no queue join + event stream); it is a
    # millisecond of pure work, so it needs neither the queue's fairness nor its progress updates
    gr.on([editor.change, rows.change, max_length.change, truncate.change, words.change,
           shared.model_state.change, shared.page.load], do_preview, preview_inputs, preview_outputs,
          trigger_mode="always_last",
          api_name="preview", queue=False, show_progress="hidden")
    # the page clicks the hidden trigger when typing pauses (see studio.style.HEAD_JS)
    gr.on([lengths_trigger.click, max_length.change, truncate.change, shared.data_sel.change,
           shared.model_state.change, shared.page.load], do_lengths, length_inputs, [lengths_plot, lengths_info],
          trigger_mode="always_last", api_name="lengths", show_progress="hidden")
    # a version loaded into the editor is measured like typed text: through the same trigger
    panel["loaded"].then(None, js="() => { document.querySelector('#ps-lengths-trigger')?.click(); }")
    shared.data_sel.change(refresh_rows, [shared.data_sel, rows], [rows], api_visibility="private")
    shared.on_load.append((panel["refresh"], [name, shared.project], panel["history_outputs"]))
    shared.on_load.append((refresh_rows, [shared.data_sel, rows], [rows]))
