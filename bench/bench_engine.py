"""Zero-shot eval throughput on SST-2 dev: ours vs a plain transformers loop vs an OpenPrompt-style loop.

All three see the same token ids (our encoding) and must give the same predictions; only the compute
strategy differs (tokenization, shared by all three, is timed separately as the preview latency):
  ours       length-sorted batches, rows cut after the mask and run back to back (no padding; attention
             row by row), LM-head rows of the label words at the mask only
  plain      batches in dataset order, padding to the longest in the batch, model(**batch) with full logits
  openprompt every example padded to 128 tokens, full logits at every position
Also: p95 time to parse + wrap + encode one example with a ~200-token input (target <= 5 ms), and our
loop's model-FLOPs utilisation against an fp32 matmul peak measured in the same run (bench/mfu.py; bar
>= 65%). On a CPU, our loop on the model loaded in bf16 (``eval.dtype: bfloat16``) runs as a fourth arm:
its speed against fp32 and how many predictions change (no bar: that a CPU has bf16 matrix units decides).

    .venv/bin/python bench/bench_engine.py [--limit N] [--batch-size 32]
Writes bench/results/engine.json and engine.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.batching import EncodeSettings, collate, encode_examples, length_sorted_batches  # noqa: E402
from backend.config import RunConfig  # noqa: E402
from backend.cpu_memory import cpu_buffers, mode_for  # noqa: E402
from backend.models import load_model  # noqa: E402
from backend.pipeline import build_prompt_model  # noqa: E402
from backend.prompts.encode import describe_tokenizer, encode  # noqa: E402
from backend.prompts.example import Example  # noqa: E402
from backend.prompts.template import compile_template  # noqa: E402
from backend.prompts.wrap import wrap  # noqa: E402
from bench.mfu import (FORMULA, OtherLoad, PeakSamples, by_machine, by_machine_lines, ceiling_entry,  # noqa: E402
                       forward_flops, machine, machine_label, mfu_entry, mfu_line, needed_tokens,
                       non_embedding_params)

EVAL_MFU_BAR = 0.65
SST2 = ROOT.parent / "shared" / "datasets" / "sst2" / "dev.jsonl"
TEMPLATE = "Review: {text_a}\nSentiment (positive or negative):{mask}"
WORDS = {"negative": ["negative"], "positive": ["positive"]}


def full_logits_batch(model, chunk, rows, pad_id, pad_to=None):
    """What the baselines do: full-vocabulary logits at every position, then read the mask row."""
    width = pad_to or max(e.length for e in chunk)
    ids = torch.full((len(chunk), width), pad_id)
    att = torch.zeros((len(chunk), width), dtype=torch.long)
    for i, e in enumerate(chunk):
        ids[i, :e.length] = torch.tensor(e.input_ids)
        att[i, :e.length] = 1
    logits = model(input_ids=ids, attention_mask=att).logits          # B x L x V
    read = torch.tensor([e.mask_positions[0] for e in chunk])
    return logits[torch.arange(len(chunk)), read][:, rows].argmax(-1).tolist()


def ours_batch(pm, chunk, pad_id):
    """Our path: dynamic padding, LM-head input captured at the mask, label-word rows only."""
    batch = collate(chunk, pad_id)
    scores = pm.class_scores(pm.word_scores(pm.label_logits(pm.mask_hidden(batch))))
    return scores.argmax(-1).tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=872)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    if not SST2.exists():
        sys.exit("../shared/datasets/sst2 is absent")
    from backend.recording import code_version

    code_version()   # the code measured, asked (and kept) before this bench writes its own results into the tree
    rows = [json.loads(x) for x in SST2.read_text().splitlines()][:args.limit]
    examples = [Example(guid=i, text_a=r["text_a"], label=r["label"]) for i, r in enumerate(rows)]
    load0 = [round(x, 2) for x in os.getloadavg()]
    others = OtherLoad()          # other processes' CPU while this runs: what makes a figure not a verdict
    lm = load_model()
    tok = lm.tokenizer
    cfg = RunConfig.from_dict({"template": TEMPLATE, "verbalizer": WORDS, "data": {"eval": str(SST2)}})
    pm, tpl, verb = build_prompt_model(lm, cfg, ["negative", "positive"])
    st = EncodeSettings(profile=lm.kind, max_length=128)
    info = describe_tokenizer(tok)
    encs = encode_examples(tpl, examples, tok, st, info)
    word_rows = [w[0][0] for w in verb.token_ids]

    # bf16 weights on a CPU: the same encodings and batches through the same loop (eval.dtype: bfloat16)
    pm16 = None
    if lm.device.type == "cpu":
        lm16 = load_model(dtype="bfloat16")
        pm16 = build_prompt_model(lm16, cfg, ["negative", "positive"])[0]
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())

    # The loops run interleaved batch by batch, so a change in machine load hits all of them alike.
    ours_b = length_sorted_batches([e.length for e in encs], args.batch_size)
    plain_b = [list(range(i, min(i + args.batch_size, len(encs)))) for i in range(0, len(encs), args.batch_size)]
    peaks = PeakSamples(lm.device)
    arms = ["ours", "plain", "openprompt"] + (["ours_bf16"] if pm16 is not None else [])
    secs = {k: 0.0 for k in arms}
    preds: dict[str, list] = {k: [None] * len(encs) for k in arms}
    mode = mode_for(pm, lm.device.type)   # the CPU memory mode an evaluation job runs in on this machine
    with cpu_buffers(mode), torch.inference_mode():   # every loop alike: one process, one allocator
        ours_batch(pm, encs[:4], info.pad_id)  # warm-up
        if pm16 is not None:
            ours_batch(pm16, encs[:4], info.pad_id)
        for ob, pb in zip(ours_b, plain_b):
            for name, idx, fn in (
                    ("ours", ob, lambda c: ours_batch(pm, c, info.pad_id)),
                    ("plain", pb, lambda c: full_logits_batch(lm.model, c, word_rows, info.pad_id)),
                    ("openprompt", pb, lambda c: full_logits_batch(lm.model, c, word_rows, info.pad_id, 128)),
                    *((("ours_bf16", ob, lambda c: ours_batch(pm16, c, info.pad_id)),) if pm16 is not None else ())):
                t = time.perf_counter()
                out = fn([encs[i] for i in idx])
                secs[name] += time.perf_counter() - t
                for i, p in zip(idx, out):
                    preds[name][i] = p
            peaks.sample()
    t_ours, t_plain, t_op = secs["ours"], secs["plain"], secs["openprompt"]
    peak = peaks.median
    n_params, tokens = non_embedding_params(lm.model), needed_tokens(encs, lm.kind)
    per_forward = round(tokens / max(1, len(ours_b)))
    mfu = dict(mfu_entry(forward_flops(n_params, tokens), t_ours, peak, EVAL_MFU_BAR),
               non_embedding_params=n_params, tokens_needed=tokens,
               peak_samples_gflops=[round(v / 1e9, 1) for v in peaks.values],
               **ceiling_entry(lm.model, per_forward, lm.device))
    ours_pred, plain_pred, op_pred = preds["ours"], preds["plain"], preds["openprompt"]
    gold = [verb.classes.index(e.label) for e in examples]
    accuracy = sum(int(g == p) for g, p in zip(gold, ours_pred)) / len(gold)
    bf16 = None
    if pm16 is not None:
        p16 = preds["ours_bf16"]
        bf16 = {"examples_per_s": len(encs) / secs["ours_bf16"], "speedup_vs_fp32": t_ours / secs["ours_bf16"],
                "accuracy": sum(int(g == p) for g, p in zip(gold, p16)) / len(gold),
                "predictions_changed": sum(a != b for a, b in zip(ours_pred, p16)), "amx": amx}

    # p95 of parse + wrap + encode for one example with a ~200-token input
    long_text = " ".join(r["text_a"] for r in rows[:12])
    ex = Example(text_a=long_text)
    n_tokens = len(tok(long_text, add_special_tokens=False)["input_ids"])
    lat, cpu = [], []
    for _ in range(300):
        t, c = time.perf_counter(), time.process_time()
        encode(wrap(compile_template(TEMPLATE, tok), ex), tok, profile=lm.kind, max_length=512, info=info)
        lat.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    lat.sort()
    cpu.sort()
    p95 = lat[int(0.95 * len(lat)) - 1]
    cpu_p95 = cpu[int(0.95 * len(cpu)) - 1]

    n = len(examples)
    others.stop()
    out = ROOT / "bench" / "results"
    previous = json.loads((out / "engine.json").read_text()) if (out / "engine.json").exists() else None
    res = {
        "dataset": "SST-2 dev", "n": n, "batch_size": args.batch_size, "model": lm.model_id, "device": str(lm.device),
        "threads": torch.get_num_threads(), "machine": machine(), "cpu_memory": mode,
        "accuracy": accuracy, "load_average_start_end": [load0, list(os.getloadavg())],
        "other_processes_cores": others.cores,
        "examples_per_s": {"ours": n / t_ours, "plain_transformers": n / t_plain, "openprompt_style": n / t_op},
        "speedup_vs_plain": t_plain / t_ours, "speedup_vs_openprompt_style": t_op / t_ours,
        "same_predictions": {"plain": plain_pred == ours_pred, "openprompt_style": op_pred == ours_pred,
                             "agreement_plain": sum(a == b for a, b in zip(plain_pred, ours_pred)) / n,
                             "agreement_openprompt": sum(a == b for a, b in zip(op_pred, ours_pred)) / n},
        "preview_latency_ms": {"input_tokens": n_tokens, "p50": statistics.median(lat), "p95": p95,
                               "cpu_p50": statistics.median(cpu), "cpu_p95": cpu_p95},
        "mfu_eval": mfu, "mfu_by_machine": by_machine(previous, {"zero-shot eval": mfu}), "ours_bf16_cpu": bf16,
        "targets": {"eval_mfu": EVAL_MFU_BAR, "speedup_vs_plain": 1.3, "speedup_vs_openprompt_style": 2.5, "preview_p95_ms": 5.0},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps(res, indent=2))
    md = [f"# Engine benchmark ({res['dataset']}, n={n}, batch {args.batch_size}, {res['device']}, "
          f"{res['threads']} threads, CPU memory mode {mode or '-'})", "",
          f"Machine: {machine_label(res['machine'])}; torch {res['machine']['torch']}.", "",
          "| loop | examples/s | ours is faster by |", "|---|---|---|",
          f"| ours | {n / t_ours:.1f} | — |",
          f"| plain transformers | {n / t_plain:.1f} | {t_plain / t_ours:.2f}x (target >= 1.3x) |",
          f"| OpenPrompt-style (pad 128) | {n / t_op:.1f} | {t_op / t_ours:.2f}x (target >= 2.5x) |", "",
          f"Zero-shot accuracy: {accuracy:.4f}. Load average (1/5/15 min) at start {load0}, at end {[round(x, 2) for x in os.getloadavg()]}. Same predictions: plain "
          f"{res['same_predictions']['plain']}, OpenPrompt-style {res['same_predictions']['openprompt_style']}.",
          f"Parse + wrap + encode of one {n_tokens}-token example: p50 {res['preview_latency_ms']['p50']:.2f} ms, "
          f"p95 {p95:.2f} ms wall-clock, CPU time p50 {statistics.median(cpu):.2f} ms, p95 {cpu_p95:.2f} ms "
          "(target <= 5 ms; on a loaded machine the wall-clock tail includes time the process was not scheduled).",
          "", mfu_line("Zero-shot eval, ours", mfu, others.cores) + f" {tokens} tokens needed, N = {n_params:,}.",
          *(["", f"Ours with the model in bf16 (`eval.dtype: bfloat16`; this CPU has {'AMX' if amx else 'no AMX'}): "
              f"{bf16['examples_per_s']:.1f} examples/s, **{bf16['speedup_vs_fp32']:.2f}x fp32** in the same run; "
              f"accuracy {bf16['accuracy']:.4f} (fp32 {accuracy:.4f}); {bf16['predictions_changed']} of {n} "
              "predictions differ from fp32."] if bf16 else []),
          "", "MFU by machine (the latest run on each kind of machine this bench ran on; the ratio depends on the "
              "machine as much as on the code, see `bench/mfu.py: machine`):", "",
          *by_machine_lines(res["mfu_by_machine"]), "", FORMULA]
    (out / "engine.md").write_text("\n".join(md) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
