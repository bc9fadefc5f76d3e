"""Class names for labels: derived (sorted distinct values) or given, and checked against the data.

Labels keep their original values on the Example. ``label_names`` fixes the class order: a label is its
class by name (``str(label)``), or, when it is an integer the names do not contain, by index, so
``label_names=["negative", "positive"]`` with labels 0/1 means 0 -> negative. This is the same rule the
evaluator applies when it turns labels into class indices.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.errors import DatasetError
from backend.prompts.example import Example


def _sort_key(label: Any) -> tuple[int, Any]:
    # integers numerically (2 before 10), then text alphabetically
    if isinstance(label, int) and not isinstance(label, bool):
        return (0, label)
    return (1, str(label))


def derive_label_names(examples: Sequence[Example]) -> list[str]:
    """Sorted distinct labels as strings."""
    distinct = {e.label for e in examples if e.label is not None}
    return [str(label) for label in sorted(distinct, key=_sort_key)]


def class_index(label: Any, names: Sequence[str]) -> int | None:
    """The class of ``label`` under ``names``; None when it has none."""
    key = str(label)
    if key in names:
        return list(names).index(key)
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
        return label
    return None


def check_label_names(label_names: Any, examples: Sequence[Example], column: str | None) -> list[str]:
    """Validate user-given class names and that every labelled example maps to one of them."""
    if not isinstance(label_names, (list, tuple)) or not label_names:
        raise DatasetError("label_names must be a non-empty list of class names", field="label_names")
    names = [str(n) for n in label_names]
    if len(set(names)) != len(names):
        raise DatasetError(f"label_names has duplicates: {names}", field="label_names")
    for row, ex in enumerate(examples):
        if ex.label is not None and class_index(ex.label, names) is None:
            raise DatasetError(f"row {row} has label {ex.label!r}, which is not one of label_names {names}"
                               + (" (nor an index into them)" if isinstance(ex.label, int) else ""),
                               row=row, column=column)
    return names
