"""The Compare tab's soft-prompt tools: an inspector of trained soft tokens (nearest vocabulary rows,
drift from the start), and soft-prompt ensembles (Lester et al.) as a job whose run the Playground serves."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import workbench
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import JOB_POLL_S, as_int, cancel_handler, guard
from studio.views.messages import error_html
from studio.views.workbench import inspect_html, soft_ensemble_job_html



def build(ctx: StudioContext, shared: Shared) -> None:
    with gr.Accordion("Soft-prompt inspector (trained runs)", open=False, elem_id="ps-inspect"):
        with gr.Row():
            insp_a = gr.Number(None, label="Trained run", precision=0, elem_id="ps-inspect-a")
            insp_b = gr.Number(None, label="Beside it (optional)", precision=0, elem_id="ps-inspect-b")
            insp_k = gr.Number(5, label="Nearest tokens", precision=0, minimum=1, maximum=50, elem_id="ps-inspect-k")
            insp_btn = gr.Button("Inspect soft prompts", elem_id="ps-inspect-go")
        insp_out = gr.HTML(elem_id="ps-inspect-out")
    with gr.Accordion("Soft-prompt ensemble (Lester et al.)", open=False, elem_id="ps-softens"):
        with gr.Row():
            se_runs = gr.Textbox(label="Trained soft-prompt runs (ids, comma-separated)", placeholder="12, 15, 17",
                                 elem_id="ps-softens-runs")
            se_how = gr.Radio(["mean", "majority"], value="mean", label="Combine by", elem_id="ps-softens-combine")
            se_btn = gr.Button("Evaluate and record the ensemble", elem_id="ps-softens-go")
            se_job = gr.Number(None, label="Ensemble run #", precision=0, elem_id="ps-softens-job")
            se_cancel = gr.Button("Cancel", variant="stop", elem_id="ps-softens-cancel")
        se_out = gr.HTML(elem_id="ps-softens-out")
    se_timer = gr.Timer(JOB_POLL_S, active=False)

    def ensemble_outputs(res: dict[str, Any]) -> tuple[Any, ...]:
        """A soft-prompt ensemble job's answer -> (its card, job #, its timer)."""
        if "error" in res:
            return error_html(res), gr.skip(), gr.Timer(active=False)
        return soft_ensemble_job_html(res), res["job"], gr.Timer(active=not res["done"])

    @guard
    def do_soft_ensemble(text: str, how: str, pj: str | None = None) -> tuple[Any, ...]:
        parts = [p.strip().lstrip("#") for p in (text or "").replace(";", ",").split(",") if p.strip()]
        bad = [p for p in parts if not p.isdigit()]
        if bad or len(parts) > 16:
            return (error_html({"error": {"message": f"give run ids like '12, 15' ({'not a run id: ' + bad[0][:40] if bad else 'at most 16'})"}}),
                    gr.skip(), gr.skip())
        return ensemble_outputs(workbench.soft_ensemble(ctx.scoped(pj), [int(p) for p in parts], str(how or "mean")))

    @guard
    def do_soft_ensemble_poll(job_id: Any, pj: str | None = None) -> tuple[Any, ...]:
        if job_id is None:
            return "", gr.skip(), gr.Timer(active=False)
        return ensemble_outputs(workbench.soft_ensemble_job(ctx.scoped(pj), as_int(job_id, 0)))

    do_soft_ensemble_cancel = cancel_handler(ctx, workbench.cancel_soft_ensemble, "soft-prompt ensemble")

    @guard
    def do_soft_ensemble_load(pj: str | None = None) -> tuple[Any, ...]:
        latest = workbench.latest_soft_ensemble(ctx.scoped(pj))
        if latest is None:
            return "", gr.skip(), gr.Timer(active=False)
        return ensemble_outputs(workbench.soft_ensemble_job(ctx.scoped(pj), latest))

    @guard
    def do_inspect(a: Any, b: Any, k: Any, pj: str | None = None) -> str:
        ids = [as_int(x, 0) for x in (a, b) if x is not None]
        res = workbench.inspect_soft(ctx.scoped(pj), ids, as_int(k, 5))
        return error_html(res) if "error" in res else inspect_html(res)
    insp_btn.click(do_inspect, [insp_a, insp_b, insp_k, shared.project], [insp_out], api_name="inspect_soft_prompts")
    se_outputs = [se_out, se_job, se_timer]
    se_btn.click(do_soft_ensemble, [se_runs, se_how, shared.project], se_outputs, api_name="soft_prompt_ensemble")
    se_job.submit(do_soft_ensemble_poll, [se_job, shared.project], se_outputs, api_visibility="private")
    se_timer.tick(do_soft_ensemble_poll, [se_job, shared.project], se_outputs, api_name="soft_ensemble_status",
                  show_progress="hidden")
    se_cancel.click(do_soft_ensemble_cancel, [se_job, shared.project], [se_out], api_name="soft_ensemble_cancel")
    shared.on_load.append((do_soft_ensemble_load, [shared.project], se_outputs))
