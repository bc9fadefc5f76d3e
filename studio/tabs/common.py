"""Helpers every tab uses: a guard that checks what a handler receives and turns an unexpected exception
into a visible message, and small converters between service results and component updates."""
from __future__ import annotations

import functools
import inspect
import logging
import types
import typing
from collections.abc import Callable
from typing import Any

import gradio as gr

from backend.services.results import USER_ERRORS

log = logging.getLogger("studio")

JOB_POLL_S = 1.0      # how often a page asks storage where a background job stands


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The edge of the studio: every event handler is wrapped in this.

    What arrives is checked first, because the HTTP API hands a handler whatever a caller sent (Gradio
    passes text fields and dropdowns through unchecked): a value of the wrong kind for the handler's
    annotation, or text that is not valid Unicode (a lone surrogate, which no database or tokenizer can
    take), is refused with a message naming the input. User mistakes come back from services as
    ``{"error": ...}`` and are drawn next to their field; a typed error that escapes a handler is still the
    user's and is shown with its own message. Anything else is a bug: log the traceback and show a short
    notice; the server keeps serving."""
    check = _input_checker(fn)

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise gr.Error(_short(getattr(exc, "message", str(exc))), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the page
            log.exception("studio handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}: {_short(str(exc))}). Nothing saved "
                           "was lost; the details are in the server log.") from None
    return inner


def _short(message: str, limit: int = 300) -> str:
    """A message fit for a notice: one that quotes a megabyte of input is cut, saying so."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message)} characters)"


def _input_checker(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
    """A check of ``fn``'s arguments against its annotations, worked out once per handler."""
    sig = inspect.signature(fn)
    hints = {name: _resolve(p.annotation, fn) for name, p in sig.parameters.items()}

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError:
            raise gr.Error("this action was called with the wrong number of inputs",
                           print_exception=False) from None
        for name, value in bound.arguments.items():
            param = sig.parameters[name]
            values = value if param.kind is param.VAR_POSITIONAL else (value,)
            for v in values:
                bad = _invalid_text(v)
                if bad:
                    raise gr.Error(f"input {name!r} {bad}; remove it and try again", print_exception=False)
                if param.kind is not param.VAR_POSITIONAL and not _fits(v, hints[name]):
                    raise gr.Error(f"input {name!r} should be {_describe(hints[name])}, got {_kind_of(v)}",
                                   print_exception=False)
    return check


def _resolve(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A parameter's annotation as a type (they are strings under ``from __future__ import annotations``);
    one that cannot be resolved, or none, is not checked."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, getattr(fn, "__globals__", {}))  # noqa: S307 - our own source code
        except Exception:  # noqa: BLE001
            return Any
    return annotation


def _invalid_text(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` (text, or text inside lists / dicts) cannot be stored or tokenized, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"contains a character that is not valid text (U+{ord(value[exc.start]):04X}, a lone "
                    f"surrogate, at position {exc.start})")
        return None
    if depth < 4 and isinstance(value, (list, tuple)):
        return next((r for r in (_invalid_text(v, depth + 1) for v in value) if r), None)
    if depth < 4 and isinstance(value, dict):
        return next((r for r in (_invalid_text(v, depth + 1) for v in (*value.keys(), *value.values()))
                     if r), None)
    return None


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated kind; None always fits (an empty field sends None)."""
    if value is None or hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return False
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (str, int, bool):
        return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if origin is list or hint is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list of " + (", ".join(sorted({type(v).__name__ for v in value})) or "nothing")
    return type(value).__name__


def _describe(hint: Any) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint) if h is not type(None))
    if typing.get_origin(hint) is list:
        return "a list" + (f" of {_describe(typing.get_args(hint)[0])}" if typing.get_args(hint) else "")
    if typing.get_origin(hint) is dict or hint is dict:
        return "an object"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


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


def cost_estimate(ctx: Any, parse: Callable[[], tuple[Any, str]], plan: Callable[[Any], dict[str, Any]],
                  card: Callable[[dict[str, Any]], str]) -> tuple[str, str]:
    """(message, card) for an "Estimate cost" button (one training or a whole sweep): the model must be
    loaded (a cost is measured on it), then the form must parse, then ``plan`` prices it."""
    from studio.views.messages import error_html, info_html

    status = ctx.model.status()
    if status["state"] != "ready":
        return info_html(status["message"]), ""
    value, problem = parse()
    if value is None:
        return problem, ""
    res = plan(value)
    return (error_html(res), "") if "error" in res else ("", card(res))


def code_view(parsed: tuple[Any, str], text: Callable[[Any], str]) -> tuple[str, Any]:
    """(message, code box) for a "Copy as command / spec" button: the form's text when it parses."""
    value, problem = parsed
    if value is None:
        return problem, gr.Code(visible=False)
    return "", gr.Code(text(value), visible=True)


def as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity sent over the API
        return default


def row_picker(ctx: Any, sel: dict[str, Any], picked: list[Any] | None, default_count: int) -> Any:
    """Example-picker choices for the browser's data; keeps the still-valid picks, else the first rows."""
    from backend.services import data as data_service

    choices = data_service.row_choices(ctx, sel)
    valid = {c[1] for c in choices}
    keep = [p for p in picked or [] if as_int(p, -1) in valid] or [c[1] for c in choices[:default_count]]
    return gr.Dropdown(choices=choices, value=keep)


def cancel_handler(ctx: Any, cancel: Callable[[Any, int], dict[str, Any]], title: str) -> Callable[..., str]:
    """The Cancel button of a background job (a comparison, a search, an ensemble): ``cancel(ctx, job)`` on
    the session's project, its message or error drawn as the page draws them."""
    from studio.views.messages import error_html, info_html

    @guard
    def do_cancel(job_id: Any, pj: str | None = None) -> str:
        if job_id is None:
            return error_html({"error": {"message": f"no {title} to cancel: start one first"}})
        res = cancel(ctx.scoped(pj), as_int(job_id, 0))
        return error_html(res) if "error" in res else info_html(res["message"])
    return do_cancel
