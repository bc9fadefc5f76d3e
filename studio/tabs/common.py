"""Helpers every tab uses: a guard that turns an unexpected exception into a visible message, and
small converters between service results and component updates."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

log = logging.getLogger("studio")


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User mistakes come back from services as ``{"error": ...}`` and are drawn next to their field.
    Anything else is a bug: log the traceback and show a short notice; the server keeps serving."""
    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the page
            log.exception("studio handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}: {exc}). Nothing saved was lost; "
                           "the details are in the server log.") from None
    return inner


def config_or_message(build: Callable[[], Any]) -> tuple[Any, str]:
    """Run ``build`` (which makes a RunConfig from the page's fields); a user error comes back as the
    HTML message to show next to the button instead of a config."""
    from backend.errors import StudioError
    from backend.services.results import error_result
    from studio.views.messages import error_html

    try:
        return build(), ""
    except StudioError as exc:  # ConfigError / VerbalizerError / DatasetError name the field
        return None, error_html(error_result(exc))


def as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def row_picker(ctx: Any, sel: dict[str, Any], picked: list[Any] | None, default_count: int) -> Any:
    """Example-picker choices for the browser's data; keeps the still-valid picks, else the first rows."""
    from backend.services import data as data_service

    choices = data_service.row_choices(ctx, sel)
    valid = {c[1] for c in choices}
    keep = [p for p in picked or [] if as_int(p, -1) in valid] or [c[1] for c in choices[:default_count]]
    return gr.Dropdown(choices=choices, value=keep)
