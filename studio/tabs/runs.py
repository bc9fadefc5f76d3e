"""Runs tab: every run with filters; compare several (overlaid curves, config differences, metrics);
open one (config, versions, metrics, predictions, artifacts with sha256); bundles; re-run with changes."""
from __future__ import annotations

import json
from typing import Any

import gradio as gr

from backend.services import runs as runs_service
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import guard
from studio.views.messages import error_html, info_html
from studio.views.plots import curves, empty
from studio.views.runs import RUN_COLUMNS, config_diff_html, detail_html, metric_table_html, runs_frame_rows

STATUSES = [("all", ""), "queued", "running", "succeeded", "failed", "cancelled"]


def build(ctx: StudioContext, shared: Shared) -> dict[str, Any]:
    with gr.Row():
        status = gr.Dropdown(STATUSES, value="", label="Status", elem_id="ps-runs-status")
        method = gr.Dropdown([("all", "")], value="", label="Method", allow_custom_value=True,
                             elem_id="ps-runs-method")
        text = gr.Textbox(label="Name, tag or id contains", elem_id="ps-runs-text")
        refresh = gr.Button("Refresh", elem_id="ps-runs-refresh")
    table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, elem_id="ps-runs-table", max_height=360)
    with gr.Tabs():
        with gr.Tab("Compare"):
            with gr.Row():
                picked = gr.Dropdown([], allow_custom_value=True, multiselect=True, label="Runs to compare",
                                     elem_id="ps-compare-runs",
                                     scale=3)
                metric = gr.Dropdown([], allow_custom_value=True, multiselect=True, label="Curves", scale=2)
                compare_btn = gr.Button("Compare", elem_id="ps-compare", scale=1)
            compare_msg = gr.HTML()
            compare_plot = gr.Plot(empty("Pick two or more runs"), label="Curves, overlaid", elem_id="ps-compare-plot")
            with gr.Row():
                diff_out = gr.HTML(elem_id="ps-compare-diff")
                metrics_out = gr.HTML(elem_id="ps-compare-metrics")
        with gr.Tab("Open a run"):
            with gr.Row():
                one = gr.Dropdown([], allow_custom_value=True, label="Run", elem_id="ps-open-run", scale=3)
                open_btn = gr.Button("Open", elem_id="ps-open", scale=1)
                export_btn = gr.Button("Export bundle", scale=1, elem_id="ps-export")
            detail = gr.HTML(elem_id="ps-run-detail")
            run_plot = gr.Plot(label="This run's curves", elem_id="ps-run-curves")
            bundle = gr.File(label="Bundle", interactive=False, elem_id="ps-bundle")
            with gr.Accordion("Re-run with changes", open=False):
                config = gr.Code(language="json", label="Config (edit, then submit)", elem_id="ps-rerun-config")
                rerun_btn = gr.Button("Submit as a new run", variant="primary", elem_id="ps-rerun")
                rerun_msg = gr.HTML(elem_id="ps-rerun-msg")
                opened = gr.State(None)   # the run whose config is in the box: the re-run's parent
        with gr.Tab("Import a bundle"):
            upload = gr.File(label="Run bundle (.zip)", file_types=[".zip"], type="filepath")
            import_btn = gr.Button("Import", elem_id="ps-import")
            import_msg = gr.HTML(elem_id="ps-import-msg")

    @guard
    def do_refresh(st: str, me: str, tx: str, pj: str | None = None) -> tuple[Any, ...]:
        here = ctx.scoped(pj)   # only this session's project's runs
        res = runs_service.table(here, st or None, me or None, tx or "")
        rows = [] if "error" in res else res["runs"]
        labels = runs_service.choices(here)
        methods = sorted({r["method"] for r in rows})
        return (runs_frame_rows(rows), gr.Dropdown(choices=labels), gr.Dropdown(choices=labels),
                gr.Dropdown(choices=[("all", "")] + methods))

    @guard
    def do_compare(labels: list[str], keys: list[str], pj: str | None = None) -> tuple[Any, ...]:
        ids = [runs_service.run_id_of(x) for x in labels or []]
        res = runs_service.compare(ctx.scoped(pj), ids)
        if "error" in res:
            return error_html(res), gr.skip(), "", "", gr.skip()
        all_keys = sorted({k for c in res["curves"].values() for k in c})
        chosen = [k for k in keys or [] if k in all_keys] or \
            [k for k in all_keys if "loss" in k or "accuracy" in k][:2]
        pts = {run: {k: [tuple(p) for p in v] for k, v in c.items()} for run, c in res["curves"].items()}
        fig = curves(pts, chosen) if all_keys else empty("These runs have no metric events yet")
        return "", fig, config_diff_html(res), metric_table_html(res), gr.Dropdown(choices=all_keys, value=chosen)

    @guard
    def do_open(label: str, pj: str | None = None) -> tuple[Any, ...]:
        if not label:
            return info_html("Pick a run."), gr.skip(), gr.skip(), gr.skip()
        res = runs_service.detail(ctx.scoped(pj), runs_service.run_id_of(label))
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip(), gr.skip()
        pts = {f"#{res['run']['id']}": {k: [tuple(p) for p in v] for k, v in res["curves"].items()}}
        metric = ((res["config"] or {}).get("train") or {}).get("metric") or "accuracy"   # the best step's
        fig = curves(pts, best_key=f"eval/{metric}") if res["curves"] else empty("No metric events")
        return detail_html(res), fig, json.dumps(res["config"], indent=2, ensure_ascii=False), res["run"]["id"]

    @guard
    def do_export(label: str, pj: str | None = None) -> tuple[Any, str]:
        if not label:
            return None, info_html("Pick a run first.")
        res = runs_service.export_bundle(ctx.scoped(pj), runs_service.run_id_of(label))
        if "error" in res:
            return None, error_html(res)
        return res["path"], info_html(f"Bundle written ({res['size']:,} bytes).", "ok")

    @guard
    def do_import(path: str | None) -> str:
        if not path:
            return info_html("Choose a bundle file first.")
        res = runs_service.import_bundle(ctx, path)
        return error_html(res) if "error" in res else info_html(f"Imported as run #{res['run_id']}.", "ok")

    @guard
    def do_rerun(text: str, parent: int | None = None, pj: str | None = None) -> str:
        from backend.services import training as training_service

        res = training_service.submit_json(ctx.scoped(pj), text or "", parent)
        return error_html(res) if "error" in res else info_html(res["message"], "ok")

    filters = [status, method, text, shared.project]
    refresh_outputs = [table, picked, one, method]
    refresh.click(do_refresh, filters, refresh_outputs, api_name="runs")
    for f in (status, text):
        f.change(do_refresh, filters, refresh_outputs, api_visibility="private", show_progress="hidden")
    compared = [compare_msg, compare_plot, diff_out, metrics_out, metric]
    compare_btn.click(do_compare, [picked, metric, shared.project], compared, api_name="compare")
    # .input, not .change: Compare sets this picker itself, which must not run the comparison a second time
    metric.input(do_compare, [picked, metric, shared.project], compared, api_visibility="private",
                 trigger_mode="always_last")
    open_btn.click(do_open, [one, shared.project], [detail, run_plot, config, opened], api_name="open_run")
    export_btn.click(do_export, [one, shared.project], [bundle, detail], api_name="export_bundle")
    import_btn.click(do_import, [upload], [import_msg], api_name="import_bundle") \
        .then(do_refresh, filters, refresh_outputs, api_visibility="private")
    rerun_btn.click(do_rerun, [config, opened, shared.project], [rerun_msg], api_name="rerun") \
        .then(do_refresh, filters, refresh_outputs, api_visibility="private")
    shared.on_load.append((do_refresh, filters, refresh_outputs))
    shared.project.change(do_refresh, filters, refresh_outputs, api_visibility="private")
    return {"refresh": do_refresh, "filters": filters, "outputs": refresh_outputs}
