"""Compare tab: several templates and label-word sets scored on the same dev rows, side by side, with
paired intervals and McNemar's test against a baseline; the rows where two of them disagree; one click to
make a row the current template and label words."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import workbench
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import as_int, guard
from studio.views.messages import error_html, info_html
from studio.views.workbench import COMPARE_HEADERS, compare_rows, flips_html

HELP = ("Pick saved versions (or the editors' drafts) on both sides: every template is scored with every set "
        "of label words on **the same dev rows**, one forward pass per template. Intervals are 95% bootstrap "
        "intervals; *p* is McNemar's exact test against the baseline row. Each combination is recorded as a "
        "run, grouped by a tag, so the Runs tab and the Playground see them.")


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
        refresh = gr.Button("Refresh saved versions", elem_id="ps-cmp-refresh")
        go = gr.Button("Compare", variant="primary", elem_id="ps-cmp-go")
    msg = gr.HTML(elem_id="ps-cmp-msg")
    table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, wrap=True, elem_id="ps-cmp-table")
    with gr.Row():
        use_row = gr.Number(1, label="Row (#) to use", precision=0, minimum=1, elem_id="ps-cmp-use-row")
        use_btn = gr.Button("Use as the current template + label words", elem_id="ps-cmp-use")
    with gr.Row():
        run_a = gr.Number(None, label="Run A", precision=0, elem_id="ps-cmp-run-a")
        run_b = gr.Number(None, label="Run B", precision=0, elem_id="ps-cmp-run-b")
        flips_btn = gr.Button("Rows where they disagree", elem_id="ps-cmp-flips")
    flips_out = gr.HTML(elem_id="ps-cmp-flips-out")
    last = gr.State({})

    @guard
    def do_refresh(picked_t: list[Any], picked_w: list[Any]) -> tuple[Any, Any]:
        res = workbench.saved_prompts(ctx)
        if "error" in res:
            return gr.skip(), gr.skip()
        t_choices = [workbench.DRAFT, *res["templates"]]
        w_choices = [workbench.DRAFT, *res["label_words"]]
        return (gr.Dropdown(choices=t_choices, value=[p for p in picked_t or [] if p in t_choices]),
                gr.Dropdown(choices=w_choices, value=[p for p in picked_w or [] if p in w_choices]))

    @guard
    def do_compare(picked_t: list[Any], picked_w: list[Any], base: Any, lim: Any, draft_t: str, draft_w: str,
                   sel: dict[str, Any], max_len: Any, trunc: str) -> tuple[str, Any, dict[str, Any], Any, Any]:
        saved = workbench.saved_prompts(ctx)
        if "error" in saved:
            return error_html(saved), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        t_texts = workbench.resolve([str(p) for p in picked_t or []], saved["templates"], draft_t or "")
        w_texts = workbench.resolve([str(p) for p in picked_w or []], saved["label_words"], draft_w or "")
        res = workbench.compare(ctx, templates=t_texts, label_words=w_texts, selection=sel, max_length=max_len,
                                truncate=trunc, baseline=as_int(base, 1) - 1, limit=as_int(lim, 0) or None)
        if "error" in res:
            return error_html(res), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        ids = [r["run_id"] for r in res["rows"]]
        note = info_html(f"{len(res['rows'])} combinations on {res['n']} dev rows in {res['seconds']:.1f} s "
                         f"({res['forwards']} forward passes); recorded as runs {ids[0]}–{ids[-1]}, tag "
                         f"{res['group']}.")
        return note, compare_rows(res), res, ids[res["baseline"]], ids[0] if res["baseline"] else ids[-1]

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

    @guard
    def do_flips(a: Any, b: Any) -> str:
        if a is None or b is None:
            return error_html({"error": {"message": "give two run ids (e.g. two rows of the comparison)"}})
        res = workbench.flips(ctx, as_int(a, 0), as_int(b, 0))
        return error_html(res) if "error" in res else flips_html(res)

    refresh.click(do_refresh, [templates, words], [templates, words], api_name="compare_choices")
    go.click(do_compare, [templates, words, baseline, limit, shared.template_text, shared.label_words,
                          shared.data_sel, shared.max_length, shared.truncate], [msg, table, last, run_a, run_b],
             api_name="compare_prompts")
    use_btn.click(do_use, [last, use_row], [shared.template_text, shared.label_words, msg], api_name="compare_use")
    flips_btn.click(do_flips, [run_a, run_b], [flips_out], api_name="flips")
    shared.on_load.append((do_refresh, [templates, words], [templates, words]))
