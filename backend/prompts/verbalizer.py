"""Verbalizer: label words per class -> token ids, and how their scores become class scores.

Accepts OpenPrompt's forms (list per class, nested list, dict, or a txt/csv/json file). Label words get
the leading space a BPE tokenizer needs to see them as whole words after preceding text (`" great"`),
unless a word starts with ``<!>`` (OpenPrompt's opt-out).

Multi-token words: ``first`` / ``mean`` / ``max`` read all sub-tokens at the one mask position (as
OpenPrompt does); ``exact`` scores the word by teacher forcing (sum of sub-token log-probs; causal models).
Aggregating a class's words: ``logsumexp`` (probability that the answer is any of them; default) or
``mean`` (OpenPrompt's mean of log-probs).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from backend.errors import VerbalizerError
from backend.textcheck import surrogate_at, surrogate_message

MULTI_TOKEN = ("first", "mean", "max", "exact")
AGGREGATE = ("logsumexp", "mean")
NO_PREFIX = "<!>"


@dataclass(frozen=True)
class Verbalizer:
    classes: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]       # per class, in class order
    multi_token: str = "first"
    aggregate: str = "logsumexp"

    def to_dict(self) -> dict[str, Any]:
        return {"label_words": {c: list(w) for c, w in zip(self.classes, self.words)},
                "multi_token": self.multi_token, "aggregate": self.aggregate}

    def canonical_json(self) -> str:
        """Stable text for hashing / versioning."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)


LABEL_WORD_FILES = (".txt", ".csv", ".json")


def _read_file(path: Path) -> Any:
    """A label-word file's value. Read as utf-8-sig: a BOM (what Notepad writes) would otherwise become
    part of the first word, a word no tokenizer turns into the one the user wrote. Python's own limits
    (nesting, 4,300-digit numbers, csv's field size) are VerbalizerErrors naming the file, not tracebacks."""
    from backend.data.readers import json_limit_reason

    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerbalizerError(f"cannot read label-word file {str(path)!r}: {exc}") from None
    if path.suffix == ".json":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise VerbalizerError(f"{path.name} is not valid JSON: {exc.msg}", row=exc.lineno) from None
        except (ValueError, RecursionError) as exc:
            raise VerbalizerError(f"{path.name} cannot be read: {json_limit_reason(exc)}") from None
    # OpenPrompt's txt/csv format: one class per line, its words separated by commas.
    rows = []
    reader = csv.reader(io.StringIO(raw))
    try:
        for row in reader:
            words = [w.strip() for w in row if w.strip()]
            if words:
                rows.append(words)
    except csv.Error as exc:     # a field over csv's size limit
        raise VerbalizerError(f"line {reader.line_num} of {path.name} cannot be read: {exc}") from None
    return rows


def _as_words(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise VerbalizerError(f"label words for {where} must be a word or a list of words")
    out = []
    for w in items:
        if not isinstance(w, str):
            raise VerbalizerError(f"label word {w!r} for {where} is not text")
        if w.strip() in ("", NO_PREFIX):
            raise VerbalizerError(f"an empty label word for {where}")
        nul = w.find("\0")        # a stored run's bundle refuses NUL: never let one into a run
        if nul >= 0:
            raise VerbalizerError(f"label word {len(out) + 1} for {where}: character {nul} is a NUL (U+0000); "
                                  "remove it", span=(nul, nul + 1))
        at = surrogate_at(w)      # rejected at the edge: it cannot be tokenized, hashed or saved
        if at is not None:
            raise VerbalizerError(f"label word {len(out) + 1} for {where}: {surrogate_message(w, at)}",
                                  span=(at, at + 1))
        out.append(w)
    if not out:
        raise VerbalizerError(f"class {where} has no label words")
    return out


def read_label_word_file(path: str | Path) -> Any:
    """A label-word file's value (a dict per class or a list per class), for the command line, which reads
    a file it was given at its edge so that what is recorded and run is the words, not a server path."""
    spec = Path(path)
    if spec.suffix not in LABEL_WORD_FILES:
        raise VerbalizerError(f"label-word file {str(path)!r}: expected a {', '.join(LABEL_WORD_FILES)} file")
    try:
        found = spec.is_file()
    except OSError as exc:      # a name too long for the file system, say
        raise VerbalizerError(f"label-word file {str(path)!r}: {exc.strerror or exc}") from None
    if not found:
        raise VerbalizerError(f"label-word file {str(path)!r} not found")
    return _read_file(spec)


def parse_verbalizer(spec: Any, classes: Sequence[str] | None = None, *, multi_token: str = "first",
                     aggregate: str = "logsumexp", files: bool = False) -> Verbalizer:
    """Build a Verbalizer from a dict / list / nested list, matched to ``classes``.

    A dict may also carry ``label_words`` with ``multi_token`` / ``aggregate`` beside it (our saved form).
    ``files``: the spec may name a label-word file (a run config read by the command line). Only there:
    label words typed in the studio reach this function too, and naming a file there would show the
    server's files to whoever can reach the studio (a file read as label words is listed by the coverage
    table and stored by a save). A ``label_words`` inside the saved form is always inline.
    """
    if isinstance(spec, dict) and "label_words" in spec:
        multi_token = spec.get("multi_token", multi_token)
        aggregate = spec.get("aggregate", aggregate)
        spec = spec["label_words"]
        if isinstance(spec, (str, Path)):
            raise VerbalizerError("label_words must be {class: [words]} or a list of words per class, not a "
                                  "file name (a label-word file is given as the whole verbalizer)")
    if isinstance(spec, (str, Path)):
        if not files:
            raise VerbalizerError("give the label words themselves (e.g. {\"negative\": [\"bad\"], \"positive\": "
                                  "[\"good\"]}), not a file name: only a run config read by the command line "
                                  "may name a label-word file")
        spec = read_label_word_file(spec)
    if multi_token not in MULTI_TOKEN:
        raise VerbalizerError(f"multi_token must be one of {', '.join(MULTI_TOKEN)}, not {multi_token!r}")
    if aggregate not in AGGREGATE:
        raise VerbalizerError(f"aggregate must be one of {', '.join(AGGREGATE)}, not {aggregate!r}")
    cls_names = [str(c) for c in classes] if classes is not None else None
    if isinstance(spec, dict):
        mapping = {str(k): _as_words(v, repr(str(k))) for k, v in spec.items()}
        if not mapping:
            raise VerbalizerError("the verbalizer has no classes")
        if cls_names is None:
            cls_names = list(mapping)
        missing = [c for c in cls_names if c not in mapping]
        extra = [c for c in mapping if c not in cls_names]
        if extra:
            near = [f"{c!r} differs from {k!r} only by spaces around it" for k in extra for c in cls_names
                    if c != k and c.strip() == k.strip()]
            raise VerbalizerError(f"label words given for unknown class(es) {extra}; the classes are {cls_names}"
                                  + (f" ({'; '.join(near)}: remove the spaces from the labels in the data file)"
                                     if near else ""))
        if missing:
            raise VerbalizerError(f"class(es) {missing} have no label words")
        words = [mapping[c] for c in cls_names]
    elif isinstance(spec, (list, tuple)):
        if not spec:
            raise VerbalizerError("the verbalizer has no classes")
        if cls_names is None:
            cls_names = [str(i) for i in range(len(spec))]
        if len(spec) != len(cls_names):
            raise VerbalizerError(f"{len(spec)} lists of label words for {len(cls_names)} classes {cls_names}")
        words = [_as_words(v, repr(c)) for v, c in zip(spec, cls_names)]
    else:
        raise VerbalizerError("label words must be a dict {class: [words]}, a list per class, or a file")
    return Verbalizer(classes=tuple(cls_names), words=tuple(tuple(w) for w in words),
                      multi_token=multi_token, aggregate=aggregate)


@dataclass(frozen=True)
class CompiledVerbalizer:
    """Token ids of every label word for one tokenizer."""

    verbalizer: Verbalizer
    token_ids: tuple[tuple[tuple[int, ...], ...], ...]   # class -> word -> sub-token ids
    prefix: str

    @property
    def classes(self) -> tuple[str, ...]:
        return self.verbalizer.classes

    @property
    def first_token_ids(self) -> list[int]:
        """Distinct first sub-token ids (the LM-head rows that need computing)."""
        seen: dict[int, None] = {}
        for cls in self.token_ids:
            for w in cls:
                for t in w:
                    seen.setdefault(t, None)
        return list(seen)

    @property
    def max_word_tokens(self) -> int:
        return max(len(w) for cls in self.token_ids for w in cls)


def word_surface(word: str, prefix: str) -> str:
    return word[len(NO_PREFIX):] if word.startswith(NO_PREFIX) else prefix + word


def compile_verbalizer(verbalizer: Verbalizer, tokenizer: Any, prefix: str = " ") -> CompiledVerbalizer:
    """Tokenize every label word; a word that tokenizes to nothing is an error naming it."""
    ids = []
    for cls, words in zip(verbalizer.classes, verbalizer.words):
        per_class = []
        for w in words:
            toks = tuple(tokenizer(word_surface(w, prefix), add_special_tokens=False)["input_ids"])
            if not toks:
                raise VerbalizerError(f"label word {w!r} of class {cls!r} tokenizes to nothing")
            per_class.append(toks)
        ids.append(tuple(per_class))
    return CompiledVerbalizer(verbalizer=verbalizer, token_ids=tuple(ids), prefix=prefix)


def coverage_report(verbalizer: Verbalizer, tokenizer: Any, prefix: str = " ") -> list[dict[str, Any]]:
    """Per word: its sub-tokens, unknown tokens, and first-token collisions with other classes."""
    compiled = compile_verbalizer(verbalizer, tokenizer, prefix)
    unk = getattr(tokenizer, "unk_token_id", None)
    first_owner: dict[int, set[str]] = {}
    for cls, words in zip(verbalizer.classes, compiled.token_ids):
        for toks in words:
            first_owner.setdefault(toks[0], set()).add(cls)
    rows = []
    for cls, words, ids in zip(verbalizer.classes, verbalizer.words, compiled.token_ids):
        for w, toks in zip(words, ids):
            others = sorted(first_owner[toks[0]] - {cls})
            rows.append({
                "class": cls, "word": w, "token_ids": list(toks),
                "tokens": list(tokenizer.convert_ids_to_tokens(list(toks))),
                "n_subtokens": len(toks),
                "unknown": unk is not None and unk in toks,
                "collides_with": others,
            })
    return rows
