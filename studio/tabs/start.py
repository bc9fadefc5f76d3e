"""Start tab: what the studio does, the way in (the demo, my own data, a project), the list of projects
with their best result, and a short guided path through the demo.

The project is per browser session (``shared.project``, a ``gr.State``): opening one here fills the
shared editors and the data selection from it and every tab's lists follow (they listen to the state),
without restarting the server. The browser remembers the last project it opened (``BrowserState``), so a
reloaded page comes back to it.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from backend.services import project as project_service
from backend.services.context import StudioContext
from studio.shared import Shared, browser_secret, drafts_for
from studio.tabs.common import guard
from studio.views.messages import error_html, info_html
from studio.views.projects import PROJECT_HEADERS, current_html, project_rows

INTRO = ("**Prompt Studio** designs prompts for a pretrained language model, on your own machine.\n\n"
         "1. Pick labelled examples, write a template with a `{mask}` and the words that name each class.\n"
         "2. Evaluate it zero-shot in seconds, compare variants with confidence intervals.\n"
         "3. Train a soft prompt or a small delta (LoRA, prefix, ...) on a few examples, and keep every run.")
GUIDE = (("data", "Data", "The demo's movie reviews are loaded: look at the rows, the label column, the "
          "dev split and the one seed."),
         ("template", "Template", "The prompt: the review goes where `{text_a}` is, the model answers at "
          "`{mask}`. The preview shows exactly what the model reads."),
         ("verbalizer", "Verbalizer", "The label words: which answer means which class. Check how each "
          "word is tokenized."),
         ("evaluate", "Evaluate", "Score the template zero-shot on the dev rows: accuracy, per class, and "
          "the confusion matrix (click a cell for its examples)."),
         ("train", "Train", "Train a soft prompt on the training rows and watch the dev accuracy climb."))
MY_DATA = "My data"


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown(INTRO, elem_id="ps-start-intro")
    current = gr.HTML(current_html(ctx.project))
    with gr.Row():
        demo_btn = gr.Button("Open the demo", variant="primary", elem_id="ps-start-demo")
        upload_btn = gr.Button("Upload my data", elem_id="ps-start-upload")
    with gr.Row():
        new_name = gr.Textbox(label="New project", placeholder="e.g. support tickets (letters, digits, space, _ . -)",
                              elem_id="ps-new-project", scale=3)
        create_btn = gr.Button("Create and open", elem_id="ps-create-project", scale=1)
    msg = gr.HTML(elem_id="ps-start-msg")
    gr.Markdown("### Open a project")
    table = gr.Dataframe(headers=PROJECT_HEADERS, interactive=False, elem_id="ps-projects", wrap=True)
    with gr.Row():
        pick = gr.Dropdown([], label="Project", elem_id="ps-project-pick", scale=3, allow_custom_value=True)
        open_btn = gr.Button("Open", elem_id="ps-open-project", scale=1)
    with gr.Accordion("Guided path through the demo", open=True, elem_id="ps-guide"):
        steps = []
        for i, (tab_id, label, what) in enumerate(GUIDE, 1):
            with gr.Row():
                gr.Markdown(f"**{i}. {label}.** {what}")
                steps.append((gr.Button(f"Go to {label}", elem_id=f"ps-guide-{tab_id}", scale=0, min_width=140),
                              tab_id))
    kept_project = gr.BrowserState(None, storage_key="prompt-studio-project", secret=browser_secret(ctx.data_dir))
    shared.kept_project = kept_project

    def catalogue() -> tuple[Any, Any]:
        res = project_service.catalogue(ctx)
        rows = [] if "error" in res else res["projects"]
        names = [p["name"] for p in rows]
        return project_rows(rows), gr.Dropdown(choices=names)

    @guard
    def do_list() -> tuple[Any, Any]:
        return catalogue()

    def _opened(name: str, note: str, drafts: dict[str, Any] | None = None) -> tuple[Any, ...]:
        """Everything that changes when this session moves to project ``name``; ``drafts``: the unsaved
        editor text this browser kept while working in it (a reload keeps typing that was never saved)."""
        res = project_service.opening(ctx.scoped(name))
        if "error" in res:
            return (gr.skip(),) * 9 + (error_html(res),) + (gr.skip(),) * 3
        drafts = drafts_for(drafts, name)      # this project's own, never another's
        template = drafts.get("template") or res["template"]
        words = drafts.get("label_words") or res["label_words"]
        editor = {"interactive": True}
        return (name, current_html(name), gr.update(value=res["name"]), gr.update(value=template, **editor),
                gr.update(value=res["verbalizer_name"]), gr.update(value=words, **editor),
                res["selection"], res["selection"], gr.skip(),   # other projects' drafts stay kept
                info_html(note, "ok") if note else "") + catalogue() + (gr.skip(),)

    @guard
    def do_open(name: str | None) -> tuple[Any, ...]:
        if not (name or "").strip():
            return (gr.skip(),) * 9 + (info_html("Pick a project in the list first."),) + (gr.skip(),) * 3
        return _opened(name, f"Opened project {name!r}.")

    @guard
    def do_create(name: str) -> tuple[Any, ...]:
        res = project_service.create(ctx, name or "")
        if "error" in res:
            return (gr.skip(),) * 9 + (error_html(res),) + (gr.skip(),) * 3
        return _opened(res["project"], f"Created project {res['project']!r}: load its data on the Data tab.")

    @guard
    def do_demo() -> tuple[Any, ...]:
        from storage import DEFAULT_PROJECT

        project_service.bootstrap(ctx.scoped(DEFAULT_PROJECT))
        return _opened(DEFAULT_PROJECT, "Opened the demo: follow the guided path below, or go to the Data tab.")

    @guard
    def do_my_data(pj: str | None) -> tuple[Any, ...]:
        """Upload from a project of its own (the demo's runs stay the demo's): a new "My data" project
        when the session is on the demo, else the current project."""
        from storage import DEFAULT_PROJECT

        if pj and pj != DEFAULT_PROJECT:
            return (gr.skip(),) * 9 + (info_html(f"Upload into project {pj!r} on the Data tab."),) + \
                (gr.skip(),) * 2 + (gr.Tabs(selected="data"),)
        taken = {p["name"] for p in project_service.catalogue(ctx).get("projects", [])}
        name = next((n for n in (MY_DATA, *(f"{MY_DATA} {i}" for i in range(2, 1000))) if n not in taken), "")
        created = project_service.create(ctx, name) if name else \
            {"error": {"message": f"too many '{MY_DATA}' projects: create one with a name of your own"}}
        if "error" in created:
            return (gr.skip(),) * 9 + (error_html(created),) + (gr.skip(),) * 3
        return _opened(name, f"Created project {name!r} for your data: choose a file under Upload.")[:-1] + \
            (gr.Tabs(selected="data"),)

    @guard
    def do_restore(kept: str | None, pj: str | None, drafts: dict[str, Any] | None) -> tuple[Any, ...]:
        """Page load: come back to the project this browser last opened (when it still exists), with the
        drafts it kept there."""
        names = {p["name"] for p in project_service.catalogue(ctx).get("projects", [])}
        if not kept or kept == pj or kept not in names:
            return (gr.skip(),) * 10 + catalogue() + (gr.skip(),)
        return _opened(kept, "", drafts)

    @guard
    def keep_selection(sel: dict[str, Any], pj: str | None, kept: str | None) -> None:
        """The Data tab's choice (and its one seed) is saved in the session's project; skipped while a page
        load is still bringing back another project (it would save that project's data here)."""
        if pj and (not kept or kept == pj):
            project_service.save_selection(ctx.scoped(pj), sel)

    tabs = shared.tabs
    opened = [shared.project, current, shared.template_name, shared.template_text, shared.verbalizer_name,
              shared.label_words, shared.data_sel, shared.kept_data, shared.kept_drafts, msg, table, pick, tabs]
    def drafts_back(pj: str | None, drafts: dict[str, Any] | None) -> tuple[Any, Any]:
        """After a project opens: the unsaved text this browser kept for it, if any, back in the editors (a
        follow-up, so the named endpoints keep their parameters: a browser's storage is no API argument)."""
        mine = drafts_for(drafts, pj)
        return (mine.get("template") or gr.skip()), (mine.get("label_words") or gr.skip())

    back = dict(fn=drafts_back, inputs=[shared.project, shared.kept_drafts],
                outputs=[shared.template_text, shared.label_words], api_visibility="private")
    open_btn.click(do_open, [pick], opened, api_name="open_project").then(**back)
    create_btn.click(do_create, [new_name], opened, api_name="create_project")
    new_name.submit(do_create, [new_name], opened, api_visibility="private")
    demo_btn.click(do_demo, None, opened, api_name="open_demo").then(**back).then(
        lambda: gr.Tabs(selected="data"), None, [tabs], api_visibility="private", queue=False)
    upload_btn.click(do_my_data, [shared.project], opened, api_name="upload_my_data").then(
        None, None, None, js="() => setTimeout(() => document.querySelector("
                             "'#ps-data-kind input[value=\"Upload\"]')?.click(), 400)")
    for button, tab_id in steps:
        button.click(_go_to(tab_id), None, [tabs], api_visibility="private", queue=False)
    shared.project.change(lambda p: p, [shared.project], [kept_project], api_visibility="private", queue=False)
    shared.data_sel.change(keep_selection, [shared.data_sel, shared.project, kept_project], None,
                           api_visibility="private")
    shared.on_load.append((do_list, [], [table, pick]))
    shared.on_load.append((do_restore, [kept_project, shared.project, shared.kept_drafts], opened))


def _go_to(tab_id: str) -> Any:
    return lambda: gr.Tabs(selected=tab_id)
