"""Template + Example -> wrapped pieces (OpenPrompt's ``wrap_one_example``), as a pure function."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.errors import TemplateError
from backend.prompts.example import Example
from backend.prompts.postprocess import LIST_JOINERS, POST_PROCESSORS
from backend.prompts.template import Part, Template, compile_template

MASK_TEXT = "<mask>"


@dataclass(frozen=True)
class Piece:
    text: str | None
    loss_ids: int            # 1 at the mask
    shortenable_ids: int
    soft_token_ids: int
    part: int                # index into Template.parts
    segment: int             # index into ParsedTemplate.segments
    kind: str


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


def wrap(template: Template | str, example: Example | dict) -> Wrapped:
    """Fill the template with one example. Pure: same inputs, same output, no tokenizer needed."""
    tpl = compile_template(template) if isinstance(template, str) else template
    ex = Example.from_dict(example) if isinstance(example, dict) else example
    pieces = []
    for i, part in enumerate(tpl.parts):
        if part.kind in ("placeholder", "meta"):
            text: str | None = part.add_prefix_space + _field_value(part, tpl, ex)
        elif part.kind == "soft":
            text = part.value
        elif part.kind == "mask":
            text = MASK_TEXT
        elif part.kind == "special":
            text = part.value
        else:
            text = part.add_prefix_space + part.value
        pieces.append(Piece(text=text, loss_ids=1 if part.kind == "mask" else 0,
                            shortenable_ids=1 if part.shortenable else 0, soft_token_ids=part.soft_token_id,
                            part=i, segment=part.segment, kind=part.kind))
    extra = {k: v for k, v in (("guid", ex.guid), ("label", ex.label)) if v is not None}
    return Wrapped(pieces=tuple(pieces), extra=extra, mixed=tpl.has_soft)
