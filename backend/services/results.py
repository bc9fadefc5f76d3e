"""The shape every service function returns: a plain JSON-able dict, or ``{"error": {...}}``.

Why not raise: the studio shows a user's mistake next to the field that caused it and keeps going, and a
dict crosses the Gradio boundary (and the HTTP API) unchanged. Only *typed* errors become results —
StudioError from the backend and StorageError from storage; anything else is a bug and propagates so it
is logged with its traceback instead of being dressed up as a user error.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from backend.errors import StudioError
from storage.errors import StorageError

F = TypeVar("F", bound=Callable[..., dict[str, Any]])
USER_ERRORS = (StudioError, StorageError)   # what a user can cause; everything else is a bug


def error_result(exc: Exception, field: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` for a typed error (field, message, span / row / column when known).

    A StudioError keeps its own field (a TemplateError raised during evaluation still points at the
    template); ``field`` names where a StorageError, which has no field, is shown.
    """
    if isinstance(exc, StudioError):
        return {"error": exc.to_dict()}
    return {"error": {"error": type(exc).__name__, "field": field or "storage",
                      "message": getattr(exc, "message", str(exc)), "span": None, "row": None,
                      "column": None}}


def user_error(message: str, field: str, **where: Any) -> dict[str, Any]:
    """An error result made by the service itself (e.g. "pick at least two runs")."""
    return {"error": {"error": "StudioError", "field": field, "message": message,
                      "span": where.get("span"), "row": where.get("row"), "column": where.get("column")}}


def service(field: str | None = None) -> Callable[[F], F]:
    """Decorator: typed errors raised inside become ``{"error": ...}`` results (storage ones tagged ``field``)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as exc:
                return error_result(exc, field)
        return inner  # type: ignore[return-value]
    return wrap
