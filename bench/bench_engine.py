"""Zero-shot eval throughput on SST-2 dev: ours vs a plain transformers loop vs an OpenPrompt-style loop.

All three see the same token ids (our encoding) and must give the same predictions; only the compute
strategy differs:
  ours       length-sorted batches, dynamic padding, LM-head rows of the label words at the mask only
  plain      batches in dataset order, padding to the longest in the batch, model(**batch) with full logits
  openprompt every example padded to 128 tokens, full logits at every position
Also: p95 time to parse + wrap + encode one example with a ~200-token input (target <= 5 ms).

    .venv/bin/python bench/bench_engine.py [--limit N] [--batch-size 32]
Writes bench/results/engine.json and engine.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.batching import EncodeSettings, encode_examples  # noqa: E402
from backend.config import RunConfig  # noqa: E402
from backend.evaluate import evaluate  # noqa: E402
from backend.models import load_model  # noqa: E402
from backend.pipeline import build_prompt_model  # noqa: E402
from backend.prompts.encode import describe_tokenizer, encode  # noqa: E402
from backend.prompts.example import Example  # noqa: E402
from backend.prompts.template import compile_template  # noqa: E402
from backend.prompts.wrap import wrap  # noqa: E402

SST2 = ROOT.parent / "shared" / "datasets" / "sst2" / "dev.jsonl"
TEMPLATE = "Review: {text_a}\nSentiment (positive or negative):{mask}"
WORDS = {"negative": ["negative"], "positive": ["positive"]}


def baseline(model, encs, rows, batch_size, pad_id, pad_to=None):
    """Full-vocabulary logits at every position; returns predicted class per example (input order)."""
    preds = []
    with torch.inference_mode():
        for start in range(0, len(encs), batch_size):
            chunk = encs[start:start + batch_size]
            width = pad_to or max(e.length for e in chunk)
            ids = torch.full((len(chunk), width), pad_id)
            att = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, e in enumerate(chunk):
                ids[i, :e.length] = torch.tensor(e.input_ids)
                att[i, :e.length] = 1
            logits = model(input_ids=ids, attention_mask=att).logits          # B x L x V
            read = torch.tensor([e.mask_positions[0] for e in chunk])
            at_mask = logits[torch.arange(len(chunk)), read][:, rows]
            preds.extend(at_mask.argmax(-1).tolist())
    return preds


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=872)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    if not SST2.exists():
        sys.exit("../shared/datasets/sst2 is absent")
    rows = [json.loads(x) for x in SST2.read_text().splitlines()][:args.limit]
    examples = [Example(guid=i, text_a=r["text_a"], label=r["label"]) for i, r in enumerate(rows)]
    lm = load_model()
    tok = lm.tokenizer
    cfg = RunConfig.from_dict({"template": TEMPLATE, "verbalizer": WORDS, "data": {"eval": str(SST2)}})
    pm, tpl, verb = build_prompt_model(lm, cfg, ["negative", "positive"])
    st = EncodeSettings(profile=lm.kind, max_length=128)
    info = describe_tokenizer(tok)
    encs = encode_examples(tpl, examples, tok, st, info)
    word_rows = [w[0][0] for w in verb.token_ids]

    evaluate(pm, tok, examples[:8], settings=st, batch_size=8)  # warm-up
    ours, t_ours = timed(lambda: evaluate(pm, tok, examples, settings=st, batch_size=args.batch_size,
                                          with_predictions=True))
    ours_pred = [verb.classes.index(p["predicted"]) for p in ours.predictions]
    plain_pred, t_plain = timed(lambda: baseline(lm.model, encs, word_rows, args.batch_size, info.pad_id))
    op_pred, t_op = timed(lambda: baseline(lm.model, encs, word_rows, args.batch_size, info.pad_id, pad_to=128))

    # p95 of parse + wrap + encode for one example with a ~200-token input
    long_text = " ".join(r["text_a"] for r in rows[:12])
    ex = Example(text_a=long_text)
    n_tokens = len(tok(long_text, add_special_tokens=False)["input_ids"])
    lat = []
    for _ in range(300):
        t = time.perf_counter()
        encode(wrap(compile_template(TEMPLATE, tok), ex), tok, profile=lm.kind, max_length=512, info=info)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    p95 = lat[int(0.95 * len(lat)) - 1]

    n = len(examples)
    res = {
        "dataset": "SST-2 dev", "n": n, "batch_size": args.batch_size, "model": lm.model_id, "device": str(lm.device),
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "accuracy": ours.metrics["accuracy"],
        "examples_per_s": {"ours": n / t_ours, "plain_transformers": n / t_plain, "openprompt_style": n / t_op},
        "speedup_vs_plain": t_plain / t_ours, "speedup_vs_openprompt_style": t_op / t_ours,
        "same_predictions": {"plain": plain_pred == ours_pred, "openprompt_style": op_pred == ours_pred,
                             "agreement_plain": sum(a == b for a, b in zip(plain_pred, ours_pred)) / n,
                             "agreement_openprompt": sum(a == b for a, b in zip(op_pred, ours_pred)) / n},
        "preview_latency_ms": {"input_tokens": n_tokens, "p50": statistics.median(lat), "p95": p95},
        "targets": {"speedup_vs_plain": 1.3, "speedup_vs_openprompt_style": 2.5, "preview_p95_ms": 5.0},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps(res, indent=2))
    md = [f"# Engine benchmark ({res['dataset']}, n={n}, batch {args.batch_size}, {res['device']}, "
          f"{res['threads']} threads)", "",
          "| loop | examples/s | ours is faster by |", "|---|---|---|",
          f"| ours | {n / t_ours:.1f} | — |",
          f"| plain transformers | {n / t_plain:.1f} | {t_plain / t_ours:.2f}x (target >= 1.3x) |",
          f"| OpenPrompt-style (pad 128) | {n / t_op:.1f} | {t_op / t_ours:.2f}x (target >= 2.5x) |", "",
          f"Zero-shot accuracy: {ours.metrics['accuracy']:.4f}. Same predictions: plain "
          f"{res['same_predictions']['plain']}, OpenPrompt-style {res['same_predictions']['openprompt_style']}.",
          f"Parse + wrap + encode of one {n_tokens}-token example: p50 {res['preview_latency_ms']['p50']:.2f} ms, "
          f"p95 {p95:.2f} ms (target <= 5 ms)."]
    (out / "engine.md").write_text("\n".join(md) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
