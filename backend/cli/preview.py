"""``python -m backend preview``: parse, wrap and encode examples; one JSON line per example."""
from __future__ import annotations

import argparse
import json

from backend.cli.common import print_json
from backend.errors import ConfigError


def _profile_for(model: str, tokenizer: object) -> str:
    from backend.models import DEFAULT_MODEL

    if model == DEFAULT_MODEL:
        return "causal"
    from transformers import AutoConfig

    from backend.models import model_kind

    try:
        return model_kind(AutoConfig.from_pretrained(model))
    except Exception:  # noqa: BLE001 - a tokenizer-only directory: fall back on what the tokenizer can do
        return "masked" if getattr(tokenizer, "mask_token_id", None) is not None else "causal"


def cmd_preview(args: argparse.Namespace) -> int:
    """Print the preview of each example given by ``--example`` / ``--examples``."""
    # light imports first: a mistake in the arguments is reported before torch / transformers load
    from backend.prompts.example import Example
    from backend.prompts.template import compile_template, parse_template

    parse_template(args.template)
    if args.example is None and args.examples is None:
        raise ConfigError("give --example JSON or --examples FILE.jsonl")
    examples: list[Example] = []
    if args.example is not None:
        from backend.schema import check_json

        try:
            raw = json.loads(args.example)
        except (ValueError, RecursionError) as exc:   # JSONDecodeError, a 5,000-digit number, deep nesting
            raise ConfigError(f"--example is not a JSON object: {str(exc)[:200]}") from None
        if not isinstance(raw, dict):
            raise ConfigError("--example is not a JSON object like {\"text_a\": \"A fine film.\"}")
        # text at the edge: a lone surrogate or a giant value is refused here, with the key it is under
        examples.append(Example.from_dict(check_json(raw, "--example")))
    if args.examples is not None:
        from backend.data import load_examples

        examples.extend(load_examples(args.examples, columns=None, label_names=None).examples)
    from backend.models import load_tokenizer
    from backend.prompts.encode import describe_tokenizer, encode, token_views
    from backend.prompts.wrap import wrap

    tok = load_tokenizer(args.model)
    profile = args.profile or _profile_for(args.model, tok)
    template = compile_template(args.template, tok)
    info = describe_tokenizer(tok)
    for ex in examples:
        wrapped = wrap(template, ex)
        enc = encode(wrapped, tok, profile=profile, max_length=args.max_length, truncate=args.truncate, info=info)
        print_json({
            "guid": ex.guid,
            "parsed": template.to_openprompt(),
            "wrapped": wrapped.to_openprompt(),
            "encoded": {"profile": profile, "input_ids": list(enc.input_ids), "loss_ids": list(enc.loss_ids),
                        "soft_token_ids": list(enc.soft_token_ids), "mask_positions": list(enc.mask_positions),
                        "decoder_input_ids": list(enc.decoder_input_ids) if enc.decoder_input_ids else None,
                        "truncated": enc.n_truncated, "warnings": list(enc.warnings),
                        "tokens": [vars(v) for v in token_views(enc, tok)]},
        })
    return 0
