"""``python -m backend preview``: the studio's preview (``backend.services.preview.render``) as JSON lines.

One line per example: the parsed template, the wrapped example, its encoding and the template's lint.
"""
from __future__ import annotations

import argparse
import json

from backend.cli.common import print_json
from backend.errors import ConfigError, EncodingError


def cmd_preview(args: argparse.Namespace) -> int:
    """Print the preview of each example given by ``--example`` / ``--examples``."""
    # light imports first: a mistake in the arguments is reported before torch / transformers load
    from backend.prompts.example import Example
    from backend.prompts.template import parse_template

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
    from backend.models import load_kind, load_tokenizer
    from backend.services.preview import render

    tok = load_tokenizer(args.model)
    profile = args.profile or load_kind(args.model)    # the kind the studio's loaded model would have
    failed = []
    for i, ex in enumerate(examples):
        out = render(args.template, [(i, ex)], tokenizer=tok, profile=profile, max_length=args.max_length,
                     truncate=args.truncate)
        (row,) = out["examples"]
        line = {"guid": ex.guid, "parsed": out["parsed"], "wrapped": row.get("wrapped"), "lint": out["lint"]}
        if row["error"] is not None:
            line["error"] = row["error"]
            failed.append(f"example {i + 1}: {row['error']['message']}")
        else:
            line["encoded"] = {"profile": profile, **row["encoded"], "truncated": row["n_truncated"],
                               "warnings": row["warnings"], "tokens": row["tokens"]}
        print_json(line)
    if failed:     # each line says what went wrong with it; the status says that something did
        raise EncodingError("; ".join(failed)[:2000])
    return 0
