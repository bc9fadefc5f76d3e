"""What the tabs share: the browser's data selection, the template and verbalizer being edited, and the
model-status banner that turns model-dependent controls on once the background load finishes.

The shared editors (template and its name, max length, truncation, label words and the verbalizer's name)
are created here, before any tab, unrendered (``render=False``): every tab can wire them into its events
whatever the tab order, and the tab that owns each one places it in its layout with ``.render()``. Before,
the owning tab created them and stored them here for "later tabs", so moving a tab before its owner broke
the page. ``check_placed`` says which editor no tab has placed.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from backend.choices import TRUNCATE_METHODS
from backend.services import data as data_service
from backend.services.context import StudioContext


def banner_html(status: dict[str, Any]) -> str:
    return f"<div class='ps-banner {escape(status['state'])}' id='ps-model-state' " \
           f"data-state='{escape(status['state'])}'>{escape(status['message'])}</div>"


def browser_secret(folder: Path) -> str:
    """The key that encrypts what the page keeps in the browser's localStorage, stable per data dir so a
    restarted studio can still read the drafts a browser kept (a fresh random key would orphan them)."""
    path = folder / "browser-secret"
    try:
        return path.read_text().strip()
    except OSError:
        folder.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(24)
        path.write_text(secret)
        return secret


EDITORS = ("template_name", "template_text", "max_length", "truncate", "verbalizer_name", "label_words")


def drafts_for(kept: Any, project: str | None) -> dict[str, Any]:
    """The unsaved editor text this browser kept for ``project``: ``{"template": ..., "label_words": ...}``
    or ``{}``. A browser that kept one flat draft (before drafts were per project) gets it for any project
    until its next keystroke rewrites the entry per project."""
    if not isinstance(kept, dict):
        return {}
    if "template" in kept or "label_words" in kept:
        return kept
    mine = kept.get(project or "")
    return mine if isinstance(mine, dict) else {}


def _editors(ctx: StudioContext, opening: dict[str, Any]) -> dict[str, Any]:
    """The shared editors, unrendered. The template and label-word editors are read-only until the page
    load fills them (``studio.app._opening``): a fill landing after typing began would replace the typing."""
    return {
        "template_name": gr.Textbox(ctx.project, label="Template name", elem_id="ps-template-name", render=False),
        "template_text": gr.Textbox(opening.get("template", ""), label="Template", lines=4, max_lines=20,
                                    elem_id="ps-template", interactive=False, placeholder="{text_a} It was {mask}.",
                                    render=False),
        "max_length": gr.Number(opening.get("max_length", 256), label="Max length (tokens)", precision=0,
                                minimum=8, elem_id="ps-max-length", render=False),
        "truncate": gr.Dropdown(list(TRUNCATE_METHODS), value="tail", label="Truncation", elem_id="ps-truncate",
                                render=False),
        "verbalizer_name": gr.Textbox(ctx.project, label="Verbalizer name", elem_id="ps-verbalizer-name",
                                      render=False),
        "label_words": gr.Textbox(opening.get("label_words", ""), label="Label words", lines=5, max_lines=30,
                                  elem_id="ps-label-words", interactive=False,
                                  placeholder="negative: bad, terrible\npositive: good, great", render=False),
    }


@dataclass
class Shared:
    ctx: StudioContext
    data_sel: gr.State
    # kept in the browser's storage; two separate entries, so their writers never overwrite each other
    kept_data: gr.BrowserState       # the data selection
    kept_drafts: gr.BrowserState     # {project: {"template": draft, "label_words": draft}} (drafts_for)
    model_state: gr.Textbox          # "loading" / "ready" / "failed": tabs refresh on its change
    banner: gr.HTML
    timer: gr.Timer
    page: gr.Blocks                  # the whole page: ``page.load`` is a trigger for gr.on
    # the shared editors, created unrendered: the Template tab places the first four, the Verbalizer tab
    # the last two; any tab may use any of them as an input or output
    template_name: gr.Textbox
    template_text: gr.Textbox
    max_length: gr.Number
    truncate: gr.Dropdown
    verbalizer_name: gr.Textbox
    label_words: gr.Textbox
    opening: dict[str, Any] = field(default_factory=dict)   # the project's latest template / label words
    # this browser session's project (the start screen switches it; services get ``ctx.scoped(project)``)
    project: gr.State | None = None
    tabs: gr.Tabs | None = None      # the page's tabs, for buttons that move to another tab
    # "Train this prompt": placed by the Evaluate tab, wired by the Train tab (its settings start the run)
    train_now: gr.Button | None = None
    kept_project: gr.BrowserState | None = None   # the project this browser last opened (the Start tab's)
    on_load: list[tuple[Callable[..., Any], list[Any], list[Any]]] = field(default_factory=list)

    @classmethod
    def create(cls, ctx: StudioContext, page: gr.Blocks) -> Shared:
        from backend.services import project

        opening = project.bootstrap(ctx)
        default = data_service.default_selection()
        with gr.Row():
            gr.Markdown("## Prompt Studio", elem_id="ps-title")
            banner = gr.HTML(banner_html(ctx.model.status()), elem_id="ps-banner")
        model_state = gr.Textbox(ctx.model.status()["state"], visible=False, elem_id="ps-model-state-box")
        secret = browser_secret(ctx.data_dir)
        kept_data = gr.BrowserState(None, storage_key="prompt-studio-data", secret=secret)
        kept_drafts = gr.BrowserState({}, storage_key="prompt-studio-drafts", secret=secret)
        opening = {} if "error" in opening else opening
        return cls(ctx=ctx, data_sel=gr.State(default), kept_data=kept_data, kept_drafts=kept_drafts,
                   model_state=model_state, banner=banner, page=page,
                   timer=gr.Timer(1.0, active=ctx.model.status()["state"] == "loading"),
                   opening=opening, project=gr.State(ctx.project), **_editors(ctx, opening),
                   train_now=gr.Button("Train this prompt →", elem_id="ps-train-now", render=False))

    def editors(self) -> dict[str, Any]:
        """The shared editors by field name."""
        return {name: getattr(self, name) for name in EDITORS}

    def check_placed(self) -> None:
        """Fail the build, naming it, when a shared editor was never placed by a tab (a listener on it would
        point at nothing on the page)."""
        placed = {**self.editors(), "train_now": self.train_now}
        missing = [f"{name} (#{c.elem_id})" for name, c in placed.items() if c is not None and not c.is_rendered]
        if missing:
            raise RuntimeError(f"shared editors no tab placed with .render(): {', '.join(missing)}")

    def poll_model(self) -> tuple[str, str, Any]:
        status = self.ctx.model.status()
        return banner_html(status), status["state"], gr.Timer(active=status["state"] == "loading")

    def keep_drafts_in_browser(self) -> None:
        """Copy the template and label-word editors into the browser's storage (in the page itself, no
        request) when typing pauses — the page script clicks this hidden button — so leaving or refreshing
        the page keeps unsaved work without adding anything to each keystroke."""
        trigger = gr.Button("keep drafts", elem_id="ps-draft-trigger")
        # one entry per project: a single slot let opening project B discard A's unsaved draft, and a reload
        # in a second tab restore B's draft into A (then saved as A's template)
        # (the project is read from the page: a gr.State's value lives on the server, not in the page)
        trigger.click(None, [self.template_text, self.label_words, self.kept_drafts], [self.kept_drafts],
                      js="(t, w, d) => { const p = document.querySelector('#ps-current-project')?.dataset.project"
                         " || ''; const flat = !d || typeof d !== 'object' || 'template' in d"
                         " || 'label_words' in d; const out = flat ? {} : {...d};"
                         " out[p] = {template: t, label_words: w}; return out; }")

    def wire_load(self, demo: gr.Blocks) -> None:
        """Page load: show the model's current state and start polling it while it loads; keep the data
        selection in the browser whenever it changes."""
        self.data_sel.change(lambda sel: sel, [self.data_sel], [self.kept_data], api_visibility="private",
                             queue=False)
        outs = [self.banner, self.model_state, self.timer]
        self.timer.tick(self.poll_model, outputs=outs, api_visibility="private", queue=False)
        demo.load(self.poll_model, outputs=outs, api_visibility="private", queue=False)
        for fn, inputs, outputs in self.on_load:
            demo.load(fn, inputs=inputs, outputs=outputs, api_visibility="private")
