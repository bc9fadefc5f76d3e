"""Text checked where it enters the engine: lone surrogates, and values too big to print.

Why at the edge: a lone UTF-16 surrogate (``"\\ud800"``, what a JSON ``\\ud800`` escape or a cut emoji
decodes to) is a valid Python ``str`` but not encodable as UTF-8, so it travels silently until a tokenizer,
a content hash, a file write or ``sys.stderr`` raises ``UnicodeEncodeError`` far from where it came in.
Each edge calls ``surrogate_at`` and raises its own typed error with the location it knows (the
character span in a template, the row and column of a data file, the dotted path of a config key).

Reject, never replace, at every edge so far: a template or a verbalizer is something the user is typing
and fixes at once; a data row silently changed would make the recorded run evaluate text that is not in
the file (the same reason over-long fields are refused, not cut, in ``backend.data.mapping``); a config
is the run's reproducible record and must say exactly what was run.
"""
from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate_at(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (None when the text is valid Unicode)."""
    m = _SURROGATE.search(text)
    return m.start() if m else None


def surrogate_message(text: str, index: int) -> str:
    """The shared wording: which character, where, and what to do about it."""
    return (f"character {index} is a lone surrogate (U+{ord(text[index]):04X}, half of a UTF-16 pair, not "
            "valid Unicode); remove it or replace it with the intended character")


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for any value.

    ``repr`` of an int over 4,300 digits raises ValueError (Python's int/str conversion limit), and a
    megabyte string would make a one-line error message a megabyte long.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}an integer of about {digits:,} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - an object whose repr fails still needs a message
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."



def check_cell(value: Any, row: int, column: str) -> Any:
    """A data cell (text, label or meta value) as read from a file: a string with a lone surrogate is a
    DatasetError naming the row and column; anything else is returned unchanged."""
    if isinstance(value, str):
        at = surrogate_at(value)
        if at is not None:
            from backend.errors import DatasetError

            raise DatasetError(f"row {row}, column {column!r}: {surrogate_message(value, at)}",
                               row=row, column=column)
    return value
