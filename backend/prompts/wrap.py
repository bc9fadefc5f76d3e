"""Template + Example -> wrapped pieces (OpenPrompt's ``wrap_one_example``), as a pure function."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from backend.errors import TemplateError
from backend.prompts.demos import Demo
from backend.prompts.example import Example
from backend.prompts.postprocess import LIST_JOINERS, POST_PROCESSORS
from backend.prompts.template import Part, Template, compile_template, mask_prefix

MASK_TEXT = "<mask>"


@dataclass(frozen=True)
class Piece:
    text: str | None
    loss_ids: int            # 1 at the mask
    shortenable_ids: int
    soft_token_ids: int
    part: int                # index into Template.parts
    segment: int             # index into ParsedTemplate.segments
    kind: str                # a part's kind; in demonstrations also "label" (the mask) and "separator"
    demo: int = -1           # which demonstration the piece belongs to (-1: the input itself)


@dataclass(frozen=True)
class Wrapped:
    pieces: tuple[Piece, ...]
    extra: dict[str, Any] = field(default_factory=dict)   # guid, label (OpenPrompt's not-to-tokenize dict)
    mixed: bool = False                                    # template has soft tokens

    def to_openprompt(self) -> list[Any]:
        """Exactly OpenPrompt's ``[[{text, (soft_token_ids), loss_ids, shortenable_ids}, ...], {guid, label}]``."""
        rows = []
        for p in self.pieces:
            d: dict[str, Any] = {"text": p.text}
            if self.mixed:
                d["soft_token_ids"] = p.soft_token_ids
            d["loss_ids"] = p.loss_ids
            d["shortenable_ids"] = p.shortenable_ids
            rows.append(d)
        return [rows, dict(self.extra)]


def _field_value(part: Part, template: Template, example: Example) -> str:
    seg = template.parsed.segments[part.segment]
    if part.kind == "placeholder":
        value: Any = getattr(example, part.value)
    else:
        if part.value not in example.meta:
            have = ", ".join(sorted(map(str, example.meta))) or "none"
            raise TemplateError(f"the example has no meta field {part.value!r} (fields: {have})", span=seg.span)
        value = example.meta[part.value]
    joiner = " "
    for name in part.post_processing:
        if name in LIST_JOINERS:
            joiner = LIST_JOINERS[name]
    if value is None:
        value = ""
    elif isinstance(value, (list, tuple)):
        value = joiner.join("" if v is None else str(v) for v in value)
    elif not isinstance(value, str):
        value = str(value)
    for name in part.post_processing:
        fn = POST_PROCESSORS.get(name)
        if fn is not None:
            value = fn(value)
    return value


def _piece(i: int, part: Part, tpl: Template, ex: Example) -> Piece:
    if part.kind in ("placeholder", "meta"):
        text: str | None = part.add_prefix_space + _field_value(part, tpl, ex)
    elif part.kind in ("soft", "special"):
        text = part.value
    elif part.kind == "mask":
        text = MASK_TEXT
    else:
        text = part.add_prefix_space + part.value
    return Piece(text=text, loss_ids=1 if part.kind == "mask" else 0, shortenable_ids=1 if part.shortenable else 0,
                 soft_token_ids=part.soft_token_id, part=i, segment=part.segment, kind=part.kind)


def _demo_pieces(tpl: Template, block: int, demos: Sequence[Demo]) -> list[Piece]:
    """Each demonstration is the template itself (without the block) filled with the demo's row, its label
    word where the mask is, then the block's separator. Never a mask, never shortenable: too long a prompt
    drops whole demonstrations (``encode``) before the input loses a token."""
    part = tpl.parts[block]
    separator = tpl.parsed.segments[part.segment].separator
    word_prefix = mask_prefix(tpl)
    out: list[Piece] = []
    for j, demo in enumerate(demos):
        for i, p in enumerate(tpl.parts):
            if p.kind == "demos":
                continue
            if p.kind == "mask":
                out.append(Piece(text=word_prefix + demo.word, loss_ids=0, shortenable_ids=0, soft_token_ids=0,
                                 part=i, segment=p.segment, kind="label", demo=j))
            else:
                piece = _piece(i, p, tpl, demo.example)
                out.append(Piece(text=piece.text, loss_ids=0, shortenable_ids=0, soft_token_ids=piece.soft_token_ids,
                                 part=i, segment=p.segment, kind=p.kind, demo=j))
        out.append(Piece(text=separator, loss_ids=0, shortenable_ids=0, soft_token_ids=0, part=block,
                         segment=part.segment, kind="separator", demo=j))
    if out and part.add_prefix_space and out[0].text is not None and out[0].soft_token_ids == 0:
        first = out[0]
        out[0] = Piece(text=part.add_prefix_space + first.text, loss_ids=0, shortenable_ids=0, soft_token_ids=0,
                       part=first.part, segment=first.segment, kind=first.kind, demo=0)
    return out


def wrap(template: Template | str, example: Example | dict, demos: Sequence[Demo] = ()) -> Wrapped:
    """Fill the template with one example (and its chosen demonstrations, where the template's demos block
    is). Pure: same inputs, same output, no tokenizer needed."""
    tpl = compile_template(template) if isinstance(template, str) else template
    ex = Example.from_dict(example) if isinstance(example, dict) else example
    if demos and tpl.parsed.demos is None:
        raise TemplateError("demonstrations were chosen but the template has no demos block: add "
                            "{\"demos\": 1} (or {demos}) where they should go", span=(0, len(tpl.text)))
    pieces = []
    for i, part in enumerate(tpl.parts):
        if part.kind == "demos":
            pieces.extend(_demo_pieces(tpl, i, demos))
        else:
            pieces.append(_piece(i, part, tpl, ex))
    extra = {k: v for k, v in (("guid", ex.guid), ("label", ex.label)) if v is not None}
    return Wrapped(pieces=tuple(pieces), extra=extra, mixed=tpl.has_soft)
