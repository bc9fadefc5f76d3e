"""A content hash of mapped examples: the dataset identity stored with every run.

Computed over canonical JSON (sorted keys, fixed separators, UTF-8), so it is the same across runs,
machines and Python versions, and changes whenever anything the engine sees changes: a text, a label,
the row order, the column mapping's result, or the class names.

``example_key`` is the per-example counterpart: the content of one example (text_a, text_b, label, meta;
not its row number), so the same row read from two files, or twice from one, has the same key: a row's
identity where no row number says it. ``input_key`` leaves the label out: what the model is shown. It is
how a run proves it never evaluates on a row it trained on (the same text under another label, label noise
or a duplicate, is the same input to the model) and how demonstrations stay apart from the query.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from backend.prompts.example import Example


def fingerprint(examples: Iterable[Example], label_names: Sequence[str] | None = None) -> str:
    """Hex sha256 over the examples (and the class names, when given)."""
    h = hashlib.sha256()
    if label_names is not None:
        h.update(json.dumps({"label_names": list(label_names)}, ensure_ascii=False).encode())
        h.update(b"\n")
    for ex in examples:
        line = json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def input_key(example: Example) -> str:
    """What makes two rows the same input to the model: text_a, text_b and meta, not the label."""
    content = {"a": example.text_a, "b": example.text_b, "m": dict(example.meta)}
    line = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(line.encode()).hexdigest()


def example_key(example: Example) -> str:
    """Hex sha256 of one example's content (text_a, text_b, label, meta), independent of its row number."""
    content = {"text_a": example.text_a, "text_b": example.text_b, "label": example.label,
               "meta": dict(example.meta)}
    line = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(line.encode()).hexdigest()
