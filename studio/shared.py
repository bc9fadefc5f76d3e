"""What the tabs share: the browser's data selection, the template and verbalizer being edited, and the
model-status banner that turns model-dependent controls on once the background load finishes."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable

import gradio as gr

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


@dataclass
class Shared:
    ctx: StudioContext
    data_sel: gr.State
    # kept in the browser's storage; two separate entries, so their writers never overwrite each other
    kept_data: gr.BrowserState       # the data selection
    kept_drafts: gr.BrowserState     # {"template": draft, "label_words": draft}
    model_state: gr.Textbox          # "loading" / "ready" / "failed": tabs refresh on its change
    banner: gr.HTML
    timer: gr.Timer
    page: gr.Blocks                  # the whole page: ``page.load`` is a trigger for gr.on
    # set by the tabs that own them, read by later tabs
    template_text: gr.Textbox | None = None
    template_name: gr.Textbox | None = None
    max_length: gr.Number | None = None
    truncate: gr.Dropdown | None = None
    label_words: gr.Textbox | None = None
    verbalizer_name: gr.Textbox | None = None
    opening: dict[str, Any] = field(default_factory=dict)   # the project's latest template / label words
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
        return cls(ctx=ctx, data_sel=gr.State(default), kept_data=kept_data, kept_drafts=kept_drafts,
                   model_state=model_state, banner=banner, page=page,
                   timer=gr.Timer(1.0, active=ctx.model.status()["state"] == "loading"),
                   opening={} if "error" in opening else opening)

    def poll_model(self) -> tuple[str, str, Any]:
        status = self.ctx.model.status()
        return banner_html(status), status["state"], gr.Timer(active=status["state"] == "loading")

    def keep_drafts_in_browser(self) -> None:
        """Copy the template and label-word editors into the browser's storage (in the page itself, no
        request) when typing pauses — the page script clicks this hidden button — so leaving or refreshing
        the page keeps unsaved work without adding anything to each keystroke."""
        trigger = gr.Button("keep drafts", elem_id="ps-draft-trigger")
        trigger.click(None, [self.template_text, self.label_words], [self.kept_drafts],
                      js="(t, w) => ({template: t, label_words: w})")

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
