"""``load_examples``: source + column mapping -> checked Examples, class names and a fingerprint."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.data.fingerprint import fingerprint
from backend.data.guess import guess_mapping
from backend.data.labels import check_label_names, derive_label_names
from backend.data.mapping import ColumnMap, check_columns, rows_to_examples
from backend.data.readers import read_source
from backend.prompts.example import Example


@dataclass
class LoadedData:
    examples: list[Example]
    label_names: list[str]      # class order: sorted distinct labels as strings, unless given
    columns: list[str]          # the source's columns (for the studio's column-mapping UI)
    fingerprint: str            # sha256 over the mapped content (stable across runs and machines)
    source: str
    mapping: ColumnMap = field(default_factory=ColumnMap)   # the mapping in effect
    guessed: str = ""           # one line saying what was guessed, when no mapping was given


def load_examples(source: str, columns: ColumnMap | dict[str, Any] | None = None, split: str | None = None,
                  limit: int | None = None, label_names: Sequence[str] | None = None) -> LoadedData:
    """Read ``source`` and map it to Examples. ``columns=None`` guesses the mapping from the columns'
    names and content (``backend.data.guess``). Every problem is a DatasetError."""
    table = read_source(source, split, limit)
    guessed = ""
    if columns is None:
        mapping, guessed = guess_mapping(table.columns, table.rows)
    else:
        mapping = ColumnMap.from_value(columns, table.columns)
    check_columns(mapping, table.columns, table.origin)
    examples = rows_to_examples(table.rows, mapping, table.typed)
    names = (check_label_names(label_names, examples, mapping.label) if label_names is not None
             else derive_label_names(examples))
    return LoadedData(examples=examples, label_names=names, columns=list(table.columns),
                      fingerprint=fingerprint(examples, names), source=source, mapping=mapping, guessed=guessed)
