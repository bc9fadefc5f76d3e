"""Templates compiled for a tokenizer: soft tokens numbered as OpenPrompt's MixedTemplate does.

``compile_template`` expands the soft tokens of a parsed template (``backend.prompts.parse``):
text-initialised soft tokens become one soft token per sub-token, ``soft_id`` shares embeddings,
``duplicate``/``same`` repeat them. This module is also the templates' public face: the parser's names
are importable from here, so callers need one import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.errors import TemplateError
from backend.prompts.parse import ParsedTemplate, Segment, parse_template
from backend.prompts.postprocess import LIST_JOINERS, POST_PROCESSORS

MAX_SOFT_TOKENS = 4096      # soft parts in one template: more than any model's context here

__all__ = ["LIST_JOINERS", "POST_PROCESSORS", "ParsedTemplate", "Part", "Segment", "Template",
           "compile_template", "mask_prefix", "parse_template"]


# ------------------------------------------------------------------------------------ soft-token expansion

@dataclass(frozen=True)
class Part:
    """A segment after soft-token expansion: what ``wrap`` iterates over."""

    segment: int            # index into ParsedTemplate.segments
    kind: str
    value: Any
    add_prefix_space: str
    shortenable: bool
    post_processing: tuple[str, ...] = ()
    soft_token_id: int = 0          # 0 = not soft; shared ids mean shared embeddings
    init_token_id: int | None = None  # vocabulary row that initialises this soft token, if any

    def to_openprompt(self, original: Segment) -> dict[str, Any]:
        if self.kind == "soft":
            return {"soft": self.value}
        return original.to_openprompt()


@dataclass(frozen=True)
class Template:
    """A parsed template whose soft tokens have been numbered for a given tokenizer."""

    parsed: ParsedTemplate
    parts: tuple[Part, ...]
    num_soft_tokens: int
    soft_init: dict[int, int] = field(default_factory=dict)  # soft id -> vocabulary id

    @property
    def text(self) -> str:
        return self.parsed.text

    @property
    def has_soft(self) -> bool:
        return self.num_soft_tokens > 0

    def to_openprompt(self) -> list[dict[str, Any]]:
        """OpenPrompt's parsed list (after MixedTemplate.prepare when soft tokens are present)."""
        return [p.to_openprompt(self.parsed.segments[p.segment]) for p in self.parts]


def compile_template(source: str | ParsedTemplate, tokenizer: Any = None) -> Template:
    """Number soft tokens (MixedTemplate semantics) and split text-initialised ones per sub-token.

    Without a tokenizer a text-initialised soft segment stays one soft token; pass the model's tokenizer
    to get OpenPrompt's one-soft-token-per-sub-token expansion and the init vocabulary rows.
    """
    parsed = parse_template(source) if isinstance(source, str) else source
    parts: list[Part] = []
    soft_parts = 0
    count = 0
    by_user_id: dict[int, list[int]] = {}
    init: dict[int, int] = {}
    for idx, seg in enumerate(parsed.segments):
        if seg.kind != "soft":
            parts.append(Part(segment=idx, kind=seg.kind, value=seg.value, add_prefix_space=seg.add_prefix_space,
                              shortenable=seg.is_shortenable, post_processing=seg.post_processing))
            continue
        if seg.soft_id is not None and seg.soft_id in by_user_id:
            soft_parts = _check_soft_total(soft_parts, len(by_user_id[seg.soft_id]), seg)
            for sid in by_user_id[seg.soft_id]:
                parts.append(Part(segment=idx, kind="soft", value=None, add_prefix_space="", shortenable=False,
                                  soft_token_id=sid))
            continue
        surfaces: list[str]
        ids: list[int]
        if seg.value is None:
            reps = seg.duplicate or 1
            if seg.same:
                count += 1
                ids = [count] * reps
            else:
                ids = list(range(count + 1, count + reps + 1))
                count += reps
            surfaces = [""] * reps
            vocab: list[int | None] = [None] * reps
        else:
            if tokenizer is not None:
                vocab_ids = tokenizer(seg.add_prefix_space + seg.value, add_special_tokens=False)["input_ids"]
                surfaces = list(tokenizer.convert_ids_to_tokens(vocab_ids))
                vocab = list(vocab_ids)
            else:
                surfaces, vocab = [seg.value], [None]
            if not surfaces:
                raise TemplateError("soft init text tokenizes to nothing", span=seg.span)
        soft_parts = _check_soft_total(soft_parts, len(surfaces), seg)
        if seg.value is not None:
            ids = list(range(count + 1, count + len(surfaces) + 1))
            count += len(surfaces)
        for sid, surface, vid in zip(ids, surfaces, vocab):
            if vid is not None:
                init[sid] = vid
            parts.append(Part(segment=idx, kind="soft", value=surface, add_prefix_space="", shortenable=False,
                              soft_token_id=sid, init_token_id=vid))
        if seg.soft_id is not None:
            by_user_id[seg.soft_id] = ids
    return Template(parsed=parsed, parts=tuple(parts), num_soft_tokens=count, soft_init=init)


def _check_soft_total(so_far: int, adding: int, seg: Segment) -> int:
    """Cap the whole template's soft parts, not only each block's ``duplicate``: 400 blocks of duplicate
    1024, or one such block reused by ``soft_id`` a thousand times, fit in a template's characters."""
    if so_far + adding > MAX_SOFT_TOKENS:
        raise TemplateError(f"the template has over {MAX_SOFT_TOKENS:,} soft tokens in all by this block; use "
                            "fewer blocks or smaller duplicate counts", span=seg.span)
    return so_far + adding


def mask_prefix(template: Template) -> str:
    """Leading space for label words: none when the text before the mask already ends in whitespace.

    Here, with the template, because two places must agree on it: the verbalizer's label-word tokens and
    the label words that demonstrations show in place of the mask (``backend.prompts.wrap``)."""
    before = ""
    for part in template.parts:
        if part.kind == "mask":
            break
        if part.kind == "text":
            before = part.add_prefix_space + part.value
        elif part.kind in ("placeholder", "meta", "soft", "special"):
            before = "x"
    return "" if before[-1:].isspace() else " "
