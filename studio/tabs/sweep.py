"""The sweep designer and the live sweep table, in an accordion on the Train tab.

The designer varies the Train tab's configuration (methods, their options, shots, learning rates,
templates, label words, seeds; a random sample; ASHA on or off); its cost card prices the whole sweep before it
starts; one click queues it. The table (mean ± std per configuration, best first) and the Pareto plot
are rebuilt from storage; they poll with a timer that runs only while a run of the sweep is queued or
running (the Train tab's mechanism), so an idle page does no work. A row or a plot point picks a
configuration: its runs, stop it, or train it once more on all the data.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from backend.services import sweeps as sweep_service
from backend.services import training as training_service
from backend.services.context import StudioContext
from studio.tabs.common import code_view, config_or_message, cost_estimate, guard
from studio.views.messages import error_html, info_html
from studio.views.plots import empty
from studio.views.sweep import (AXES, TABLE_COLUMNS, configuration_html, cost_html, pareto_figure, status_html,
                                table_headers, table_rows)

POLL_S = 2.0
# A click on a point of the Pareto plot puts its configuration's key into the configuration box (one
# listener for the page, installed once; it reads the point plotly is hovering, which a click is on).
CLICK_JS = """
() => {
  if (window.__psSweepClick) return [];
  window.__psSweepClick = true;
  document.addEventListener('click', (event) => {
    if (!event.target.closest || !event.target.closest('#ps-sweep-pareto')) return;
    const gd = document.querySelector('#ps-sweep-pareto .js-plotly-plot');
    const point = gd && gd._hoverdata && gd._hoverdata[0];
    if (!point || point.customdata === undefined) return;
    const box = document.querySelector('#ps-sweep-key textarea, #ps-sweep-key input');
    if (!box) return;
    box.value = String(point.customdata);
    box.dispatchEvent(new Event('input', {bubbles: true}));
  }, true);
  return [];
}
"""


def build(ctx: StudioContext, shared: Any, config_inputs: list[Any], make_config: Callable[..., Any]) -> None:
    """``make_config(*values of config_inputs)``: the Train tab's RunConfig, which the sweep varies."""
    methods = [(m["label"], m["name"]) for m in training_service.methods()]
    with gr.Accordion("Sweep: methods x options x shots x learning rates x seeds", open=False, elem_id="ps-sweep"):
        with gr.Row():
            name = gr.Textbox(label="Sweep name", placeholder="empty: sweep-<date>-<time>", elem_id="ps-sweep-name")
            chosen = gr.Dropdown(methods, value=[training_service.DEFAULT_METHOD], multiselect=True, label="Methods",
                                 elem_id="ps-sweep-methods")
            seeds = gr.Textbox("13, 21, 42", label="Seeds (each: the K-shot sample and the training)",
                               elem_id="ps-sweep-seeds")
        with gr.Row():
            lrs = gr.Textbox(label="Learning rates", placeholder="e.g. 1e-3, 3e-3 (empty: each method's default)",
                             elem_id="ps-sweep-lrs")
            shots = gr.Textbox(label="Shots per class (K)", placeholder="e.g. 8, 16 (empty: the Data tab's)",
                               elem_id="ps-sweep-shots")
            options = gr.Textbox(label="Method options", placeholder="e.g. r=4,8; num_tokens=10,20 (only where the "
                                 "method has the option)", elem_id="ps-sweep-options")
        with gr.Row():
            templates = gr.Textbox(label="More templates to try (the editor's is always in; separate with a line ---)",
                                   lines=2, elem_id="ps-sweep-templates")
            verbalizers = gr.Textbox(label="More label words to try (the Verbalizer tab's are always in; one line "
                                     "per class, separate sets with a line ---)", lines=2,
                                     placeholder="negative: awful, bad\npositive: great, good",
                                     elem_id="ps-sweep-verbalizers")
        with gr.Row():
            sample = gr.Number(0, label="Random sample: N configurations (0: the whole grid)", precision=0, minimum=0,
                               elem_id="ps-sweep-sample")
            asha = gr.Checkbox(False, elem_id="ps-sweep-asha",
                               label="Early stopping (ASHA): stop poor configurations (all their seeds) at rungs")
            grace = gr.Number(10, label="First rung (steps)", precision=0, minimum=1, elem_id="ps-sweep-grace")
            factor = gr.Number(3, label="Keep 1 in", precision=0, minimum=2, elem_id="ps-sweep-factor")
        with gr.Row():
            cost_btn = gr.Button("Estimate sweep cost", elem_id="ps-sweep-cost")
            spec_btn = gr.Button("Copy as spec", elem_id="ps-sweep-spec-btn")
            start_btn = gr.Button("Start sweep", variant="primary", elem_id="ps-sweep-start")
        msg = gr.HTML(elem_id="ps-sweep-msg")
        cost = gr.HTML(elem_id="ps-sweep-cost-card")
        spec_code = gr.Code(language="yaml", label="Sweep spec (python -m backend sweep SPEC.yaml)", visible=False,
                            elem_id="ps-sweep-spec")
        with gr.Row():
            which = gr.Dropdown([], label="Sweep", allow_custom_value=True, elem_id="ps-sweep-which", scale=3)
            refresh_btn = gr.Button("Refresh", elem_id="ps-sweep-refresh", scale=1)
            csv_btn = gr.Button("Export CSV", elem_id="ps-sweep-csv", scale=1)
        state = gr.HTML(elem_id="ps-sweep-status")
        table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, elem_id="ps-sweep-table", max_height=320)
        axis = gr.Radio([(label, key) for key, label in AXES.items()], value="trainable", label="Pareto: metric against",
                        elem_id="ps-sweep-axis")
        plot = gr.Plot(empty("Start or pick a sweep"), label="Pareto plot", elem_id="ps-sweep-pareto")
        with gr.Row():
            picked = gr.Textbox(label="Configuration (click a table row or a plot point)", elem_id="ps-sweep-key",
                                scale=3)
            stop_btn = gr.Button("Stop this configuration", elem_id="ps-sweep-stop", scale=1)
            all_btn = gr.Button("Train this one on all data", elem_id="ps-sweep-train-all", scale=1)
        action_msg = gr.HTML(elem_id="ps-sweep-action-msg")
        picked_runs = gr.HTML(elem_id="ps-sweep-config")
        csv_file = gr.File(label="Table (CSV)", interactive=False, elem_id="ps-sweep-csv-file")
    timer = gr.Timer(POLL_S, active=False)
    form = [name, chosen, seeds, lrs, shots, options, templates, verbalizers, sample, asha, grace, factor]
    n_cfg = len(config_inputs)

    def _spec(args: tuple[Any, ...]) -> tuple[Any, str]:
        def make() -> Any:
            base = make_config(*args[:n_cfg])
            nm, ms, sd, lr, sh, op, tp, vb, sa, on, gs, rf = args[n_cfg:]
            return sweep_service.form_spec(base, name=nm or "", methods=ms, lrs=lr, shots=sh, seeds=sd, options=op,
                                           templates=tp, verbalizers=vb, sample=sa, asha=bool(on), grace_steps=gs,
                                           reduction_factor=rf)
        return config_or_message(make)

    @guard
    def do_cost(*args: Any) -> tuple[str, str]:
        return cost_estimate(ctx, lambda: _spec(args), lambda spec: sweep_service.plan(ctx, spec), cost_html)

    @guard
    def do_spec(*args: Any) -> tuple[str, Any]:
        return code_view(_spec(args), sweep_service.spec_text)

    @guard
    def do_start(*args: Any) -> tuple[Any, ...]:
        spec, problem = _spec(args)
        if spec is None:
            return problem, gr.skip(), gr.skip()
        here = ctx.scoped(args[n_cfg - 1])   # the session's project: the Train tab's last input
        res = sweep_service.start(here, spec)
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip()
        return (info_html(res["message"], "ok"), gr.Dropdown(choices=sweep_service.names(here), value=res["name"]),
                gr.Timer(active=True))

    @guard
    def do_poll(sweep: str, ax: str, pj: str | None = None) -> tuple[Any, ...]:
        if not sweep:
            return "", [], empty("Start or pick a sweep"), gr.Timer(active=False)
        res = sweep_service.table(ctx.scoped(pj), sweep)
        if "error" in res:
            return error_html(res), [], empty("No table"), gr.Timer(active=False)
        ax = ax if ax in AXES else "trainable"
        fig = pareto_figure(res["rows"], ax, res["fronts"][ax]) if any(r["mean"] is not None for r in res["rows"]) \
            else empty("The plot fills as configurations finish their first seed")
        table_view = gr.Dataframe(value=table_rows(res["rows"]), headers=table_headers(res["rows"]))
        return status_html(res), table_view, fig, gr.Timer(active=res["active"])

    @guard
    def do_refresh(sweep: str, pj: str | None = None) -> Any:
        names = sweep_service.names(ctx.scoped(pj))
        return gr.Dropdown(choices=names, value=sweep if sweep in names else (names[0] if names else None))

    def on_row(evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        return row[1] if len(row) > 1 and isinstance(row[1], str) else gr.skip()

    @guard
    def do_config(sweep: str, key: str, pj: str | None = None) -> str:
        if not sweep or not key:
            return ""
        res = sweep_service.configuration(ctx.scoped(pj), sweep, key.strip())
        return error_html(res) if "error" in res else configuration_html(res)

    @guard
    def do_stop(sweep: str, key: str, pj: str | None = None) -> str:
        res = sweep_service.stop(ctx.scoped(pj), sweep or "", (key or "").strip())
        return error_html(res) if "error" in res else info_html(res["message"], "ok")

    @guard
    def do_all(sweep: str, key: str, pj: str | None = None) -> str:
        res = sweep_service.train_on_all(ctx.scoped(pj), sweep or "", (key or "").strip())
        return error_html(res) if "error" in res else info_html(res["message"], "ok")

    @guard
    def do_csv(sweep: str, pj: str | None = None) -> tuple[Any, str]:
        res = sweep_service.export_csv(ctx.scoped(pj), sweep or "")
        return (None, error_html(res)) if "error" in res else (res["path"], info_html(res["message"], "ok"))

    poll_outputs = [state, table, plot, timer]
    inputs = [*config_inputs, *form]
    pj = shared.project                          # the session's project: every sweep handler works in it
    polled = [which, axis, pj]
    cost_btn.click(do_cost, inputs, [msg, cost], api_name="sweep_cost")
    spec_btn.click(do_spec, inputs, [msg, spec_code], api_name="sweep_spec")
    start_btn.click(do_start, inputs, [msg, which, timer], api_name="start_sweep")
    which.change(do_poll, polled, poll_outputs, api_name="sweep_table")
    axis.change(do_poll, polled, poll_outputs, api_visibility="private")
    refresh_btn.click(do_refresh, [which, pj], [which], api_visibility="private") \
        .then(do_poll, polled, poll_outputs, api_visibility="private")
    pj.change(do_refresh, [which, pj], [which], api_visibility="private")
    timer.tick(do_poll, polled, poll_outputs, api_visibility="private", show_progress="hidden")
    table.select(on_row, None, [picked], api_visibility="private")
    picked.change(do_config, [which, picked, pj], [picked_runs], api_name="sweep_configuration")
    stop_btn.click(do_stop, [which, picked, pj], [action_msg], api_name="stop_sweep_configuration") \
        .then(do_poll, polled, poll_outputs, api_visibility="private") \
        .then(do_config, [which, picked, pj], [picked_runs], api_visibility="private")
    all_btn.click(do_all, [which, picked, pj], [action_msg], api_name="train_sweep_configuration")
    csv_btn.click(do_csv, [which, pj], [csv_file, action_msg], api_name="sweep_csv")
    plot.change(None, None, None, js=CLICK_JS, api_visibility="private")
    shared.on_load.append((do_refresh, [which, pj], [which]))
