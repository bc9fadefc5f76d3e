"""Train tab (being wired)."""
from __future__ import annotations

import gradio as gr

from backend.services.context import StudioContext
from studio.shared import Shared


def build(ctx: StudioContext, shared: Shared) -> None:
    gr.Markdown("not available yet")
