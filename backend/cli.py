"""``python -m backend``: preview, eval, train, worker, predict.

Every user error prints one clear line (``error: template: unknown key 'placehoder' (characters 0-22)``)
and exits with status 2; output meant for programs is JSON on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from backend.errors import ConfigError, StudioError

DEMO_CONFIG: dict[str, Any] = {
    "model": "smollm2-135m-instruct",
    "data": {"eval": "builtin:movie-reviews", "eval_split": "dev", "train": "builtin:movie-reviews",
             "train_split": "train"},
    "template": ("<|im_start|>user\nIs this movie review positive or negative? Answer with one word.\n"
                 "{text_a}<|im_end|>\n<|im_start|>assistant\n{mask}"),
    "verbalizer": {"negative": ["Negative"], "positive": ["Positive"]},
    "max_length": 256,
    "method": {"name": "zero-shot"},
    "eval": {"calibration": "content-free"},
    "name": "demo",
}


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _open_store(args: argparse.Namespace) -> Any:
    if getattr(args, "no_db", False):
        return None
    from storage import open_store

    store = open_store(args.db)
    store.reap_dead_runs()   # runs whose process is gone are failed, never left "running"
    return store


# ------------------------------------------------------------------------------------------ preview

def _profile_for(model: str, tokenizer: Any) -> str:
    from backend.models import DEFAULT_MODEL

    if model == DEFAULT_MODEL:
        return "causal"
    from transformers import AutoConfig

    from backend.models import model_kind

    try:
        return model_kind(AutoConfig.from_pretrained(model))
    except Exception:  # noqa: BLE001 - a tokenizer-only directory: fall back on what the tokenizer can do
        return "masked" if tokenizer.mask_token_id is not None else "causal"


def cmd_preview(args: argparse.Namespace) -> int:
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
        _print_json({
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


# --------------------------------------------------------------------------------------------- eval

def _config_from(args: argparse.Namespace) -> Any:
    from backend.config import RunConfig, load_config

    if args.config in ("demo", "builtin"):
        return RunConfig.from_dict(DEMO_CONFIG)
    return load_config(args.config)


def cmd_eval(args: argparse.Namespace) -> int:
    cfg = _config_from(args)          # before the heavy imports: a bad config is reported at once
    if args.limit is not None:
        cfg.data.limit = args.limit
    if args.predictions:             # before any work, and before the run is recorded
        from backend.outputs import check_output_file

        check_output_file(args.predictions, "--predictions")
    from backend.pipeline import run_zero_shot

    if args.predictions and not cfg.eval.top_k:
        cfg.eval.top_k = 5  # the predictions file shows what the model wanted to say at the mask
    from backend.jobs.signals import RunStopped, StopOnSignal

    store = _open_store(args)
    with StopOnSignal() as stop:     # SIGTERM / Ctrl-C: the run records why it stopped, then we exit
        try:
            result, run_id = run_zero_shot(cfg, store=store, progress=stop.raise_if_stopped)
        except RunStopped as exc:
            sys.stderr.write(f"evaluation {exc}\n")
            return stop.exit_code or 130
    out = dict(result.metrics)
    out["run_id"] = run_id
    if args.predictions:
        path = Path(args.predictions)
        with path.open("w", encoding="utf-8") as f:
            for row in result.predictions:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        out["predictions_file"] = str(path)
    _print_json(out)
    return 0


# ---------------------------------------------------------------------------- train / worker / predict

def cmd_train(args: argparse.Namespace) -> int:
    try:
        from backend.training.cli import train_command
    except ImportError:
        raise ConfigError("training is not available in this build yet") from None
    return int(train_command(args) or 0)


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        from backend.jobs import worker_main
    except ImportError:
        raise ConfigError("the job worker is not available in this build yet") from None
    return int(worker_main(args.db, concurrency=args.concurrency, once=args.once) or 0)


def cmd_predict(args: argparse.Namespace) -> int:
    from backend.schema import check

    # argv bytes that are not UTF-8 arrive as lone surrogates: refused here, before any model loads
    check(args.text, list[str], "--text", {"max_len": 100_000})
    if args.text_b is not None:
        check(args.text_b, str, "--text-b", {"max_len": 100_000})
    try:
        from backend.serving import predict_command
    except ImportError:
        raise ConfigError("serving is not available in this build yet") from None
    return int(predict_command(args) or 0)


def _at_least(low: int) -> Any:
    """An argparse type: a whole number >= ``low`` (argparse reports anything else, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend", description="Prompt Studio engine")
    sub = p.add_subparsers(dest="command", required=True)

    pv = sub.add_parser("preview", help="parse, wrap and encode examples; one JSON line per example")
    pv.add_argument("--template", required=True)
    pv.add_argument("--example", help="one example as JSON {guid,text_a,text_b,label,meta}")
    pv.add_argument("--examples", help="a JSONL/CSV/TSV/Parquet file of examples")
    pv.add_argument("--model", default="smollm2-135m-instruct")
    pv.add_argument("--profile", choices=["masked", "causal", "seq2seq"], help="default: from the model")
    pv.add_argument("--max-length", type=_at_least(8), default=256)
    pv.add_argument("--truncate", default="tail", choices=["tail", "head", "balanced"])
    pv.set_defaults(func=cmd_preview)

    ev = sub.add_parser("eval", help="zero-shot evaluation of a RunConfig (JSON/YAML); prints metrics JSON")
    ev.add_argument("config", help="config file, or 'demo' for the built-in demo")
    ev.add_argument("--predictions", help="write per-example predictions (JSONL) here")
    ev.add_argument("--limit", type=_at_least(1), help="evaluate only the first N examples")
    ev.add_argument("--db", help="SQLAlchemy URL of the run database (default: the studio's)")
    ev.add_argument("--no-db", action="store_true", help="do not record the run")
    ev.set_defaults(func=cmd_eval)

    tr = sub.add_parser("train", help="train a RunConfig's method; prints the result JSON")
    tr.add_argument("config")
    tr.add_argument("--db")
    tr.add_argument("--no-db", action="store_true")
    tr.add_argument("--seeds", help="comma-separated few-shot seeds, e.g. 13,21,42,87,100")
    tr.add_argument("--resume", type=int, help="resume run RUN_ID from its last checkpoint")
    tr.set_defaults(func=cmd_train)

    wk = sub.add_parser("worker", help="claim and run queued runs from a shared database")
    wk.add_argument("--db", required=True)
    wk.add_argument("--concurrency", type=_at_least(1), default=1)
    wk.add_argument("--once", action="store_true", help="exit when the queue is empty")
    wk.set_defaults(func=cmd_worker)

    pr = sub.add_parser("predict", help="class probabilities for text with one or more trained runs")
    pr.add_argument("--run", action="append", type=int, required=True)
    pr.add_argument("--text", action="append", required=True)
    pr.add_argument("--text-b")
    pr.add_argument("--db")
    pr.set_defaults(func=cmd_predict)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return int(args.func(args) or 0)
    except StudioError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - storage and other layers' typed errors
        if type(exc).__module__.startswith("storage"):
            sys.stderr.write(f"error: {exc}\n")
            return 2
        raise
