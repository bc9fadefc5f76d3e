"""Template text to segments: OpenPrompt's syntax, parsed safely, plus a short form for typing.

``parse_template`` turns template text into ``Segment``s without a tokenizer (cheap enough for every
keystroke; all syntax errors carry the character span). Template text is never ``eval``-ed: ``{...}``
bodies go through ``ast.literal_eval`` and a key whitelist. Numbering soft tokens for a tokenizer is the
next step, ``backend.prompts.template.compile_template``.
"""
from __future__ import annotations

import ast
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from backend.errors import TemplateError
from backend.prompts.postprocess import LIST_JOINERS, POST_PROCESSORS
from backend.textcheck import brief, surrogate_at, surrogate_message

KINDS = ("text", "placeholder", "meta", "mask", "special", "soft", "demos")
OPTION_KEYS = ("shortenable", "post_processing", "add_prefix_space", "soft_id", "duplicate", "same", "separator")
ALLOWED_KEYS = frozenset(KINDS + OPTION_KEYS)
PLACEHOLDERS = ("text_a", "text_b")
SHORT_SPECIALS = {"sep": "<sep>", "cls": "<cls>", "eos": "<eos>", "bos": "<bos>"}
MAX_BODY_CHARS = 20_000
MAX_SOFT_ID = 100_000        # shared-embedding ids are labels; far more than any template has soft tokens
MAX_DEMOS = 16               # demonstrations per class (LM-BFF used up to 16 rows per class in all)
DEMO_SEPARATOR = "\n"        # between demonstrations and before the input, unless the block says otherwise
_SHORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\s*:.*)?$", re.S)


@dataclass(frozen=True)
class Segment:
    """One piece of a template as written: a text run or one ``{...}`` block."""

    kind: str                        # one of KINDS
    value: Any                       # text / field name / special token / soft init text (None = no text)
    add_prefix_space: str            # "" or " " (OpenPrompt's rule: was there a space before it?)
    span: tuple[int, int]            # characters in the template text
    shortenable: bool | None = None  # explicit value if the user gave one
    post_processing: tuple[str, ...] = ()
    soft_id: int | None = None
    duplicate: int | None = None
    same: bool = False
    explicit: tuple[str, ...] = ()   # option keys the user wrote (kept for OpenPrompt's parsed form)
    separator: str = ""              # demos only: text after each demonstration

    @property
    def is_shortenable(self) -> bool:
        if self.shortenable is not None:
            return self.shortenable
        return self.kind == "placeholder"

    def to_openprompt(self) -> dict[str, Any]:
        """The dict OpenPrompt's ``parse_text`` would produce for this segment."""
        d: dict[str, Any] = {"add_prefix_space": self.add_prefix_space}
        d[self.kind] = self.value
        for k in self.explicit:
            if k == "shortenable":
                d[k] = self.shortenable
            elif k == "post_processing":
                d[k] = list(self.post_processing)
            elif k in ("soft_id", "duplicate", "same", "separator"):
                d[k] = getattr(self, k)
        return d


@dataclass(frozen=True)
class ParsedTemplate:
    text: str
    segments: tuple[Segment, ...]

    @property
    def mask_count(self) -> int:
        return sum(1 for s in self.segments if s.kind == "mask")

    @property
    def has_soft(self) -> bool:
        return any(s.kind == "soft" for s in self.segments)

    @property
    def demos(self) -> Segment | None:
        """The demonstrations block, if the template has one (at most one is allowed)."""
        return next((s for s in self.segments if s.kind == "demos"), None)

    def fields(self) -> dict[str, list[str]]:
        """Which example fields the template reads: ``{"placeholder": [...], "meta": [...]}``."""
        out: dict[str, list[str]] = {"placeholder": [], "meta": []}
        for s in self.segments:
            if s.kind in out and s.value not in out[s.kind]:
                out[s.kind].append(s.value)
        return out

    def to_openprompt(self) -> list[dict[str, Any]]:
        return [s.to_openprompt() for s in self.segments]


# ---------------------------------------------------------------------------------------------- scanning

def _find_block_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start``; quotes and nested braces are respected."""
    depth = 0
    quote: str | None = None
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    if quote:
        raise TemplateError(f"unterminated string ({quote}) inside the {{...}} block that opens here",
                            span=(start, n))
    raise TemplateError("unbalanced brace: this '{' is never closed", span=(start, n))


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


def _short_form(body: str, span: tuple[int, int]) -> dict[str, Any]:
    name, sep, arg = body.partition(":")
    name = name.strip()
    if name in PLACEHOLDERS and not sep:
        return {"placeholder": name}
    if name == "mask" and not sep:
        return {"mask": None}
    if name == "meta":
        key = arg.strip()
        if not key:
            raise TemplateError("{meta:NAME} needs a field name after the colon", span=span)
        return {"meta": key}
    if name == "soft":
        return {"soft": arg.lstrip() if sep and arg.strip() else None}
    if name == "demos":
        arg = arg.strip()
        if not sep or not arg:
            return {"demos": 1}
        if not arg.isdigit() or len(arg) > 3:
            raise TemplateError(f"{{demos:K}} takes a whole number of demonstrations per class (0 to {MAX_DEMOS}), "
                                f"got {brief(arg)}", span=span)
        return {"demos": int(arg)}
    if name in SHORT_SPECIALS and not sep:
        return {"special": SHORT_SPECIALS[name]}
    if name in ("placeholder", "text", "special") and sep:
        return {name: arg.strip() if name != "text" else arg}
    known = list(PLACEHOLDERS) + ["mask", "meta", "soft", "demos"] + list(SHORT_SPECIALS)
    raise TemplateError(
        f"unknown field {{{name}}}{_suggest(name, known)} Short forms: {{text_a}}, {{text_b}}, {{mask}}, "
        "{meta:NAME}, {soft}, {soft:init text}, {demos:K}; or OpenPrompt's {\"placeholder\": \"text_a\"}",
        span=span)


def _literal(body: str, span: tuple[int, int]) -> dict[str, Any]:
    if len(body) > MAX_BODY_CHARS:
        raise TemplateError(f"{{...}} block is too long ({len(body)} characters)", span=span)
    if re.search(r"\blambda\b", body):
        raise TemplateError("code is not allowed in templates; post_processing takes a name such as "
                            f"{sorted(POST_PROCESSORS)[:4]}... (see the docs for the full list)", span=span)
    try:
        val = ast.literal_eval("{" + body + "}")
    except Exception as exc:  # SyntaxError, ValueError, RecursionError, MemoryError, TypeError...
        val = _json_block(body)     # OpenPrompt's blocks are Python; one written as JSON (true, null) reads too
        if val is None:
            raise TemplateError(f"cannot read this {{...}} block ({_why_unreadable(body, exc)}); write it like "
                                "{\"placeholder\": \"text_a\"} or {\"mask\"}", span=span) from None
    if isinstance(val, (set, frozenset)):
        if not all(isinstance(k, str) for k in val):
            raise TemplateError("a {...} set may only hold key names such as \"mask\"", span=span)
        return {k: None for k in sorted(val)}
    if not isinstance(val, dict) or not all(isinstance(k, str) for k in val):
        raise TemplateError("a {...} block must hold key/value pairs with string keys", span=span)
    return val


def _json_block(body: str) -> dict[str, Any] | None:
    try:
        val = json.loads("{" + body + "}")
    except (ValueError, RecursionError):
        return None
    return val if isinstance(val, dict) else None


def _why_unreadable(body: str, exc: BaseException) -> str:
    """What is wrong with a block neither Python nor JSON reads, in the user's terms, not an exception's
    name: doubled braces, an unquoted word, a huge number."""
    if "integer string conversion" in str(exc):
        return "a number with thousands of digits"
    inner = body.strip()
    if inner.startswith("{") and inner.endswith("}"):
        return "doubled braces: write {mask}, not {{mask}}"
    try:
        tree = ast.parse("{" + body + "}", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return getattr(exc, "msg", None) or "not a Python or JSON literal"
    bare = next((n.id for n in ast.walk(tree) if isinstance(n, ast.Name)), None)
    if bare is not None:
        return f"{brief(bare)} is not in quotes; write \"{bare[:40]}\""
    return getattr(exc, "msg", None) or "only quoted text, numbers, true/false and lists may appear"


def _build_segment(d: dict[str, Any], aps: str, span: tuple[int, int]) -> Segment:
    unknown = [k for k in d if k not in ALLOWED_KEYS]
    if unknown:
        k = unknown[0]
        raise TemplateError(f"unknown key {brief(k)}{_suggest(k, ALLOWED_KEYS)}", span=span)
    kinds = [k for k in KINDS if k in d]
    if not kinds and "soft_id" in d:
        kinds = ["soft"]
        d = {**d, "soft": None}
    if not kinds:
        raise TemplateError("this {...} block has no content key (one of text, placeholder, meta, mask, "
                            "special, soft)", span=span)
    if len(kinds) > 1:
        raise TemplateError(f"a {{...}} block may hold only one of {', '.join(kinds)}", span=span)
    kind = kinds[0]
    value = d[kind]
    explicit = tuple(k for k in OPTION_KEYS if k in d and k != "add_prefix_space")
    if "add_prefix_space" in d:
        aps = d["add_prefix_space"]
        if not isinstance(aps, str):
            raise TemplateError("add_prefix_space must be a string such as \" \" or \"\"", span=span)

    if kind in ("text", "special") and not isinstance(value, str):
        raise TemplateError(f"{kind} must be a string", span=span)
    if kind == "placeholder":
        if value not in PLACEHOLDERS:
            hint = _suggest(value, PLACEHOLDERS) if isinstance(value, str) else ""
            raise TemplateError(f"unknown placeholder {brief(value)}{hint} "
                                "(placeholders are text_a and text_b; other fields are {\"meta\": NAME})",
                                span=span)
    if kind == "meta" and (not isinstance(value, str) or not value):
        raise TemplateError("meta must name a field, e.g. {\"meta\": \"title\"}", span=span)
    if kind == "mask" and value not in (None, True, ""):
        raise TemplateError("write the mask as {\"mask\"} or {mask}", span=span)
    if kind == "mask":
        value = None
    if kind == "soft" and value is not None and not isinstance(value, str):
        raise TemplateError("soft takes initialisation text or None", span=span)
    if kind == "demos":
        if value is None:
            value = 1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DEMOS:
            raise TemplateError(f"demos takes the number of demonstrations per class, a whole number from 0 to "
                                f"{MAX_DEMOS}, got {brief(value)}", span=span)
    separator = d.get("separator", DEMO_SEPARATOR)
    if "separator" in d:
        if kind != "demos":
            raise TemplateError("separator applies only to the demonstrations block, e.g. "
                                "{\"demos\": 1, \"separator\": \"\\n\"}", span=span)
        if not isinstance(separator, str) or len(separator) > 1000:
            raise TemplateError("separator must be a string of at most 1,000 characters", span=span)

    shortenable = d.get("shortenable")
    if shortenable is not None and not isinstance(shortenable, bool):
        raise TemplateError("shortenable must be True or False", span=span)
    if shortenable and kind in ("mask", "soft", "special", "demos"):
        raise TemplateError(f"a {kind} segment can never be shortened", span=span)

    post: tuple[str, ...] = ()
    if "post_processing" in d:
        pp = d["post_processing"]
        names = [pp] if isinstance(pp, str) else pp
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise TemplateError("post_processing takes a name or a list of names", span=span)
        allowed = set(POST_PROCESSORS) | set(LIST_JOINERS)
        for n in names:
            if n not in allowed:
                raise TemplateError(f"unknown post_processing {n!r}{_suggest(n, allowed)}; available: "
                                    f"{', '.join(sorted(allowed))}", span=span)
        if kind not in ("placeholder", "meta"):
            raise TemplateError("post_processing applies only to placeholder and meta fields", span=span)
        post = tuple(names)

    soft_id = d.get("soft_id")
    if "soft_id" in d:
        if isinstance(soft_id, bool) or not isinstance(soft_id, int) or not 1 <= soft_id <= MAX_SOFT_ID:
            raise TemplateError(f"soft_id must be an integer >= 1 (at most {MAX_SOFT_ID:,}), got {brief(soft_id)}",
                                span=span)
        if kind != "soft":
            raise TemplateError("soft_id applies only to soft tokens", span=span)
    duplicate = d.get("duplicate")
    if "duplicate" in d:
        if isinstance(duplicate, bool) or not isinstance(duplicate, int) or not 1 <= duplicate <= 1024:
            raise TemplateError(f"duplicate must be an integer between 1 and 1024, got {brief(duplicate)}",
                                span=span)
        if kind != "soft" or value is not None:
            raise TemplateError("duplicate applies only to soft tokens without init text, e.g. "
                                "{\"soft\": None, \"duplicate\": 5}", span=span)
    same = d.get("same", False)
    if not isinstance(same, bool):
        raise TemplateError("same must be True or False", span=span)
    return Segment(kind=kind, value=value, add_prefix_space=aps, span=span, shortenable=shortenable,
                   post_processing=post, soft_id=soft_id, duplicate=duplicate, same=same, explicit=explicit,
                   separator=separator if kind == "demos" else "")


def parse_template(text: str, *, require_mask: bool = True) -> ParsedTemplate:
    """Parse template text (OpenPrompt syntax or the short form) into segments.

    Whitespace handling is OpenPrompt's: spaces before a segment become its ``add_prefix_space`` and
    text runs are right-stripped of spaces, so wrapped output matches OpenPrompt character for character.
    """
    if not isinstance(text, str):
        raise TemplateError("the template must be text")
    at = surrogate_at(text)   # rejected, not replaced: the user is typing it and fixes it at once
    if at is not None:
        raise TemplateError(surrogate_message(text, at), span=(at, at + 1))
    segments: list[Segment] = []
    i, n = 0, len(text)
    while i < n:
        aps = " " if i > 0 and text[i - 1] == " " else ""
        while i < n and text[i] == " ":
            aps = " "
            i += 1
        if i == n:
            break
        if text[i] == "}":
            raise TemplateError("unbalanced brace: '}' without a matching '{' (write a literal brace as "
                                "{\"text\": \"}\"})", span=(i, i + 1))
        if text[i] != "{":
            j = i + 1
            while j < n and text[j] not in "{}":
                j += 1
            segments.append(Segment(kind="text", value=text[i:j].rstrip(" "), add_prefix_space=aps,
                                    span=(i, j)))
            i = j
            continue
        j = _find_block_end(text, i)
        span = (i, j + 1)
        body = text[i + 1:j]
        stripped = body.strip()
        if not stripped:
            raise TemplateError("empty {} block", span=span)
        if stripped[0] not in "\"'" and _SHORT_NAME.match(stripped):
            d = _short_form(stripped, span)
        else:
            d = _literal(body, span)
        segments.append(_build_segment(d, aps, span))
        i = j + 1
    parsed = ParsedTemplate(text=text, segments=tuple(segments))
    blocks = [s for s in segments if s.kind == "demos"]
    if len(blocks) > 1:
        raise TemplateError("a template holds at most one demonstrations block; this is a second one",
                            span=blocks[1].span)
    if blocks and parsed.mask_count > 1:
        raise TemplateError("demonstrations need a template with exactly one mask (each demonstration shows "
                            "its label word in its place)", span=blocks[0].span)
    if require_mask and parsed.mask_count == 0:
        raise TemplateError("the template has no {\"mask\"}: add one where the label word should go",
                            span=(0, len(text)))
    return parsed
