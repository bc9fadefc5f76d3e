"""Compare tab: several templates and label-word sets scored on the same dev rows as one job (queued,
progress, cancel; a refreshed page picks it up again), side by side with paired intervals and McNemar's
test against a baseline; template ensembles fitted on the training rows, each recorded as a run; the
rows where two runs disagree, down to both prompts' tokens for one row; one click to make a row the
current template and label words; a search for label words on the training rows, saved in one click
as a new verbalizer version; and a template search whose best few can be compared with the user's own."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import templatesearch, workbench
from backend.services.context import StudioContext
from backend.workbench.ensemble import KINDS
from studio.shared import Shared
from studio.tabs.common import as_int, guard
from studio.views.messages import error_html, info_html
from studio.views.tokens import example_html
from studio.views.workbench import (COMPARE_HEADERS, SEARCH_HEADERS, TEMPLATE_SEARCH_HEADERS, compare_rows,
                                    ensembles_html, flip_row_html, flips_html, inspect_html, label_search_html,
                                    progress_html, search_progress_html, search_rows, soft_ensemble_job_html,
                                    template_search_rows)

HELP = ("Pick saved versions (or the editors' drafts) on both sides: every template is scored with every set "
        "of label words on **the same dev rows**, one forward pass per template, as one job (it runs in the "
        "background; leave or refresh the page, it keeps going). Intervals are 95% bootstrap intervals; *p* is "
        "McNemar's exact test against the baseline row. Each combination is recorded as a run, grouped by a "
        "tag; ticked ensembles are fitted on the **training** rows and recorded as runs the Playground serves.")
POLL_S = 1.0


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
    with gr.Accordion("Search label words (on the training rows)", open=False, elem_id="ps-search"):
        with gr.Row():
            keep = gr.Number(5, label="Candidates per class", precision=0, minimum=1, maximum=50, elem_id="ps-search-keep")
            search_btn = gr.Button("Search label words", elem_id="ps-search-go")
            search_job = gr.Number(None, label="Label-word search #", precision=0, elem_id="ps-search-job")
            search_cancel = gr.Button("Cancel search", variant="stop", elem_id="ps-search-cancel")
        search_msg = gr.HTML(elem_id="ps-search-msg")
        search_table = gr.Dataframe(headers=SEARCH_HEADERS, interactive=False, elem_id="ps-search-table")
        found = gr.Textbox(label="Searched label words (edit before saving if you like)", lines=3,
                           elem_id="ps-search-words")
        with gr.Row():
            save_name = gr.Textbox("searched", label="Save as verbalizer", elem_id="ps-search-name")
            save_btn = gr.Button("Save as a new verbalizer version", elem_id="ps-search-save")
            adopt_btn = gr.Button("Use in the label-word editor", elem_id="ps-search-use")
    with gr.Accordion("Search templates (successive halving on the dev rows)", open=False, elem_id="ps-tsearch"):
        with gr.Row():
            ts_task = gr.Textbox("", label="What the label names (e.g. sentiment, topic)", max_lines=1,
                                 elem_id="ps-tsearch-task")
            ts_reph = gr.Number(8, label="Rephrasings by the model", precision=0, minimum=0, maximum=32,
                                elem_id="ps-tsearch-reph")
            ts_budget = gr.Number(5, label="Budget (full evaluations)", minimum=0.5, maximum=50,
                                  elem_id="ps-tsearch-budget")
            ts_keep = gr.Number(3, label="Best kept", precision=0, minimum=1, maximum=10, elem_id="ps-tsearch-keep")
        with gr.Row():
            ts_btn = gr.Button("Search templates", elem_id="ps-tsearch-go")
            ts_cmp = gr.Button("Search, then compare the best with mine", elem_id="ps-tsearch-compare")
            ts_job = gr.Number(None, label="Template search #", precision=0, elem_id="ps-tsearch-job")
            ts_cancel = gr.Button("Cancel search", variant="stop", elem_id="ps-tsearch-cancel")
        ts_msg = gr.HTML(elem_id="ps-tsearch-msg")
        ts_table = gr.Dataframe(headers=TEMPLATE_SEARCH_HEADERS, interactive=False, wrap=True,
                                elem_id="ps-tsearch-table")
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
    last = gr.State({})
    timer = gr.Timer(POLL_S, active=False)
    ts_timer = gr.Timer(POLL_S, active=False)
    search_timer = gr.Timer(POLL_S, active=False)
    se_timer = gr.Timer(POLL_S, active=False)

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

    @guard
    def do_cancel(job_id: Any, pj: str | None = None) -> str:
        if job_id is None:
            return error_html({"error": {"message": "no comparison to cancel: start one first"}})
        res = workbench.cancel_comparison(ctx.scoped(pj), as_int(job_id, 0))
        return error_html(res) if "error" in res else info_html(res["message"])

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

    def label_outputs(res: dict[str, Any]) -> tuple[Any, ...]:
        """A label search's answer -> (message, candidates, searched words, search #, its timer)."""
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        if not res["done"] or res["result"] is None:    # queued, running or cancelled
            return label_search_html(res), gr.skip(), gr.skip(), res["job"], gr.Timer(active=not res["done"])
        out = res["result"]
        return label_search_html(res), search_rows(out), out["label_words"], res["job"], gr.Timer(active=False)

    @guard
    def do_search(template: str, sel: dict[str, Any], max_len: Any, trunc: str, k: Any,
                  pj: str | None = None) -> tuple[Any, ...]:
        return label_outputs(workbench.search_words(ctx.scoped(pj), template=template or "", selection=sel,
                                                    max_length=max_len, truncate=trunc,
                                                    keep=max(1, min(50, as_int(k, 5)))))

    @guard
    def do_search_poll(search_id: Any, pj: str | None = None) -> tuple[Any, ...]:
        if search_id is None:
            return "", gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        return label_outputs(workbench.label_search(ctx.scoped(pj), as_int(search_id, 0)))

    @guard
    def do_search_cancel(search_id: Any, pj: str | None = None) -> str:
        if search_id is None:
            return error_html({"error": {"message": "no label-word search to cancel: start one first"}})
        res = workbench.cancel_label_search(ctx.scoped(pj), as_int(search_id, 0))
        return error_html(res) if "error" in res else info_html(res["message"])

    @guard
    def do_search_load(pj: str | None = None) -> tuple[Any, ...]:
        latest = workbench.latest_label_search(ctx.scoped(pj))
        if latest is None:
            return "", gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        return label_outputs(workbench.label_search(ctx.scoped(pj), latest))

    @guard
    def do_save(name: str, text: str, sel: dict[str, Any], picked_w: list[Any],
                pj: str | None = None) -> tuple[str, Any]:
        from backend.services import versions

        here = ctx.scoped(pj)
        if not (text or "").strip():
            return error_html({"error": {"message": "search label words first (or write some)"}}), gr.skip()
        res = versions.save(here, "verbalizer", name or "", text, message="label words searched on training rows")
        if "error" in res:
            return error_html(res), gr.skip()
        v = res["version"]
        saved = workbench.saved_prompts(here)
        label = next((k for k in saved.get("label_words", {}) if k.split(" [")[0] == f"{v['name']} v{v['version']}"),
                     None)
        choices = [workbench.DRAFT, *saved.get("label_words", {})]
        value = [p for p in picked_w or [] if p in choices] + ([label] if label and label not in (picked_w or []) else [])
        return (info_html(f"Saved as {v['name']} v{v['version']}" + ("" if res["created"] else " (unchanged)") +
                          "; it is picked for the next comparison."), gr.Dropdown(choices=choices, value=value))

    def search_outputs(res: dict[str, Any], handoff: bool = True) -> tuple[Any, ...]:
        """A template search's answer -> (message, ranking, search #, its timer, comparison #, its timer).
        ``handoff``: the comparison the search queued goes to the comparison's poller (as the search ends
        in front of the user; a page opened later keeps the comparison it picked itself)."""
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        if not res["done"] or res["result"] is None:     # queued, running or cancelled
            return (search_progress_html(res), gr.skip(), res["job"], gr.Timer(active=not res["done"]),
                    gr.skip(), gr.skip())
        cmp = res.get("comparison") or {}
        handoff = handoff and "error" not in cmp and cmp.get("job") is not None
        return (search_progress_html(res), template_search_rows(res["result"]), res["job"], gr.Timer(active=False),
                cmp["job"] if handoff else gr.skip(), gr.Timer(active=True) if handoff else gr.skip())

    def do_template_search(compare: bool, template: str, words: str, sel: dict[str, Any], max_len: Any, trunc: str,
                           task: str, reph: Any, budget: Any, keep: Any, pj: str | None) -> tuple[Any, ...]:
        res = templatesearch.search_templates(ctx.scoped(pj), template=template or "", label_words=words or "",
                                              selection=sel, task=task or "", rephrasings=reph, budget=budget,
                                              keep=keep, max_length=max_len, truncate=trunc, compare=compare)
        return search_outputs(res)

    @guard
    def do_tsearch(*args: Any) -> tuple[Any, ...]:
        return do_template_search(False, *args)

    @guard
    def do_tsearch_compare(*args: Any) -> tuple[Any, ...]:
        return do_template_search(True, *args)

    @guard
    def do_tsearch_poll(search_id: Any, pj: str | None = None) -> tuple[Any, ...]:
        if search_id is None:
            return "", gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        return search_outputs(templatesearch.template_search(ctx.scoped(pj), as_int(search_id, 0)))

    @guard
    def do_tsearch_cancel(search_id: Any, pj: str | None = None) -> str:
        if search_id is None:
            return error_html({"error": {"message": "no template search to cancel: start one first"}})
        res = templatesearch.cancel_template_search(ctx.scoped(pj), as_int(search_id, 0))
        return error_html(res) if "error" in res else info_html(res["message"])

    @guard
    def do_tsearch_load(pj: str | None = None) -> tuple[Any, ...]:
        latest = templatesearch.latest_template_search(ctx.scoped(pj))
        if latest is None:
            return "", gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        return search_outputs(templatesearch.template_search(ctx.scoped(pj), latest), handoff=False)

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

    @guard
    def do_soft_ensemble_cancel(job_id: Any, pj: str | None = None) -> str:
        if job_id is None:
            return error_html({"error": {"message": "no soft-prompt ensemble to cancel: start one first"}})
        res = workbench.cancel_soft_ensemble(ctx.scoped(pj), as_int(job_id, 0))
        return error_html(res) if "error" in res else info_html(res["message"])

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
    words_outputs = [search_msg, search_table, found, search_job, search_timer]
    search_btn.click(do_search, [shared.template_text, shared.data_sel, shared.max_length, shared.truncate, keep,
                                 shared.project], words_outputs, api_name="search_label_words")
    search_job.submit(do_search_poll, [search_job, shared.project], words_outputs, api_visibility="private")
    search_timer.tick(do_search_poll, [search_job, shared.project], words_outputs, api_name="label_search_status",
                      show_progress="hidden")
    search_cancel.click(do_search_cancel, [search_job, shared.project], [search_msg], api_name="label_search_cancel")
    save_btn.click(do_save, [save_name, found, shared.data_sel, words, shared.project], [search_msg, words],
                   api_name="save_searched_words")
    adopt_btn.click(lambda t: t, [found], [shared.label_words], api_visibility="private")
    ts_inputs = [shared.template_text, shared.label_words, shared.data_sel, shared.max_length, shared.truncate,
                 ts_task, ts_reph, ts_budget, ts_keep, shared.project]
    ts_outputs = [ts_msg, ts_table, ts_job, ts_timer, job, timer]
    ts_btn.click(do_tsearch, ts_inputs, ts_outputs, api_name="search_templates")
    ts_cmp.click(do_tsearch_compare, ts_inputs, ts_outputs, api_name="search_templates_compare")
    ts_job.submit(do_tsearch_poll, [ts_job, shared.project], ts_outputs, api_visibility="private")
    ts_timer.tick(do_tsearch_poll, [ts_job, shared.project], ts_outputs, api_name="template_search_status",
                  show_progress="hidden")
    ts_cancel.click(do_tsearch_cancel, [ts_job, shared.project], [ts_msg], api_name="template_search_cancel")
    insp_btn.click(do_inspect, [insp_a, insp_b, insp_k, shared.project], [insp_out], api_name="inspect_soft_prompts")
    se_outputs = [se_out, se_job, se_timer]
    se_btn.click(do_soft_ensemble, [se_runs, se_how, shared.project], se_outputs, api_name="soft_prompt_ensemble")
    se_job.submit(do_soft_ensemble_poll, [se_job, shared.project], se_outputs, api_visibility="private")
    se_timer.tick(do_soft_ensemble_poll, [se_job, shared.project], se_outputs, api_name="soft_ensemble_status",
                  show_progress="hidden")
    se_cancel.click(do_soft_ensemble_cancel, [se_job, shared.project], [se_out], api_name="soft_ensemble_cancel")
    shared.on_load.append((do_refresh, [templates, words, shared.project], [templates, words]))
    shared.on_load.append((do_load, [shared.project], [job, timer]))
    shared.on_load.append((do_tsearch_load, [shared.project], ts_outputs))
    shared.on_load.append((do_search_load, [shared.project], words_outputs))
    shared.on_load.append((do_soft_ensemble_load, [shared.project], se_outputs))
    shared.project.change(do_refresh, [templates, words, shared.project], [templates, words],
                          api_visibility="private")
