"""Guess a column mapping from a file's names *and* content, and say in one line what was guessed.

Names first (``text``, ``sentence``, ``label``... as public datasets spell them); for what the names do not
settle, the content decides: the label is a column with few distinct short values (at least two, each
repeated), text_a the longest free-text column left, text_b a second free-text column when there is one.
A user's own CSV (``review``, ``sentiment``) then maps itself, and the user only corrects a wrong guess.

Three rules keep a small file from being mis-guessed: a column named like text (``text``, ``review``...) is
never the label (two rows of short reviews look like two classes); a file of one column is unlabelled text;
and the guess only ever names columns the file has, so a text column it cannot find is a DatasetError that
says so and lists the columns, not a mapping to a made-up ``text_a``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from backend.data.mapping import ColumnMap
from backend.errors import DatasetError

SAMPLE_ROWS = 500
_LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "gold", "answer", "rating",
                "polarity", "topic", "intent", "emotion", "stance")
_TEXT_A_NAMES = ("text_a", "text", "sentence", "sentence1", "premise", "question", "review", "content",
                 "document", "body", "comment", "tweet", "utterance", "query", "input")
_TEXT_B_NAMES = ("text_b", "sentence2", "hypothesis", "answer_text", "context", "passage")
MAX_LABELS = 50            # more distinct values than this is not a class column


@dataclass
class _Profile:
    name: str
    strings: int           # non-empty string cells in the sample
    wordy: int             # cells with a letter in them (an id or a score column has none)
    mean_chars: float
    distinct: int
    counts: Counter


def _profile(rows: list[dict[str, Any]], column: str) -> _Profile:
    values = [r.get(column) for r in rows[:SAMPLE_ROWS]]
    texts = [str(v) for v in values if v is not None and str(v).strip() != ""]
    strings = sum(1 for v in values if isinstance(v, str) and v.strip())
    counts = Counter(texts)
    wordy = sum(1 for t in texts if any(ch.isalpha() for ch in t))
    return _Profile(column, strings, wordy, sum(map(len, texts)) / len(texts) if texts else 0.0, len(counts),
                    counts)


def _is_label(p: _Profile, n: int) -> bool:
    return 2 <= p.distinct <= min(MAX_LABELS, max(2, n // 2)) and p.mean_chars <= 40


def _is_text(p: _Profile, n: int) -> bool:
    enough = max(1, n // 2)
    return p.strings >= enough and p.wordy >= enough and (p.mean_chars >= 15 or p.distinct > max(MAX_LABELS, n // 2))


def guess_mapping(columns: list[str], rows: list[dict[str, Any]]) -> tuple[ColumnMap, str]:
    """The mapping for ``columns`` and one friendly line saying what was guessed from what."""
    n = min(len(rows), SAMPLE_ROWS)
    lower = {c.strip().lower(): c for c in reversed(columns)}   # " Label " is a label too; first one wins
    profiles = {c: _profile(rows, c) for c in columns}
    why: dict[str, str] = {}
    if len(columns) == 1:   # nothing to classify by: the one column is the text, the data unlabelled
        mapping = ColumnMap(text_a=_text_column(columns, columns, rows), label=None)
        return mapping, _explain(mapping, {"text_a": "the only column"}, profiles)
    texty = {lower[k] for k in _TEXT_A_NAMES + _TEXT_B_NAMES if k in lower}

    # a column called "label" is the label whatever it holds (its checks then name any bad value); the
    # other usual names must also look like classes
    label = lower.get("label") or next(
        (lower[k] for k in _LABEL_NAMES if k in lower and _is_label(profiles[lower[k]], n)), None)
    if label:
        why["label"] = "by its name"
    else:
        candidates = [p for p in profiles.values() if p.name not in texty and _is_label(p, n)]
        if candidates:   # fewest distinct values, then shortest: the most class-like column
            label = min(candidates, key=lambda p: (p.distinct, p.mean_chars)).name
            why["label"] = f"{profiles[label].distinct} distinct values"
    rest = [c for c in columns if c != label]
    text_a = next((lower[k] for k in _TEXT_A_NAMES if k in lower and lower[k] in rest), None)
    if text_a:
        why["text_a"] = "by its name"
    else:
        texts = sorted((c for c in rest if _is_text(profiles[c], n)), key=lambda c: -profiles[c].mean_chars)
        text_a = texts[0] if texts else _text_column(rest, columns, rows)
        why["text_a"] = "the longest free text" if texts else "the first column left"
    text_b = next((lower[k] for k in _TEXT_B_NAMES if k in lower and lower[k] in rest and lower[k] != text_a),
                  None)
    if text_b:
        why["text_b"] = "by its name"
    else:
        others = [c for c in rest if c != text_a and _is_text(profiles[c], n)]
        if others:
            text_b = max(others, key=lambda c: profiles[c].mean_chars)
            why["text_b"] = "a second free-text column"
    if label is None:   # nothing looks like classes: keep the usual name, so a missing label is reported
        mapping = ColumnMap(text_a=text_a, text_b=text_b, label="label" if not rows else None)
        if mapping.label is None:
            return ColumnMap(text_a=text_a, text_b=text_b, label="label"), (
                f"Guessed text_a ← '{text_a}' ({why['text_a']}), but no column looks like a label (a few "
                "distinct short values); choose it under Column mapping, or none for unlabelled data.")
    mapping = ColumnMap(text_a=text_a, text_b=text_b, label=label)
    return mapping, _explain(mapping, why, profiles)


def _text_column(rest: list[str], columns: list[str], rows: list[dict[str, Any]]) -> str:
    """The first of ``rest`` that holds any text (a CSV's cells all do); DatasetError listing the columns
    when none does. Why not a default name: a mapping to a column the file lacks is reported as the user's
    mistake ("text_a is mapped to column 'text_a'...") about a mapping they never made."""
    for column in rest:
        if any(isinstance(r.get(column), str) for r in rows[:SAMPLE_ROWS]):
            return column
    besides = "" if set(rest) == set(columns) else f" besides the label {next(c for c in columns if c not in rest)!r}"
    shown = ", ".join(repr(c) for c in columns) if columns else "none"
    raise DatasetError(f"could not guess the text column (text_a): no column{besides} holds text; the "
                       f"columns are: {shown}")


def _explain(m: ColumnMap, why: dict[str, str], profiles: dict[str, _Profile]) -> str:
    parts = [f"text_a ← '{m.text_a}' ({why['text_a']})"]
    if m.text_b:
        parts.append(f"text_b ← '{m.text_b}' ({why['text_b']})")
    if m.label:
        top = ", ".join(v[:20] for v, _ in profiles[m.label].counts.most_common(6))
        more = "" if profiles[m.label].distinct <= 6 else ", …"
        parts.append(f"label ← '{m.label}' ({why['label']}: {top}{more})")
    else:
        parts.append("no label column (unlabelled data)")
    return "Guessed the columns: " + "; ".join(parts) + ". Change them under Column mapping if that is wrong."
