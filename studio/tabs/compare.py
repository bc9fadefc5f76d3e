"""Compare tab: several templates and label-word sets scored on the same dev rows as one job (queued,
progress, cancel; a refreshed page picks it up again), side by side with paired intervals and McNemar's
test against a baseline; template ensembles fitted on the training rows, each recorded as a run; the
rows where two runs disagree, down to both prompts' tokens for one row; one click to make a row the
current template and label words. Below it, the searches (``studio.tabs.compare_searches``) and the
soft-prompt tools (``studio.tabs.compare_soft``)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import workbench
from backend.services.context import StudioContext
from backend.workbench.ensemble import KINDS
from studio.shared import Shared
from studio.tabs import compare_searches, compare_soft
from studio.tabs.common import JOB_POLL_S, as_int, cancel_handler, guard
from studio.views.messages import error_html, info_html
from studio.views.tokens import example_html
from studio.views.workbench import COMPARE_HEADERS, compare_rows, ensembles_html, flip_row_html, flips_html, progress_html

HELP = ("Pick saved versions (or the editors' drafts) on both sides: every template is scored with every set "
        "of label words on **the same dev rows**, one forward pass per template, as one job (it runs in the "
        "background; leave or refresh the page, it keeps going). Intervals are 95%: Wilson for accuracy, bootstrap "
        "for macro-F1; *p* is McNemar's exact test against the baseline row, uncorrected (Holm's adjusted p "
        "beside it: with many rows, some p < 0.05 come by chance). Each combination is recorded as a run, grouped by a "
        "tag; ticked ensembles are fitted on the **training** rows and recorded as runs the Playground serves.")


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown(HELP)
    with gr.Row():
        templates = gr.Dropdown([workbench.DRAFT], value=[workbench.DRAFT], multiselect=True,
                                label="Templates", elem_id="ps-cmp-templates")
        words = gr.Dropdown([workbench.DRAFT], value=[workbench.DRAFT], multiselect=True,
                            label="Label words", elem_id="ps-cmp-words")
    with gr.Row():
        baseline = gr.Number(1, label="Baseline row (#)", precision=0, minimum=1, elem_id="ps-cmp-baseline")
        limit = gr.Number(0, label="Dev rows (0 = all)", precision=0, minimum=0, elem_id="ps-cmp-limit")
        ensembles = gr.CheckboxGroup(list(KINDS), value=[], label="Ensembles (fitted on the training rows)",
                                     elem_id="ps-cmp-ensembles")
    with gr.Row():
        refresh = gr.Button("Refresh saved versions", elem_id="ps-cmp-refresh")
        go = gr.Button("Compare", variant="primary", elem_id="ps-cmp-go")
        job = gr.Number(None, label="Comparison #", precision=0, elem_id="ps-cmp-job")
        cancel = gr.Button("Cancel", variant="stop", elem_id="ps-cmp-cancel")
    msg = gr.HTML(elem_id="ps-cmp-msg")
    table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, wrap=True, elem_id="ps-cmp-table")
    ens_out = gr.HTML(elem_id="ps-cmp-ensembles-html")
    with gr.Row():
        use_row = gr.Number(1, label="Row (#) to use", precision=0, minimum=1, elem_id="ps-cmp-use-row")
        use_btn = gr.Button("Use as the current template + label words", elem_id="ps-cmp-use")
    with gr.Row():
        run_a = gr.Number(None, label="Run A", precision=0, elem_id="ps-cmp-run-a")
        run_b = gr.Number(None, label="Run B", precision=0, elem_id="ps-cmp-run-b")
        flips_btn = gr.Button("Rows where they disagree", elem_id="ps-cmp-flips")
    flips_out = gr.HTML(elem_id="ps-cmp-flips-out")
    with gr.Row():
        flip_index = gr.Number(None, label="Row to open in both prompts", precision=0, elem_id="ps-cmp-flip-index")
        flip_btn = gr.Button("Show both token views", elem_id="ps-cmp-flip-show")
    flip_out = gr.HTML(elem_id="ps-cmp-flip-row")
    last = gr.State({})
    timer = gr.Timer(JOB_POLL_S, active=False)

    @guard
    def do_refresh(picked_t: list[Any], picked_w: list[Any], pj: str | None = None) -> tuple[Any, Any]:
        res = workbench.saved_prompts(ctx.scoped(pj))   # the session's project's versions only
        if "error" in res:
            return gr.skip(), gr.skip()
        t_choices = [workbench.DRAFT, *res["templates"]]
        w_choices = [workbench.DRAFT, *res["label_words"]]
        return (gr.Dropdown(choices=t_choices, value=[p for p in picked_t or [] if p in t_choices]),
                gr.Dropdown(choices=w_choices, value=[p for p in picked_w or [] if p in w_choices]))

    @guard
    def do_compare(picked_t: list[Any], picked_w: list[Any], base: Any, lim: Any, ens: list[Any], draft_t: str,
                   draft_w: str, sel: dict[str, Any], max_len: Any, trunc: str,
                   pj: str | None = None) -> tuple[str, Any, Any]:
        here = ctx.scoped(pj)
        saved = workbench.saved_prompts(here)
        if "error" in saved:
            return error_html(saved), gr.skip(), gr.skip()
        t_texts = workbench.resolve([str(p) for p in picked_t or []], saved["templates"], draft_t or "")
        w_texts = workbench.resolve([str(p) for p in picked_w or []], saved["label_words"], draft_w or "")
        res = workbench.compare(here, templates=t_texts, label_words=w_texts, selection=sel, max_length=max_len,
                                truncate=trunc, baseline=as_int(base, 1) - 1, limit=as_int(lim, 0) or None,
                                ensembles=[str(k) for k in ens or []])
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip()
        return progress_html(res), res["job"], gr.Timer(active=True)

    @guard
    def do_poll(job_id: Any, pj: str | None = None) -> tuple[Any, ...]:
        """The job's state; once it finished, its table, ensembles and a default pair for the flips."""
        if job_id is None:
            return ("", *[gr.skip()] * 5, gr.Timer(active=False))
        res = workbench.comparison(ctx.scoped(pj), as_int(job_id, 0))
        if "error" in res:
            return (error_html(res), *[gr.skip()] * 5, gr.Timer(active=False))
        if not res["done"] or res["result"] is None:
            return (progress_html(res), *[gr.skip()] * 5, gr.Timer(active=not res["done"]))
        out = res["result"]
        ids = [r["run_id"] for r in out["rows"]]
        other = ids[0] if out["baseline"] else ids[-1]
        return (progress_html(res), compare_rows(out), out, ids[out["baseline"]], other, ensembles_html(out),
                gr.Timer(active=False))

    do_cancel = cancel_handler(ctx, workbench.cancel_comparison, "comparison")

    @guard
    def do_use(res: dict[str, Any], row: Any) -> tuple[Any, Any, str]:
        rows = (res or {}).get("rows") or []
        i = as_int(row, 1) - 1
        if not 0 <= i < len(rows):
            return gr.skip(), gr.skip(), error_html({"error": {"message": "run a comparison, then pick one of "
                                                                         "its rows by its #"}})
        r = rows[i]
        return (res["templates"][r["template"]], res["label_words"][r["label_words"]],
                info_html(f"Row {i + 1} is now the current template and label words (not saved yet)."))

    def on_row(evt: gr.SelectData) -> tuple[Any, Any]:
        """A click on a table row picks it: as the row to adopt (its #) and as run B of the flips (its run)."""
        row = evt.row_value or []
        try:
            return int(row[0]), int(row[1])
        except (IndexError, TypeError, ValueError):
            return gr.skip(), gr.skip()

    @guard
    def do_flips(a: Any, b: Any, pj: str | None = None) -> str:
        if a is None or b is None:
            return error_html({"error": {"message": "give two run ids (e.g. two rows of the comparison)"}})
        res = workbench.flips(ctx.scoped(pj), as_int(a, 0), as_int(b, 0))
        return error_html(res) if "error" in res else flips_html(res)

    @guard
    def do_flip_row(a: Any, b: Any, index: Any, pj: str | None = None) -> str:
        if a is None or b is None or index is None:
            return error_html({"error": {"message": "give two run ids and a row number from the flips above"}})
        res = workbench.flip_row(ctx.scoped(pj), as_int(a, 0), as_int(b, 0), as_int(index, 0))
        return error_html(res) if "error" in res else flip_row_html(res, example_html)
    @guard
    def do_load(pj: str | None = None) -> tuple[Any, Any]:
        latest = workbench.latest_comparison(ctx.scoped(pj))
        return (latest, gr.Timer(active=True)) if latest is not None else (gr.skip(), gr.Timer(active=False))
    poll_outputs = [msg, table, last, run_a, run_b, ens_out, timer]
    refresh.click(do_refresh, [templates, words, shared.project], [templates, words], api_name="compare_choices")
    go.click(do_compare, [templates, words, baseline, limit, ensembles, shared.template_text, shared.label_words,
                          shared.data_sel, shared.max_length, shared.truncate, shared.project], [msg, job, timer],
             api_name="compare_prompts")
    job.submit(do_poll, [job, shared.project], poll_outputs, api_visibility="private")
    timer.tick(do_poll, [job, shared.project], poll_outputs, api_name="compare_status", show_progress="hidden")
    cancel.click(do_cancel, [job, shared.project], [msg], api_name="compare_cancel")
    use_btn.click(do_use, [last, use_row], [shared.template_text, shared.label_words, msg], api_name="compare_use")
    flips_btn.click(do_flips, [run_a, run_b, shared.project], [flips_out], api_name="flips")
    table.select(on_row, None, [use_row, run_b], api_visibility="private")
    flip_btn.click(do_flip_row, [run_a, run_b, flip_index, shared.project], [flip_out], api_name="flip_row")
    shared.on_load.append((do_refresh, [templates, words, shared.project], [templates, words]))
    shared.on_load.append((do_load, [shared.project], [job, timer]))
    shared.project.change(do_refresh, [templates, words, shared.project], [templates, words],
                          api_visibility="private")
    compare_searches.build(ctx, shared, words=words, job=job, timer=timer)
    compare_soft.build(ctx, shared)
