"""Checking a value against its declared type and range: the one checker RunConfig's fields and the
methods' options share.

Why one declarative checker: a range written as data (``field(default=32, metadata={"min": 1, "max":
4096})``, ``Option(int, 8, min=1, max=1024)``) is checked the same way everywhere the config is parsed —
studio, CLI, re-run, queue — before anything runs, and every error names the value's dotted path
(``eval.batch_size: must be at least 1, got 0``). A range checked first deep in the engine gives a
traceback, or worse a silent wrong result (a negative batch size once read uninitialised memory).

Bounds (``meta`` keys): ``min`` / ``max`` inclusive, ``gt`` / ``lt`` exclusive, ``choices`` for
enumerations (``why``: the reason, shown with a wrong choice), ``max_len`` for strings (default
``MAX_STR``), ``pattern`` for strings that must be a name of one shape (a compiled regex matched whole;
``why`` then says the rule: a split name must never be a path), ``max_items`` for lists, ``path`` for
file-system paths. For a list, the bounds apply to every item and ``max_items`` to the list.
No string anywhere may hold a NUL: a run's config is stored and exported, and a bundle refuses NUL.
Floats must be finite. This module imports nothing heavy: the config is parsed where torch is not loaded.
"""
from __future__ import annotations

import difflib
import math
import types
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union, get_args, get_origin

from backend.errors import ConfigError
from backend.textcheck import brief, surrogate_at, surrogate_message

MAX_STR = 4096               # a name, a path, a split, a choice
MAX_ITEMS = 1000
MAX_JSON_DEPTH = 32          # free-form values (verbalizer, column mapping): deeper is never a real config
MAX_JSON_NODES = 100_000
INT_BOUND = 2 ** 63          # ints in free-form values: JSON/SQL integers, and printable


@dataclass(frozen=True)
class Option:
    """One declared option of a tuning method: its type (a typing hint), default and bounds, and what a
    form shows: ``label`` (human name), ``doc`` (when to change it) and ``advanced`` (folded away)."""

    type: Any
    default: Any = None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    max_len: int | None = None
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    advanced: bool = False

    def bounds(self) -> dict[str, Any]:
        """The bounds as ``check``'s ``meta``."""
        keys = ("min", "max", "gt", "lt", "choices", "max_len")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None} | self.extra

    @property
    def kind(self) -> str:
        """What a form should show: list, bool, float, int or str."""
        args = set(get_args(self.type)) or {self.type}
        origins = {get_origin(a) or a for a in args}
        for name, tp in (("list", list), ("bool", bool), ("float", float), ("int", int)):
            if tp in origins:
                return name
        return "str"


def type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "an object"}
    origin = get_origin(tp) or tp
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def check(value: Any, tp: Any, path: str, meta: Mapping[str, Any] | None = None) -> Any:
    """``value`` checked against hint ``tp`` and bounds ``meta``; returns it (ints widened to float for
    float fields). Raises ConfigError naming ``path``."""
    meta = meta or {}
    if tp is Any:
        return check_json(value, path)
    if _is_union(tp):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return check(value, a, path, meta)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{path}: must not be null")
    base = get_origin(tp) or tp
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            pass                                   # out of range below, printed briefly
    elif isinstance(value, bool) and base is not bool:
        raise ConfigError(f"{path}: expected {type_name(tp)}, got {value!r}")
    elif isinstance(base, type) and not isinstance(value, base):
        raise ConfigError(f"{path}: expected {type_name(tp)}, got {brief(value)}")
    if base is list:
        (item,) = get_args(tp) or (Any,)
        limit = meta.get("max_items", MAX_ITEMS)
        if len(value) > limit:
            raise ConfigError(f"{path}: at most {limit} items, got {len(value)}")
        return [check(v, item, f"{path}[{i}]", meta) for i, v in enumerate(value)]
    if base is dict:
        return check_json(value, path)
    _bounds(value, path, meta)
    return value


def _bounds(value: Any, path: str, meta: Mapping[str, Any]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: must be a finite number, got {value!r}")
    if isinstance(value, str):
        check_text(value, path, meta.get("max_len", MAX_STR))
        pattern = meta.get("pattern")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise ConfigError(f"{path}: {meta.get('why') or 'must match ' + pattern.pattern}, got {brief(value)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        why = f" ({meta['why']})" if meta.get("why") else ""
        raise ConfigError(f"{path}: must be one of {', '.join(str(c) for c in choices)}, got {brief(value)}{why}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, fails, words in (("min", lambda v, b: v < b, "at least"), ("gt", lambda v, b: v <= b, "greater than"),
                                  ("max", lambda v, b: v > b, "at most"), ("lt", lambda v, b: v >= b, "less than")):
            bound = meta.get(key)
            if bound is not None and fails(value, bound):
                raise ConfigError(f"{path}: must be {words} {bound}, got {brief(value)}")


def check_text(text: str, path: str, max_len: int = MAX_STR) -> str:
    """Strings of a config: valid Unicode (no lone surrogates), no NUL and at most ``max_len`` characters.
    NUL is refused here, where the config is read, because the run's exported bundle refuses it on import
    (a run named ``a\\0b`` would export a bundle nobody can import)."""
    if len(text) > max_len:
        raise ConfigError(f"{path}: {len(text):,} characters, over the limit of {max_len:,}")
    if "\0" in text:
        raise ConfigError(f"{path}: character {text.index(chr(0))} is a NUL (U+0000), which a config cannot "
                          "hold; remove it")
    at = surrogate_at(text)
    if at is not None:
        raise ConfigError(f"{path}: {surrogate_message(text, at)}")
    return text


def check_json(value: Any, path: str) -> Any:
    """A free-form value (verbalizer, column mapping, option value) must be plain JSON the run can be
    stored as: objects with string keys, lists, valid strings, finite numbers, integers under 2**63,
    true/false/null; bounded depth and size. Iterative, so a deeply nested value cannot overflow the stack."""
    stack = [(value, path, 0)]
    nodes = 0
    while stack:
        v, p, depth = stack.pop()
        nodes += 1
        if depth > MAX_JSON_DEPTH or nodes > MAX_JSON_NODES:
            raise ConfigError(f"{path}: nested too deeply or too large (over {MAX_JSON_DEPTH} levels or "
                              f"{MAX_JSON_NODES:,} values)")
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise ConfigError(f"{p}: object keys must be strings, got {brief(k)}")
                check_text(k, f"{p}.{brief(k, 30)}", 100_000)
                stack.append((item, f"{p}.{k[:30]}", depth + 1))
        elif isinstance(v, list):
            stack.extend((item, f"{p}[{i}]", depth + 1) for i, item in enumerate(v))
        elif isinstance(v, str):
            check_text(v, p, 100_000)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not -INT_BOUND < v < INT_BOUND:
                raise ConfigError(f"{p}: integer out of range, got {brief(v)}")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{p}: must be a finite number, got {v!r}")
        else:
            raise ConfigError(f"{p}: expected text, a number, a list or an object, got {type(v).__name__}")
    return value


def unknown_key(key: Any, known: Iterable[str], what: str = "unknown key") -> str:
    """``"<key>: unknown key — did you mean 'x'?"``: the closest known name, else the list of them."""
    known = sorted(known)
    if not isinstance(key, str):
        return f"{brief(key)}: {what} (keys are names: {', '.join(known)})"
    close = difflib.get_close_matches(key, known, n=1) if len(key) <= 100 else []
    close = close or [k for k in known if key.startswith(k) or k.startswith(key)][:1]   # rank -> r
    hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    shown = key if len(key) <= 60 and key.isprintable() else brief(key)
    return f"{shown}: {what}{hint}"
