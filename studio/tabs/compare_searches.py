"""The Compare tab's searches, each a job (queued, progress, cancel; a refreshed page shows the latest):
label words searched on the training rows and saved in one click as a verbalizer version, and templates
ranked by successive halving on the dev rows, whose best few can be handed to the comparison beside the
user's own."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import templatesearch, workbench
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import JOB_POLL_S, as_int, cancel_handler, guard
from studio.views.messages import error_html, info_html
from studio.views.workbench import (SEARCH_HEADERS, TEMPLATE_SEARCH_HEADERS, label_search_html, search_progress_html,
                                    search_rows, template_search_rows)


def build(ctx: StudioContext, shared: Shared, *, words: Any, job: Any, timer: Any) -> None:
    """``words``: the comparison's label-word picker (a saved search is picked there); ``job``, ``timer``:
    the comparison's job number and poller (a search's comparison is handed to them)."""
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
    ts_timer = gr.Timer(JOB_POLL_S, active=False)
    search_timer = gr.Timer(JOB_POLL_S, active=False)

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

    do_search_cancel = cancel_handler(ctx, workbench.cancel_label_search, "label-word search")

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

    do_tsearch_cancel = cancel_handler(ctx, templatesearch.cancel_template_search, "template search")

    @guard
    def do_tsearch_load(pj: str | None = None) -> tuple[Any, ...]:
        latest = templatesearch.latest_template_search(ctx.scoped(pj))
        if latest is None:
            return "", gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        return search_outputs(templatesearch.template_search(ctx.scoped(pj), latest), handoff=False)
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
    shared.on_load.append((do_tsearch_load, [shared.project], ts_outputs))
    shared.on_load.append((do_search_load, [shared.project], words_outputs))
