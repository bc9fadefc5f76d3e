"""Template preview: parse, wrap and encode a few examples as the user types; lint; dataset lengths.

The one preview of the project: ``render`` is what the studio's Template tab (through ``preview``) and
``python -m backend preview`` both show, so they cannot disagree on tokens, profile or lint.

Everything here reuses the engine (``parse_template`` / ``wrap`` / ``encode`` / ``token_views``) with the
context's already-loaded tokenizer, so a keystroke costs a parse plus a handful of dictionary look-ups.
Without a model yet (it loads in the background) the parse and the wrapped segments are still shown;
only the tokens wait for the tokenizer.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

from backend.errors import EncodingError, StudioError, TemplateError
from backend.choices import TRUNCATE_METHODS
from backend.prompts.demos import Demo, DemoChooser, build_pool
from backend.prompts.encode import TokenizerInfo, describe_tokenizer, encode, token_views
from backend.prompts.example import Example
from backend.prompts.template import ParsedTemplate, Template, compile_template, parse_template
from backend.prompts.wrap import Wrapped, wrap
from backend.services.context import StudioContext
from backend.services.results import error_result, service
from backend.textcheck import brief

MAX_PREVIEW_EXAMPLES = 8
HISTOGRAM_LIMIT = 2000   # examples measured for the length histogram (a deterministic prefix)


def _check_settings(max_length: Any, truncate: str) -> int:
    """The preview's length, in the run config's range (above it no run could use what the preview shows);
    1 to 7 are allowed here to watch truncation at work."""
    from dataclasses import fields

    from backend.config import RunConfig

    most = next(f.metadata["max"] for f in fields(RunConfig) if f.name == "max_length")
    whole = isinstance(max_length, int) or (isinstance(max_length, float) and max_length.is_integer()) or (
        isinstance(max_length, str) and max_length.strip().isascii() and max_length.strip().isdigit())
    if isinstance(max_length, bool) or not whole:
        raise EncodingError(f"max length must be a whole number, got {brief(max_length)}", field="max_length")
    n = int(max_length)
    if not 1 <= n <= most:
        raise EncodingError(f"max length must be between 1 and {most:,}, got {brief(n)}", field="max_length")
    if truncate not in TRUNCATE_METHODS:
        raise EncodingError(f"truncation must be one of {', '.join(TRUNCATE_METHODS)}", field="truncate")
    return n


def segments_of(parsed: ParsedTemplate) -> list[dict[str, Any]]:
    return [{"index": i, "kind": s.kind, "value": s.value, "span": list(s.span),
             "shortenable": s.is_shortenable} for i, s in enumerate(parsed.segments)]


def pieces_of(wrapped: Wrapped) -> list[dict[str, Any]]:
    return [{"text": p.text, "loss_ids": p.loss_ids, "shortenable_ids": p.shortenable_ids,
             "soft_token_ids": p.soft_token_ids, "kind": p.kind, "segment": p.segment, "demo": p.demo}
            for p in wrapped.pieces]


def preview_demos(parsed: ParsedTemplate, examples: Sequence[Example], pool: Sequence[Example],
                  label_words: Any = None) -> list[tuple[Demo, ...]]:
    """The demonstrations each previewed example gets: the template's K per class, random (seed 13, as a
    run's default), from ``pool`` (the training rows) less any row identical to a previewed one. The word
    shown is the first label word of its class when ``label_words`` ({class: [words]}) has the class,
    else the class name."""
    block = parsed.demos
    if block is None or not block.value or not pool:
        return [() for _ in examples]
    words_of = label_words if isinstance(label_words, dict) else {}
    classes = list(words_of) or sorted({str(e.label) for e in pool if e.label is not None})
    words = []
    for c in classes:
        w = words_of.get(c)
        w = w[0] if isinstance(w, (list, tuple)) and w else w
        words.append(w if isinstance(w, str) and w else c)
    chooser = DemoChooser(build_pool(pool, classes, words, exclude=examples), k=block.value)
    return chooser(list(examples))


def _preview_one(template: Template, row: int, ex: Example, tok: Any, profile: str | None,
                 info: TokenizerInfo | None, max_length: int, truncate: str,
                 demos: Sequence[Demo] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"row": row, "guid": ex.guid, "label": ex.label, "pieces": [], "tokens": None,
                           "error": None, "warnings": [],
                           "demos": [{"guid": d.example.guid, "label": d.example.label, "word": d.word}
                                     for d in demos]}
    try:
        wrapped = wrap(template, ex, demos)
        out["pieces"] = pieces_of(wrapped)
        out["wrapped"] = wrapped.to_openprompt()
        if tok is None or profile is None:
            return out
        enc = encode(wrapped, tok, profile=profile, max_length=max_length, truncate=truncate, info=info)
    except StudioError as exc:
        out["error"] = exc.to_dict()
        return out
    out["tokens"] = [asdict(v) for v in token_views(enc, tok)]
    out["length"] = enc.length
    out["n_truncated"] = enc.n_truncated
    out["demos_dropped"] = list(enc.dropped_demos)
    out["warnings"] = list(enc.warnings)
    out["encoded"] = {"input_ids": list(enc.input_ids), "loss_ids": list(enc.loss_ids),
                      "soft_token_ids": list(enc.soft_token_ids), "mask_positions": list(enc.mask_positions),
                      "decoder_input_ids": list(enc.decoder_input_ids) if enc.decoder_input_ids else None}
    return out


def lint(parsed: ParsedTemplate, examples: Sequence[Example], profile: str | None) -> list[dict[str, Any]]:
    """Problems that parse fine but make a poor prompt; each names the span it is about."""
    found: list[dict[str, Any]] = []

    def add(level: str, message: str, span: Sequence[int] | None) -> None:
        found.append({"level": level, "message": message, "span": list(span) if span else None})

    fields = parsed.fields()
    meta_keys = set().union(*(ex.meta.keys() for ex in examples)) if examples else set()
    for seg in parsed.segments:
        if seg.kind == "meta" and examples and seg.value not in meta_keys:
            have = ", ".join(sorted(map(str, meta_keys))) or "none"
            add("error", f"unknown field {seg.value!r}: the data has no such column (meta fields: {have})",
                seg.span)
        if seg.kind == "placeholder" and seg.value == "text_b" and examples \
                and not any(ex.text_b for ex in examples):
            add("warning", "{text_b} is empty in every example: map a column to text_b on the Data tab",
                seg.span)
    if not fields["placeholder"] and not fields["meta"]:
        add("warning", "the template reads no field of the example, so every input is identical", None)
    masks = [s for s in parsed.segments if s.kind == "mask"]
    if profile == "causal" and masks:
        first = parsed.segments.index(masks[0])
        before = [s for s in parsed.segments[:first] if not (s.kind == "text" and not s.value.strip())]
        after = [s for s in parsed.segments[first + 1:] if not (s.kind == "text" and not s.value.strip())]
        if not before:
            add("error", "the mask comes first: a causal model needs text before it to predict the label",
                masks[0].span)
        if after:
            add("warning", "causal models read the label right after the text before the mask; "
                "everything after the mask is dropped", (after[0].span[0], after[-1].span[1]))
    if profile != "causal" and len(masks) > 1:   # causal: said above (everything after the first is dropped)
        add("warning", f"{len(masks)} masks: the label is read at the first one only; the model sees the "
            "others as mask tokens in its input", masks[1].span)
    if examples:
        blank = sum(1 for ex in examples if _renders_blank(parsed, ex))
        if blank:
            add("warning", f"{blank} of {len(examples)} examples render with every field empty", None)
    return found


def _renders_blank(parsed: ParsedTemplate, ex: Example) -> bool:
    values = []
    for seg in parsed.segments:
        if seg.kind == "placeholder":
            values.append(getattr(ex, seg.value, ""))
        elif seg.kind == "meta":
            values.append(ex.meta.get(seg.value))
    return bool(values) and all(v is None or not str(v).strip() for v in values)


def render(text: str, examples: Sequence[tuple[int, Example]], *, tokenizer: Any, profile: str | None,
           info: TokenizerInfo | None = None, max_length: Any = 256, truncate: str = "tail",
           lint_examples: Sequence[Example] = (), demo_pool: Sequence[Example] = (),
           label_words: Any = None) -> dict[str, Any]:
    """The preview itself, for any front end: the studio (``preview``) and ``python -m backend preview``.

    Parses ``text`` (a TemplateError / EncodingError for the settings is raised), then wraps and encodes
    each example with ``tokenizer`` under ``profile`` — the model's kind; without a tokenizer yet only the
    wrapped pieces are given. A per-example problem (a missing meta field, a template too long) stays on
    that example; ``lint`` lists what parses but makes a poor prompt. A template with a demonstrations
    block shows each example with its demonstrations from ``demo_pool`` (``preview_demos``).
    """
    limit = _check_settings(max_length, truncate)
    parsed = parse_template(text)
    template = compile_template(parsed, tokenizer)
    if tokenizer is not None and info is None:
        info = describe_tokenizer(tokenizer)
    shown = list(examples)[:MAX_PREVIEW_EXAMPLES]
    demos = preview_demos(parsed, [ex for _, ex in shown], demo_pool, label_words)
    rows = [_preview_one(template, row, ex, tokenizer, profile, info, limit, truncate, ds)
            for (row, ex), ds in zip(shown, demos)]
    found = lint(parsed, list(lint_examples) or [ex for _, ex in examples], profile)
    if parsed.demos is not None and parsed.demos.value and not demo_pool:
        found.append({"level": "info", "message": "demonstrations come from the training rows; none are given "
                      "here, so the preview shows none", "span": list(parsed.demos.span)})
    return {"segments": segments_of(parsed), "parsed": template.to_openprompt(), "examples": rows,
            "profile": profile, "num_soft_tokens": template.num_soft_tokens, "lint": found}


def preview(ctx: StudioContext, text: str, examples: Sequence[tuple[int, Example]], max_length: Any = 256,
            truncate: str = "tail", lint_examples: Sequence[Example] = (), demo_pool: Sequence[Example] = (),
            label_words: Any = None) -> dict[str, Any]:
    """The studio's live preview: ``render`` with the context's model, while it loads without tokens.

    A template error returns ``{"error": {..., "span": [start, end]}}`` (drawn under the exact
    characters); per-example problems stay on that example.
    """
    status = ctx.model.status()
    ready = status["state"] == "ready"
    try:
        out = render(text, examples, tokenizer=ctx.model.tokenizer if ready else None, profile=status["kind"],
                     info=ctx.model.info if ready else None, max_length=max_length, truncate=truncate,
                     lint_examples=lint_examples, demo_pool=demo_pool, label_words=label_words)
    except StudioError as exc:
        return error_result(exc)
    out["model"] = status
    return out


@service("template")
def length_stats(ctx: StudioContext, text: str, examples: Sequence[Example], max_length: Any = 256,
                 truncate: str = "tail") -> dict[str, Any]:
    """Encoded length of every example (up to HISTOGRAM_LIMIT): the histogram, the share truncated and the
    rows that cannot be encoded at all (the template's fixed parts leave no room, so the mask is lost)."""
    limit = _check_settings(max_length, truncate)
    tok = ctx.model.tokenizer
    template = compile_template(parse_template(text), tok)
    sample = list(examples)[:HISTOGRAM_LIMIT]
    wrapped: list[Wrapped | None] = []
    lost: list[dict[str, Any]] = []
    for row, ex in enumerate(sample):
        try:
            wrapped.append(wrap(template, ex))
        except TemplateError as exc:
            wrapped.append(None)
            lost.append({"row": row, "message": exc.message})
    tok.warm(p.text for w in wrapped if w is not None for p in w.pieces if p.text)
    lengths: list[int] = []
    full: list[int] = []
    truncated = 0
    profile = ctx.model.profile
    for row, w in enumerate(wrapped):
        if w is None:
            continue
        try:
            enc = encode(w, tok, profile=profile, max_length=limit, truncate=truncate, info=ctx.model.info)
        except EncodingError as exc:
            lost.append({"row": row, "message": exc.message})
            continue
        lengths.append(enc.length)
        full.append(enc.length + enc.n_truncated)
        truncated += bool(enc.dropped)
    n = len(sample)
    return {"n": n, "total": len(examples), "lengths": lengths, "full_lengths": full, "max_length": limit,
            "truncated": truncated, "share_truncated": truncated / n if n else 0.0,
            "lost": len(lost), "lost_rows": sorted(lost, key=lambda d: d["row"])[:20]}
