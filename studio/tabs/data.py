"""Data tab: built-in, uploaded or hub data; column mapping; browsable rows; labels; K-shot sampling."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.config import DEFAULT_SEED
from backend.services import data as data_service
from backend.services.context import StudioContext
from studio.shared import Shared
from studio.tabs.common import as_int, guard
from studio.views.messages import error_html, info_html
from studio.views.plots import label_distribution
from studio.views.tables import kv_card

SOURCES = ("Built-in", "Upload", "Hub id")
DEV_FRACTION = 0.2
PAGE = 50


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown("Pick the examples to prompt with. Upload CSV / TSV / JSONL / Parquet "
                f"(up to {ctx.max_upload_mb:g} MB), or give a dataset id that is already in the local "
                "Hugging Face cache. Then say which columns hold the text and the label.")
    with gr.Row():
        with gr.Column(scale=2):
            kind = gr.Radio(list(SOURCES), value="Built-in", label="Source", elem_id="ps-data-kind")
            builtin = gr.Dropdown(data_service.builtin_choices(), value=None, label="Built-in dataset",
                                  elem_id="ps-data-builtin")
            upload = gr.File(label="Upload a file", file_types=list(data_service.UPLOAD_SUFFIXES),
                             type="filepath", elem_id="ps-data-upload", visible=False)
            hub = gr.Textbox(label="Hub dataset id",
                             placeholder="e.g. glue:sst2 — read from the local cache (the studio runs offline)",
                             elem_id="ps-data-hub", visible=False)
            with gr.Row():
                split = gr.Dropdown([], allow_custom_value=True, value=None, label="Split", elem_id="ps-data-split")
                limit = gr.Number(0, label="First N rows only (0 = all)", precision=0, minimum=0)
            with gr.Row():
                dev_frac = gr.Number(DEV_FRACTION, label="Dev fraction: a source without split files is divided "
                                     "into train / dev (stratified by label, seeded)", minimum=0.05, maximum=0.9,
                                     step=0.05, elem_id="ps-dev-fraction", scale=3)
                split_btn = gr.Button("Apply split", elem_id="ps-dev-apply", scale=1)
                # the project's one seed: K-shot sampling, the train / dev split and training all use it
                seed = gr.Number(data_service.seed_of({}), label="Seed (sampling, dev split, training)",
                                 precision=0, minimum=0, elem_id="ps-seed", scale=1)
            load_btn = gr.Button("Load data", variant="primary", elem_id="ps-data-load")
            msg = gr.HTML(elem_id="ps-data-msg")
            with gr.Accordion("Column mapping", open=True):
                col_a = gr.Dropdown([], allow_custom_value=True, label="text_a column", elem_id="ps-col-text-a")
                col_b = gr.Dropdown([], allow_custom_value=True, label="text_b column", elem_id="ps-col-text-b")
                col_label = gr.Dropdown([], allow_custom_value=True, label="label column", elem_id="ps-col-label")
                col_meta = gr.Dropdown([], allow_custom_value=True, multiselect=True,
                                       label="meta columns (use as {meta:NAME})",
                                       elem_id="ps-col-meta")
                map_btn = gr.Button("Apply mapping", elem_id="ps-data-map")
            with gr.Accordion("K-shot sampling", open=False):
                with gr.Row():
                    shots = gr.Number(None, label="K examples per class", precision=0, minimum=1,
                                      elem_id="ps-shots")
                with gr.Row():
                    shots_btn = gr.Button("Sample K per class", elem_id="ps-shots-apply")
                    all_btn = gr.Button("Use all rows")
        with gr.Column(scale=3):
            summary = gr.HTML(elem_id="ps-data-summary")
            dist = gr.Plot(label="Label distribution", elem_id="ps-data-dist")
            with gr.Row():
                query = gr.Textbox(label="Search rows", placeholder="words in the text or label", scale=3)
                page = gr.Number(1, label="Page", precision=0, minimum=1, scale=1)
            table = gr.Dataframe(interactive=False, wrap=True, elem_id="ps-data-table", max_height=420)

    def _views(sel: dict[str, Any], res: dict[str, Any], note: str) -> tuple[Any, ...]:
        """Everything the tab shows for a loaded selection (or the error next to the Load button)."""
        if "error" in res:
            return _mapping_needed(sel, res)
        choices = res["columns"]
        m = res["mapping"]
        none = [data_service.NO_COLUMN]
        items = [("source", data_service.source_label(sel["source"])), ("split", sel.get("split") or "(file)"),
                 ("rows", f"{res['n']}" + (f" (K-shot of {res['total']})" if sel.get("shots") else "")),
                 ("classes", ", ".join(res["label_names"]) or "(unlabelled)"),
                 ("train / dev", res["split"]["how"] if res.get("split") else
                  "the source's own split files (pick them on the Train tab); runs refuse shared rows"),
                 ("fingerprint", res["fingerprint"][:12])]
        page_rows = data_service.browse(ctx, sel, "", 0, PAGE)
        if note and res.get("guessed") and not sel.get("columns"):
            note = f"{note} {res['guessed']}"
        return (sel, info_html(note, "ok") if note else "",
                gr.Dropdown(choices=choices, value=m["text_a"]),
                gr.Dropdown(choices=none + choices, value=m["text_b"] or data_service.NO_COLUMN),
                gr.Dropdown(choices=none + choices, value=m["label"] or data_service.NO_COLUMN),
                gr.Dropdown(choices=choices, value=m["meta"]),
                kv_card(items), label_distribution(res["distribution"]),
                _frame(page_rows), gr.Dropdown(choices=res["splits"], value=sel.get("split")),
                gr.Dropdown(value=sel["source"]) if sel["source"].startswith("builtin:") else gr.skip(),
                data_service.seed_of(sel))

    def _mapping_needed(sel: dict[str, Any], res: dict[str, Any]) -> tuple[Any, ...]:
        """A source that reads but does not map (e.g. no column called text or label): keep it selected
        and offer its columns, so the mapping can be fixed right here."""
        if res["error"].get("column") is None:   # not a mapping problem (e.g. too few rows to split)
            return (gr.skip(), error_html(res)) + (gr.skip(),) * n_more
        cols = data_service.columns(ctx, sel)
        if "error" in cols or not cols["columns"]:
            return (gr.skip(), error_html(res)) + (gr.skip(),) * n_more
        choices, none = cols["columns"], [data_service.NO_COLUMN]
        hint = error_html(res) + info_html("Choose the columns under 'Column mapping', then Apply mapping.")
        return (sel, hint, gr.Dropdown(choices=choices, value=choices[0]),
                gr.Dropdown(choices=none + choices, value=data_service.NO_COLUMN),
                gr.Dropdown(choices=none + choices, value=data_service.NO_COLUMN),
                gr.Dropdown(choices=choices, value=[])) + (gr.skip(),) * (n_more - 4)

    outputs = [shared.data_sel, msg, col_a, col_b, col_label, col_meta, summary, dist, table, split, builtin, seed]
    n_more = len(outputs) - 2

    @guard
    def do_load(k: str, bname: str | None, up: str | None, hub_id: str, sp: str | None, lim: Any,
                frac: Any, cur: dict[str, Any] | None = None) -> tuple[Any, ...]:
        if k == "Upload":
            if not up:
                return (gr.skip(), error_html({"error": {"message": "choose a file to upload first"}})) + \
                    (gr.skip(),) * n_more
            saved = data_service.save_upload(ctx, up)
            if "error" in saved:
                return (gr.skip(), error_html(saved)) + (gr.skip(),) * n_more
            source = saved["source"]
        elif k == "Hub id":
            source = (hub_id or "").strip()
            if not source:
                return (gr.skip(), error_html({"error": {"message": "type a dataset id"}})) + (gr.skip(),) * n_more
        else:
            source = bname or data_service.default_selection()["source"]
        available = data_service.splits(ctx, source)
        if available and sp not in available:  # keep the dev split of the demo when it exists
            demo_split = data_service.default_selection()["split"]
            sp = demo_split if demo_split in available else available[0]
        sel = {"source": source, "columns": {}, "split": sp or None, "limit": as_int(lim, 0) or None,
               "shots": None, "seed": data_service.seed_of(cur or {}),   # new data keeps the project's seed
               # one file (no split files) is both the train and the dev data: split it, never reuse rows
               "dev_fraction": None if available else _fraction(frac)}
        return _views(sel, data_service.load(ctx, sel), f"Loaded {data_service.source_label(source)}.")

    @guard
    def do_map(sel: dict[str, Any], a: str, b: str, lab: str, meta: list[str]) -> tuple[Any, ...]:
        new = dict(sel, columns=data_service.mapping(a, b, lab, meta))
        return _views(new, data_service.load(ctx, new), "Column mapping applied.")

    def _seed_refused(sd: Any) -> tuple[Any, ...] | None:
        """The outputs saying why ``sd`` cannot be the project's seed; None when it can (or is left empty)."""
        bad = data_service.seed_error(sd) if sd not in (None, "") else None
        return (gr.skip(), error_html(bad)) + (gr.skip(),) * n_more if bad else None

    @guard
    def do_seed(sel: dict[str, Any], sd: Any) -> tuple[Any, ...]:
        if (refused := _seed_refused(sd)) is not None:
            return refused
        new = dict(sel, seed=as_int(sd, data_service.seed_of(sel)))
        if new == sel:
            return (gr.skip(),) * len(outputs)
        return _views(new, data_service.load(ctx, new), f"Seed {new['seed']}: sampling, the dev split and "
                      "training all start from it.")

    @guard
    def show_project(sel: dict[str, Any]) -> tuple[Any, ...]:
        """Another project was opened: show its data (the selection it saved)."""
        return _views(sel, data_service.load(ctx, sel), "")

    @guard
    def do_shots(sel: dict[str, Any], k: Any, sd: Any) -> tuple[Any, ...]:
        if (refused := _seed_refused(sd)) is not None:
            return refused
        new = dict(sel, shots=as_int(k, 0) or None, seed=as_int(sd, DEFAULT_SEED))
        return _views(new, data_service.load(ctx, new), f"Sampled {as_int(k, 0)} per class (seed {new['seed']}).")

    @guard
    def do_split(sel: dict[str, Any], frac: Any) -> tuple[Any, ...]:
        if sel.get("dev_fraction") is None:
            return (gr.skip(), info_html("This source has its own split files: pick the train and dev splits on "
                                         "the Train tab.")) + (gr.skip(),) * n_more
        new = dict(sel, dev_fraction=_fraction(frac))
        return _views(new, data_service.load(ctx, new), f"Dev fraction {new['dev_fraction']:g} applied.")

    @guard
    def do_all(sel: dict[str, Any]) -> tuple[Any, ...]:
        new = dict(sel, shots=None)
        return _views(new, data_service.load(ctx, new), "Using all rows.")

    @guard
    def do_browse(sel: dict[str, Any], q: str, pg: Any) -> Any:
        res = data_service.browse(ctx, sel, q, (max(1, as_int(pg, 1)) - 1) * PAGE, PAGE)
        return _frame(res)

    @guard
    def show(sel: dict[str, Any], mine: dict[str, Any] | None, pj: str | None = None) -> tuple[Any, ...]:
        """Page load: the data this browser had picked (if it still loads), else the project's saved choice,
        else the default. Why the project's: a new browser (or cleared storage) started on the demo data,
        and its first Data-tab action saved that over the project's own source, mapping, split and seed."""
        from backend.services import project as project_service

        saved = project_service.settings(ctx.scoped(pj)).get("data")
        for want in (mine, saved):
            if want and want != sel:
                res = data_service.load(ctx, want)
                if "error" not in res:
                    return _views(want, res, "")
        return _views(sel, data_service.load(ctx, sel), "")

    def show_source(k: str) -> tuple[Any, Any, Any]:
        return (gr.update(visible=k == "Built-in"), gr.update(visible=k == "Upload"),
                gr.update(visible=k == "Hub id"))

    kind.change(show_source, [kind], [builtin, upload, hub], api_visibility="private", queue=False)
    load_btn.click(do_load, [kind, builtin, upload, hub, split, limit, dev_frac, shared.data_sel], outputs,
                   api_name="load_data")
    # a chosen file loads at once, its columns guessed: no second click on Load data
    upload.upload(do_load, [kind, builtin, upload, hub, split, limit, dev_frac, shared.data_sel], outputs,
                  api_visibility="private")
    gr.on([seed.submit, seed.blur], do_seed, [shared.data_sel, seed], outputs, api_visibility="private")
    shared.project.change(show_project, [shared.data_sel], outputs, api_visibility="private")
    split_btn.click(do_split, [shared.data_sel, dev_frac], outputs, api_name="dev_split")
    map_btn.click(do_map, [shared.data_sel, col_a, col_b, col_label, col_meta], outputs, api_name="map_columns")
    shots_btn.click(do_shots, [shared.data_sel, shots, seed], outputs, api_name="k_shot")
    all_btn.click(do_all, [shared.data_sel], outputs, api_visibility="private")
    query.change(do_browse, [shared.data_sel, query, page], [table], api_name="browse",
                 trigger_mode="always_last", show_progress="hidden")
    page.change(do_browse, [shared.data_sel, query, page], [table], api_visibility="private")
    shared.on_load.append((show, [shared.data_sel, shared.kept_data, shared.project], outputs))


def _fraction(value: Any) -> Any:
    """The dev-fraction box as a number; anything else goes on to the service, which says what is wrong."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return DEV_FRACTION if value in (None, "") else value


def _frame(res: dict[str, Any]) -> Any:
    import pandas as pd

    if "error" in res:
        return pd.DataFrame()
    frame = pd.DataFrame(res["rows"])
    empty = [c for c in frame.columns if c == "text_b" and not frame[c].astype(bool).any()]
    return frame.drop(columns=empty)
