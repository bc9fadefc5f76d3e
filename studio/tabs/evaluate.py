"""Evaluate tab: zero-shot (or any finished run) on a split or a sample: accuracy, macro-F1, per-class
table, a confusion matrix whose cells list their examples, calibration on or off."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import evaluate as evaluate_service
from backend.services import runconfig
from backend.services import runs as runs_service
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import as_int, config_or_message, guard
from studio.views.evaluation import cell_html, metrics_card, per_class_html
from studio.views.messages import error_html, info_html
from studio.views.plots import confusion_matrix, empty

CURRENT = "current template + label words (zero-shot)"


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown("Score the current template and label words on labelled data without training, or reopen "
                "any finished run. Click a cell of the confusion matrix to see its examples.")
    with gr.Row():
        with gr.Column(scale=2):
            target = gr.Dropdown([CURRENT], value=CURRENT, label="What to evaluate", elem_id="ps-eval-target")
            with gr.Row():
                split = gr.Dropdown([], value=None, label="Split", allow_custom_value=True, elem_id="ps-eval-split")
                sample = gr.Number(0, label="Sample: first N examples (0 = all)", precision=0, minimum=0,
                                   elem_id="ps-eval-sample")
            calibrate = gr.Checkbox(bool(shared.opening.get("calibration")),
                                    label="Calibrate (content-free inputs remove the prompt's bias)",
                                    elem_id="ps-eval-calibrate")
            go_btn = gr.Button("Evaluate", variant="primary", elem_id="ps-eval-run")
            msg = gr.HTML(elem_id="ps-eval-msg")
            card = gr.HTML(elem_id="ps-eval-card")
            gr.Markdown("Next: train it on the training rows, with the Train tab's settings.",
                        elem_id="ps-eval-next")
            shared.train_now.render()   # wired by the Train tab: it starts a run and shows it there
            per_class = gr.HTML(elem_id="ps-eval-per-class")
        with gr.Column(scale=3):
            matrix = gr.Plot(empty("Evaluate to see the confusion matrix"),
                             label="Confusion matrix (rows gold, columns predicted)", elem_id="ps-confusion")
            cell = gr.Textbox(elem_id="ps-cell", show_label=False, container=False)
            with gr.Row():
                gold = gr.Dropdown([], label="gold", allow_custom_value=True, elem_id="ps-cell-gold")
                pred = gr.Dropdown([], label="predicted", allow_custom_value=True, elem_id="ps-cell-pred")
                show_btn = gr.Button("List these examples", elem_id="ps-cell-show")
            cell_out = gr.HTML(elem_id="ps-cell-out")
    current_run = gr.State(None)

    def _show(res: dict[str, Any], note: str = "") -> tuple[Any, ...]:
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), ""
        classes = res["classes"]
        return (info_html(note, "ok") if note else "", metrics_card(res), per_class_html(res),
                confusion_matrix(res["confusion"], classes), res["run_id"],
                gr.Dropdown(choices=classes, value=classes[0] if classes else None),
                gr.Dropdown(choices=classes, value=classes[-1] if classes else None), "")

    outputs = [msg, card, per_class, matrix, current_run, gold, pred, cell_out]

    @guard
    def do_eval(what: str, sp: str | None, n: Any, cal: bool, template: str, words: str, sel: dict[str, Any],
                max_len: Any, trunc: str, name: str, pj: str | None = None,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        if what and what != CURRENT:
            here = ctx.scoped(pj)   # the session's project: its runs only
            run_id = runs_service.run_id_of(what)
            method = here.run(run_id).method
            if not runs_service.is_trained(method):  # a zero-shot or evaluation run: show what it recorded
                return _show(evaluate_service.run_result(here, run_id))
            if ctx.model.status()["state"] != "ready":
                return (info_html(ctx.model.status()["message"]),) + (gr.skip(),) * 7
            res = evaluate_service.trained_run(here, run_id, sp or None, as_int(n, 0) or None)
            note = "Calibration applies to zero-shot scoring only; this trained run was scored as is. " if cal \
                else ""
            return _show(res, f"{note}Recorded as run {res.get('run_id')} (evaluation of run #{run_id}).")
        if ctx.model.status()["state"] != "ready":
            return (info_html(ctx.model.status()["message"]),) + (gr.skip(),) * 7
        cfg, problem = config_or_message(lambda: runconfig.build(
            ctx.scoped(pj), template=template or "", label_words=words or "", selection=sel, max_length=max_len,
            truncate=trunc, name=name, eval_split=sp or None, eval_limit=as_int(n, 0) or None,
            evaluation={"calibration": "content-free" if cal else None}))
        if cfg is None:
            return (problem,) + (gr.skip(),) * 7
        res = evaluate_service.zero_shot(ctx, cfg, progress=lambda d, t: progress(d / max(t, 1),
                                                                                  desc=f"{d}/{t} examples"))
        return _show(res, f"Recorded as run {res.get('run_id')}; see it on the Runs tab.")

    @guard
    def do_cell(run_id: Any, g: str, p: str, pj: str | None = None) -> str:
        if run_id is None:
            return info_html("Evaluate first, then pick a cell.")
        res = evaluate_service.cell_examples(ctx.scoped(pj), run_id, g, p)
        return error_html(res) if "error" in res else cell_html(res)

    @guard
    def from_click(run_id: Any, value: str, pj: str | None = None) -> tuple[Any, Any, str]:
        parts = (value or "").split("|")
        if len(parts) < 2:
            return gr.skip(), gr.skip(), gr.skip()
        return parts[0], parts[1], do_cell(run_id, parts[0], parts[1], pj)

    @guard
    def refresh_targets(sel: dict[str, Any], pj: str | None = None) -> tuple[Any, Any]:
        finished = runs_service.choices(ctx.scoped(pj), status="succeeded")
        from backend.services import data as data_service

        splits = data_service.splits(ctx, sel.get("source", "")) if sel else []
        return (gr.Dropdown(choices=[CURRENT] + finished),
                gr.Dropdown(choices=splits, value=sel.get("split") if sel else None))

    go_btn.click(do_eval, [target, split, sample, calibrate, shared.template_text, shared.label_words,
                           shared.data_sel, shared.max_length, shared.truncate, shared.template_name,
                           shared.project], outputs, api_name="evaluate", show_progress_on=[msg])
    show_btn.click(do_cell, [current_run, gold, pred, shared.project], [cell_out], api_name="cell_examples")
    cell.change(from_click, [current_run, cell, shared.project], [gold, pred, cell_out], api_visibility="private")
    targets_in = [shared.data_sel, shared.project]
    target.focus(refresh_targets, targets_in, [target, split], api_visibility="private")
    shared.data_sel.change(refresh_targets, targets_in, [target, split], api_visibility="private")
    shared.on_load.append((refresh_targets, targets_in, [target, split]))
