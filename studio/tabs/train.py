"""Train tab: method picker with per-method options, a cost card, "copy as command", one-click start,
live progress (bar, ETA, loss and eval curves, log) polled from storage, cancel, resume, the queue."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import runconfig
from backend.services import runs as runs_service
from backend.services import cost as cost_service
from backend.services import training as training_service
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import as_int, code_view, config_or_message, cost_estimate, guard
from studio.views.messages import error_html, info_html
from studio.views.plots import DEFAULT_SMOOTHING, as_smoothing, curves, empty
from studio.views.training import cost_card, log_html, progress_html, queue_html

POLL_S = 1.0


def _option_input(opt: dict[str, Any], method: str) -> Any:
    """One widget for one option, from its schema (``backend.methods.base.Method.describe``): a dropdown
    for choices, a checkbox for true/false, a number box holding the range, text otherwise (lists are
    comma-separated); the human label with the config key, the help as info text."""
    label = f"{opt['label']} ({opt['key']})"
    common = {"label": label, "info": opt["help"] or None, "elem_id": f"ps-opt-{method}-{opt['key']}"}
    if opt.get("choices") is not None:
        return gr.Dropdown(list(opt["choices"]), value=opt["default"], **common)
    if opt["type"] == "bool":
        return gr.Checkbox(bool(opt["default"]), **common)
    if opt["type"] in ("int", "float"):
        low = opt.get("min", opt.get("gt"))         # the box stops at the bound; parsing refuses an exclusive one
        high = opt.get("max", opt.get("lt"))
        return gr.Number(opt["default"], precision=0 if opt["type"] == "int" else None, minimum=low, maximum=high,
                         **common)
    default = ", ".join(opt["default"]) if isinstance(opt["default"], list) else (opt["default"] or "")
    return gr.Textbox(default, placeholder="empty: the default", **common)


def _option_rows(method: dict[str, Any]) -> list[tuple[str, Any]]:
    """The method's option widgets: its own, then the common ones, each in a row; the advanced ones
    folded away in an accordion. Returns (option key, component) in the schema's order of creation."""
    made = []
    plain = [o for o in method["options"] if not o["advanced"]]
    advanced = [o for o in method["options"] if o["advanced"]]
    for row in ([o for o in plain if not o["common"]], [o for o in plain if o["common"]]):
        if row:
            with gr.Row():
                made += [(o["key"], _option_input(o, method["name"])) for o in row]
    if advanced:
        with gr.Accordion("Advanced options", open=False):
            with gr.Row():
                made += [(o["key"], _option_input(o, method["name"])) for o in advanced]
    return made


def build(ctx: StudioContext, shared: Shared) -> None:
    catalogue = training_service.methods()
    labels = [(m["label"], m["name"]) for m in catalogue]
    d = training_service.DEFAULT_TRAIN
    with gr.Row():
        with gr.Column(scale=5):
            method = gr.Dropdown(labels, value=training_service.DEFAULT_METHOD, label="Method",
                                 elem_id="ps-train-method")
            groups, option_inputs = [], []
            for m in catalogue:
                with gr.Group(visible=m["name"] == training_service.DEFAULT_METHOD) as group:
                    gr.Markdown(f"{m['description'] or m['label']} · default learning rate {m['default_lr']:g}")
                    option_inputs += [(m["name"], key, c) for key, c in _option_rows(m)]
                groups.append(group)
            with gr.Row():
                steps = gr.Number(d["steps"], label="Steps", precision=0, minimum=1, elem_id="ps-train-steps")
                batch = gr.Number(d["batch_size"], label="Batch size", precision=0, minimum=1)
                lr = gr.Number(0, label="Learning rate (0: the method's default)", minimum=0,
                               elem_id="ps-train-lr")
                eval_every = gr.Number(d["eval_every"], label="Evaluate every N steps", precision=0, minimum=1,
                                       elem_id="ps-train-eval-every")
            with gr.Row():
                train_split = gr.Dropdown([], value=None, label="Train split", allow_custom_value=True,
                                          elem_id="ps-train-split")
                eval_split = gr.Dropdown([], value=None, label="Dev split", allow_custom_value=True,
                                         elem_id="ps-train-dev-split")
                eval_limit = gr.Number(0, label="Dev examples per evaluation (0 = all)", precision=0, minimum=0)
            with gr.Row():
                cost_btn = gr.Button("Estimate cost", elem_id="ps-train-cost")
                cmd_btn = gr.Button("Copy as command", elem_id="ps-train-cmd")
                start_btn = gr.Button("Start training", variant="primary", elem_id="ps-train-start")
            msg = gr.HTML(elem_id="ps-train-msg")
            cost = gr.HTML(elem_id="ps-train-cost-card")
            command = gr.Code(language="shell", label="CLI command (with its config)", visible=False,
                              elem_id="ps-train-command")
        with gr.Column(scale=6):
            with gr.Row():
                watched = gr.Dropdown([], label="Showing run", allow_custom_value=True, elem_id="ps-train-run",
                                      scale=3)
                cancel_btn = gr.Button("Cancel", elem_id="ps-train-cancel", scale=1)
                resume_btn = gr.Button("Resume", elem_id="ps-train-resume", scale=1)
            status = gr.HTML(elem_id="ps-train-progress")
            plot = gr.Plot(empty("Start a run to see its curves"), label="Loss and dev metrics",
                           elem_id="ps-train-curves")
            smoothing = gr.Slider(0, 0.95, value=DEFAULT_SMOOTHING, step=0.05, label="Loss smoothing",
                                  info="moving average of the loss; 0 shows the raw values only",
                                  elem_id="ps-train-smoothing")
            with gr.Accordion("Log", open=False):
                log = gr.HTML(elem_id="ps-train-log")
            queue = gr.HTML(elem_id="ps-train-queue")
    timer = gr.Timer(POLL_S, active=False)
    option_components = [c for _, _, c in option_inputs]

    def _config(meth: str, opt_values: list[Any], st: Any, bs: Any, lr_: Any, ev: Any, tsp: Any,
                esp: Any, elim: Any, template: str, words: str, sel: dict[str, Any], max_len: Any, trunc: str,
                name: str, pj: str | None = None) -> Any:
        raw = {key: v for (m, key, _), v in zip(option_inputs, opt_values) if m == meth}
        train = {"steps": as_int(st, d["steps"]), "batch_size": as_int(bs, d["batch_size"]),
                 "eval_every": as_int(ev, 0) or None,   # the seed is the project's one seed (Data tab)
                 "eval_limit": as_int(elim, 0) or None}
        if lr_:
            train["lr"] = float(lr_)
        return runconfig.build(ctx.scoped(pj), template=template or "", label_words=words or "", selection=sel,
                               max_length=max_len, truncate=trunc, name=name, method=meth,
                               options=training_service.option_values(meth, raw), train=train,
                               train_split=tsp or None, eval_split=esp or None)

    config_inputs = [method, *option_components, steps, batch, lr, eval_every, train_split, eval_split,
                     eval_limit, shared.template_text, shared.label_words, shared.data_sel, shared.max_length,
                     shared.truncate, shared.template_name, shared.project]   # the session's project: last
    n_opts = len(option_components)

    def _split_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0], list(args[1:1 + n_opts])) + tuple(args[1 + n_opts:])

    def _try_config(args: tuple[Any, ...]) -> tuple[Any, str]:
        return config_or_message(lambda: _config(*_split_args(args)))

    @guard
    def do_cost(*args: Any) -> tuple[str, str]:
        return cost_estimate(ctx, lambda: _try_config(args), lambda cfg: cost_service.plan(ctx, cfg), cost_card)

    @guard
    def do_command(*args: Any) -> tuple[str, Any]:
        return code_view(_try_config(args), lambda cfg: training_service.command(ctx, cfg))

    @guard
    def do_start(*args: Any) -> tuple[Any, ...]:
        cfg, problem = _try_config(args)
        if cfg is None:
            return problem, gr.skip(), gr.skip()
        res = training_service.submit(ctx, cfg)
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip()
        here = ctx.scoped(args[-1])
        label = _label_for(res["run_id"], here)
        return (info_html(res["message"], "ok"), gr.Dropdown(choices=_run_choices(here), value=label),
                gr.Timer(active=True))

    def _run_choices(here: StudioContext = ctx) -> list[str]:
        return runs_service.choices(here, with_status=False, trained_only=True)

    def _label_for(run_id: int, here: StudioContext = ctx) -> str:
        return next((c for c in _run_choices(here) if runs_service.run_id_of(c) == run_id), f"#{run_id}")

    @guard
    def do_poll(label: str, smooth: Any = DEFAULT_SMOOTHING, pj: str | None = None) -> tuple[Any, ...]:
        here = ctx.scoped(pj)   # the session's project: its runs only
        q = queue_html(training_service.queue(here))
        if not label:
            return "", gr.skip(), "", q, gr.Timer(active=False)
        res = training_service.progress(here, runs_service.run_id_of(label))
        if "error" in res:
            return error_html(res), gr.skip(), "", q, gr.Timer(active=False)
        pts = {k: [tuple(p) for p in v] for k, v in res["curves"].items()}
        fig = curves({"run": pts}, smoothing=as_smoothing(smooth), best_key=f"eval/{res['metric']}") if pts \
            else empty("Waiting for the first training step...")
        return progress_html(res), fig, log_html(res), q, gr.Timer(active=not res["done"])

    @guard
    def do_cancel(label: str, pj: str | None = None) -> str:
        if not label:
            return info_html("No run selected.")
        res = training_service.cancel(ctx.scoped(pj), runs_service.run_id_of(label))
        return error_html(res) if "error" in res else info_html(res["message"], "ok")

    @guard
    def do_resume(label: str, pj: str | None = None) -> tuple[Any, ...]:
        if not label:
            return info_html("No run selected."), gr.skip(), gr.skip()
        here = ctx.scoped(pj)
        res = training_service.resume(here, runs_service.run_id_of(label))
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip()
        return (info_html(res["message"], "ok"),
                gr.Dropdown(choices=_run_choices(here), value=_label_for(res["run_id"], here)), gr.Timer(active=True))

    @guard
    def on_open(sel: dict[str, Any], pj: str | None = None) -> tuple[Any, ...]:
        from backend.services import data as data_service

        here = ctx.scoped(pj)   # the session's project: its runs only
        splits = data_service.splits(ctx, sel.get("source", "")) if sel else []
        current = training_service.latest_training_run(here)
        train_default = "train" if "train" in splits else (splits[0] if splits else None)
        dev_default = sel.get("split") if sel and sel.get("split") in splits else (splits[-1] if splits else None)
        return (gr.Dropdown(choices=_run_choices(here), value=_label_for(current, here) if current else None),
                gr.Dropdown(choices=splits, value=train_default), gr.Dropdown(choices=splits, value=dev_default))

    def show_options(meth: str) -> list[Any]:
        return [gr.Group(visible=m["name"] == meth) for m in catalogue]

    poll_outputs = [status, plot, log, queue, timer]
    polled = [watched, smoothing, shared.project]
    method.change(show_options, [method], groups, api_visibility="private", queue=False)
    cost_btn.click(do_cost, config_inputs, [msg, cost], api_name="estimate_cost")
    cmd_btn.click(do_command, config_inputs, [msg, command], api_name="copy_command")
    start_btn.click(do_start, config_inputs, [msg, watched, timer], api_name="start_training") \
        .then(do_poll, polled, poll_outputs, api_visibility="private")
    watched.change(do_poll, polled, poll_outputs, api_name="train_progress")
    smoothing.release(do_poll, polled, poll_outputs, api_visibility="private")
    timer.tick(do_poll, polled, poll_outputs, api_visibility="private", show_progress="hidden")
    cancel_btn.click(do_cancel, [watched, shared.project], [msg], api_name="cancel_training") \
        .then(do_poll, polled, poll_outputs, api_visibility="private")
    resume_btn.click(do_resume, [watched, shared.project], [msg, watched, timer], api_name="resume_training")
    # the Evaluate tab's "Train this prompt": this tab's settings start the run, and the page comes here
    shared.train_now.click(do_start, config_inputs, [msg, watched, timer], api_visibility="private") \
        .then(do_poll, polled, poll_outputs, api_visibility="private")
    if shared.tabs is not None:
        shared.train_now.click(lambda: gr.Tabs(selected="train"), None, [shared.tabs], queue=False,
                               api_visibility="private")
    opened = [shared.data_sel, shared.project]
    shared.data_sel.change(on_open, opened, [watched, train_split, eval_split], api_visibility="private")
    shared.project.change(on_open, opened, [watched, train_split, eval_split], api_visibility="private")
    shared.on_load.append((on_open, opened, [watched, train_split, eval_split]))

    from studio.tabs import sweep as sweep_tab      # the sweep designer varies this tab's configuration

    sweep_tab.build(ctx, shared, config_inputs, lambda *args: _config(*_split_args(args)))
