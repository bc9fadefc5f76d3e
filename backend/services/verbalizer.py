"""Verbalizer services: label-word coverage for the loaded tokenizer, and the zero-shot probe (top-k
tokens at the mask, label-word probabilities, suggested label words mined per class)."""
from __future__ import annotations

from typing import Any, Sequence

from backend.evaluate import probe as engine_probe
from backend.evaluate import suggest_label_words
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import coverage_report, parse_verbalizer
from backend.services.context import StudioContext
from backend.services.results import service
from backend.services.versions import parse_label_words

PROBE_MAX = 16
PROBE_SOURCE = "probe:picked-rows"   # never read: the probe's examples are passed in
# its columns given, so building the config does not try to read the source to guess them
PROBE_SELECTION = {"source": PROBE_SOURCE, "columns": {"text_a": "text_a", "label": "label"}}


@service("verbalizer")
def coverage(ctx: StudioContext, label_words: str, template: str, classes: Sequence[str] | None = None
             ) -> dict[str, Any]:
    """Per label word: its sub-tokens, unknown tokens, first-token collisions with other classes."""
    from backend.pipeline import mask_prefix

    verb = parse_verbalizer(parse_label_words(label_words), list(classes) if classes else None)
    tok = ctx.model.tokenizer
    prefix = mask_prefix(compile_template(template, tok)) if template.strip() else " "
    rows = coverage_report(verb, tok, prefix)
    problems = [r for r in rows if r["n_subtokens"] > 1 or r["unknown"] or r["collides_with"]]
    return {"rows": rows, "classes": list(verb.classes), "problems": len(problems), "prefix": prefix}


def scored_inputs(ctx: StudioContext, selection: dict[str, Any] | None) -> set[str]:
    """The inputs (``input_key``) of the rows the Evaluate tab scores for ``selection``: its dev part when a
    dev fraction splits it, else its split's rows (what ``runconfig.build`` makes ``data.eval``)."""
    from backend.data.fingerprint import input_key
    from backend.services.data import loaded, train_dev

    if not selection or not selection.get("source"):
        return set()
    parts = train_dev(ctx, selection)
    return {input_key(e) for e in (parts[1] if parts else loaded(ctx, selection).examples)}


@service("probe")
def probe(ctx: StudioContext, template: str, label_words: str, examples: Sequence[tuple[int, Example]],
          classes: Sequence[str] | None, max_length: Any = 256, truncate: str = "tail", top_k: int = 10,
          selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the base model on a few examples: what it puts at the mask, and how the label words fare.

    The suggested label words are mined from the probed rows' gold labels, so only rows the Evaluate tab
    does not score (``selection``'s) are mined: words chosen by looking at a row's label, then scored on
    that row, make an optimistic number. The others are still probed and shown."""
    from backend.data.fingerprint import input_key
    from backend.pipeline import build_prompt_model, settings_for
    from backend.services import runconfig

    # Built like every run's config, so the probe takes only what a run would (lengths in range, a known
    # truncation, valid text); its rows come in memory, the source only satisfies the builder.
    cfg = runconfig.build(ctx, template=template, label_words=label_words, selection=PROBE_SELECTION,
                          max_length=max_length, truncate=truncate)
    loaded = ctx.model.get()
    chosen = list(examples)[:PROBE_MAX]
    exs = [ex for _, ex in chosen]
    with ctx.model.lock:
        pm, _, _ = build_prompt_model(loaded, cfg, list(classes or []), exs)
        results = engine_probe(pm, ctx.model.tokenizer, exs, settings=settings_for(cfg, loaded.kind),
                               top_k=int(top_k))
    scored = scored_inputs(ctx, selection)
    labelled = [(r, str(ex.label)) for r, ex in zip(results, exs)
                if ex.label is not None and input_key(ex) not in scored]
    suggestions = suggest_label_words([r for r, _ in labelled], [g for _, g in labelled]) if labelled else {}
    rows = [{"row": row, "gold": ex.label, "text": ex.text_a, **res} for (row, ex), res in zip(chosen, results)]
    left_out = sum(ex.label is not None for ex in exs) - len(labelled)   # labelled rows the Evaluate tab scores
    return {"examples": rows, "suggestions": suggestions, "classes": list(pm.verbalizer.classes),
            "mined_from": len(labelled), "left_out": left_out}
