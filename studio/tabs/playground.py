"""Playground tab: type text, pick trained runs of the loaded base model, see each run's class
probabilities side by side (runs attach to one base model; switching runs never reloads it)."""
from __future__ import annotations

from html import escape
from typing import Any

import gradio as gr

from backend.errors import StudioError
from backend.services import playground as playground_service
from backend.services import runs as runs_service
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import guard
from studio.views.messages import error_html, info_html
from studio.views.tables import prob_bars


def results_html(res: dict[str, Any]) -> str:
    cards = "".join(
        f"<div class='ps-card' style='min-width:240px'><div><b>Run #{r['run_id']}</b> {escape(r['method'])} "
        f"{escape(r['name'] or '')}</div><div>predicted <b>{escape(str(r['predicted']))}</b></div>"
        f"{prob_bars(r['probs'], None)}</div>" for r in res["results"])
    return f"<div style='display:flex;flex-wrap:wrap;gap:12px' id='ps-play-cards'>{cards}</div>"


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown("Try trained runs on your own text. Runs are attached to the base model that is already "
                "loaded, so switching between them is instant.")
    with gr.Row():
        with gr.Column(scale=2):
            text = gr.Textbox(label="Text (text_a)", lines=4, elem_id="ps-play-text",
                              placeholder="An instant classic: sharp, funny and moving.")
            text_b = gr.Textbox(label="Second text (text_b), if the template uses it", lines=2)
            picked = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Trained runs",
                                 elem_id="ps-play-runs", max_choices=playground_service.MAX_RUNS)
            go_btn = gr.Button("Classify", variant="primary", elem_id="ps-play-go")
            msg = gr.HTML(elem_id="ps-play-msg")
        with gr.Column(scale=3):
            out = gr.HTML(elem_id="ps-play-out")

    @guard
    def do_predict(t: str, tb: str, labels: list[str], pj: str | None = None) -> tuple[str, str]:
        if ctx.model.status()["state"] != "ready":
            return info_html(ctx.model.status()["message"]), gr.skip()
        try:
            ids = [runs_service.run_id_of(x) for x in labels or []]
        except StudioError as exc:  # a run label typed by hand (or sent over the API) that names no run
            return error_html({"error": exc.to_dict()}), ""
        res = playground_service.predict(ctx.scoped(pj), t or "", ids, tb or "")
        return (error_html(res), "") if "error" in res else ("", results_html(res))

    @guard
    def refresh(pj: str | None = None) -> Any:
        return gr.Dropdown(choices=playground_service.runs(ctx.scoped(pj)))

    go_btn.click(do_predict, [text, text_b, picked, shared.project], [msg, out], api_name="classify")
    text.submit(do_predict, [text, text_b, picked, shared.project], [msg, out], api_visibility="private")
    picked.focus(refresh, [shared.project], [picked], api_visibility="private")
    shared.on_load.append((refresh, [shared.project], [picked]))
    shared.project.change(refresh, [shared.project], [picked], api_visibility="private")
