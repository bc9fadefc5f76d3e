"""Map source rows to Examples through a column mapping, checking every value on the way.

Checks happen here, once, so the engine can trust an Example: text fields are strings, every labelled
example has a label the class list knows, and no field is absurdly long.

Huge text: a field over ``MAX_FIELD_CHARS`` characters is refused with a DatasetError naming the row and
column rather than truncated. That much text (tens of thousands of tokens) is far beyond any model's
context, so it is almost always a mis-mapped column or a broken file, and silently cutting it would
change what the user evaluates. Template encoding truncates normal long inputs to ``max_length``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from backend.errors import DatasetError
from backend.prompts.example import Example
from backend.textcheck import check_cell

MAX_FIELD_CHARS = 100_000

# With no mapping given, the first of these present is used (common names in public datasets).
_TEXT_A_GUESSES = ("text_a", "text", "sentence", "sentence1", "premise", "question", "review", "content")
_TEXT_B_GUESSES = ("text_b", "sentence2", "hypothesis")
_INT_RE = re.compile(r"^-?\d+$")


@dataclass
class ColumnMap:
    """Which source column feeds each Example field; ``label=None`` means unlabelled data."""

    text_a: str = "text_a"
    text_b: str | None = None
    label: str | None = "label"
    meta: dict[str, str] = field(default_factory=dict)   # meta name -> column

    @classmethod
    def from_value(cls, value: ColumnMap | dict[str, Any] | None, columns: list[str]) -> ColumnMap:
        """A ColumnMap from a dict (JSON config) or None (guess from ``columns``)."""
        if isinstance(value, ColumnMap):
            return value
        if value is None:
            return cls._guess(columns)
        if not isinstance(value, dict):
            raise DatasetError(f"column mapping must be an object, not {type(value).__name__}", field="columns")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DatasetError(f"unknown keys in the column mapping: {unknown}; use {sorted(known)}",
                               field="columns")
        meta = value.get("meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in meta.items()):
            raise DatasetError("columns.meta must map names to column names (strings)", field="columns")
        for key in ("text_a", "text_b", "label"):
            if value.get(key) is not None and not isinstance(value[key], str):
                raise DatasetError(f"columns.{key} must be a column name", field="columns")
        return cls(text_a=value.get("text_a") or "text_a", text_b=value.get("text_b"),
                   label=value.get("label", "label"), meta=dict(meta))

    @classmethod
    def _guess(cls, columns: list[str]) -> ColumnMap:
        text_a = next((c for c in _TEXT_A_GUESSES if c in columns), "text_a")
        text_b = next((c for c in _TEXT_B_GUESSES if c in columns), None)
        return cls(text_a=text_a, text_b=text_b, label="label")

    def used(self) -> dict[str, str]:
        """Example field -> column, for every mapped field."""
        out = {"text_a": self.text_a}
        if self.text_b:
            out["text_b"] = self.text_b
        if self.label:
            out["label"] = self.label
        out.update({f"meta.{k}": v for k, v in self.meta.items()})
        return out


def display_name(origin: str) -> str:
    """A source as a message names it: a file by its name alone (a server's folders are nobody's business
    and tell the user nothing), a hub id or built-in as given."""
    from pathlib import Path

    path = Path(origin)
    return path.name if path.is_absolute() or path.exists() else origin


def check_columns(mapping: ColumnMap, columns: list[str], origin: str) -> None:
    """Every mapped column must exist; the message lists the ones that do."""
    shown = display_name(origin)
    for target, column in mapping.used().items():
        if column not in columns:
            hint = " (set label to none for unlabelled data)" if target == "label" else ""
            raise DatasetError(f"{target} is mapped to column {column!r}, which {shown} does not have; "
                               f"available columns: {', '.join(columns)}{hint}", column=column)


def _cell(value: Any, row: int, column: str) -> Any:
    """``check_cell`` (no lone surrogate), and no NUL, in the cell and in every string nested in it (a
    JSONL meta cell may be a list or an object): a cell's text reaches a run's predictions and label names,
    which its exported bundle stores, and a bundle with a NUL is refused on import."""
    stack = [value]
    while stack:  # a loop, not recursion: a cell nested as deep as the JSON reader allows is still checked
        item = stack.pop()
        if isinstance(item, str):
            if "\0" in item:
                raise DatasetError(f"row {row}, column {column!r}: character {item.index(chr(0))}"
                                   f"{' of a nested value' if item is not value else ''} is a NUL (U+0000), "
                                   "not text; remove it from the file", row=row, column=column)
            check_cell(item, row, column)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return value


def _text(value: Any, row: int, column: str, required: bool) -> str:
    if value is None:
        if required:
            raise DatasetError(f"row {row} has no value in text column {column!r}", row=row, column=column)
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"text column {column!r} must hold strings; row {row} has "
                           f"{type(value).__name__} {str(value)[:40]!r}", row=row, column=column)
    if len(value) > MAX_FIELD_CHARS:
        raise DatasetError(f"row {row}, column {column!r}: text is {len(value):,} characters, over the "
                           f"{MAX_FIELD_CHARS:,} limit; is the right column mapped?", row=row, column=column)
    return _cell(value, row, column)


def _label(value: Any, row: int, column: str) -> Any:
    if value is None or value == "":
        raise DatasetError(f"row {row} has no label", row=row, column=column)
    if not isinstance(value, (str, int)):  # bool is an int
        raise DatasetError(f"labels must be text or whole numbers; row {row} has {type(value).__name__} "
                           f"{str(value)[:40]!r}", row=row, column=column)
    return _cell(value, row, column)


def rows_to_examples(rows: list[dict[str, Any]], mapping: ColumnMap, typed: bool) -> list[Example]:
    """Examples (guid = row index) from rows whose columns were already checked."""
    examples = []
    for i, row in enumerate(rows):
        label = _label(row[mapping.label], i, mapping.label) if mapping.label else None
        examples.append(Example(
            guid=i,
            text_a=_text(row[mapping.text_a], i, mapping.text_a, required=True),
            text_b=_text(row[mapping.text_b], i, mapping.text_b, required=False) if mapping.text_b else "",
            label=label,
            meta={name: _cell(row[col], i, col) for name, col in mapping.meta.items()},
        ))
    if mapping.label and not typed and all(isinstance(e.label, str) and _INT_RE.match(e.label)
                                           for e in examples):
        # CSV/TSV cells are all strings; a label column of integer literals means integer labels
        examples = [Example(e.guid, e.text_a, e.text_b, int(e.label), e.meta) for e in examples]
    return examples
