"""Errors a user can cause, each with a human message and where it happened.

The studio shows ``message`` next to the field that caused it and uses ``span`` to underline the exact
characters; the CLI prints ``str(err)``. Nothing a user types may surface as a bare traceback, so every
user-facing failure in the engine is one of these types.
"""
from __future__ import annotations

import re
from typing import Any

# A message that starts with the setting it is about ("train.steps: must be at least 1").
_LEADING_PATH = re.compile(r"([A-Za-z_][\w]*(?:\.[\w\[\]]+)*): ")


class StudioError(Exception):
    """Base class: a problem in something the user supplied (never a bug in our code)."""

    field: str = "input"

    def __init__(self, message: str, *, span: tuple[int, int] | None = None,
                 row: int | None = None, column: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.row = row
        self.column = column
        if field is not None:
            self.field = field

    def location(self) -> str:
        parts = []
        if self.span is not None:
            parts.append(f"characters {self.span[0]}-{self.span[1]}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"{self._named()}" + (f" ({where})" if where else "")

    def _named(self) -> str:
        """The message after its field, unless it already starts with that field or a setting inside it
        (the CLI printed ``config: train.steps: must be at least 1``)."""
        lead = _LEADING_PATH.match(self.message)
        if lead and (lead.group(1) == self.field or lead.group(1).startswith(self.field + ".")
                     or ("." in lead.group(1) and self.field == type(self).field)):
            return self.message
        return f"{self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "field": self.field, "message": self.message,
                "span": list(self.span) if self.span else None, "row": self.row, "column": self.column}


class TemplateError(StudioError):
    field = "template"


class VerbalizerError(StudioError):
    field = "verbalizer"


class DatasetError(StudioError):
    field = "data"


class ConfigError(StudioError):
    field = "config"


class ModelError(StudioError):
    field = "model"


class EncodingError(StudioError):
    """The wrapped example cannot be encoded (e.g. the fixed parts alone exceed max_length)."""

    field = "template"
