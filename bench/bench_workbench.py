"""The prompt comparison on SST-2 dev: T templates x V verbalizers against T single evaluations.

Both sides run on the same rows, interleaved template by template (so a change in machine load hits
both alike): the comparison (one forward per template, every verbalizer reading the same hidden state,
uncalibrated and content-free calibrated) and one plain evaluation per template with its first
verbalizer. Target: the T x V comparison costs <= 1.15 x the T single evaluations. Also writes the
comparison table (accuracy and macro-F1 with paired 95% bootstrap intervals, McNemar against the first
combination).

    .venv/bin/python bench/bench_workbench.py [--limit 400] [--batch-size 32]
Writes bench/results/design.json and design.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.batching import EncodeSettings  # noqa: E402
from backend.data import load_examples  # noqa: E402
from backend.evaluate import evaluate  # noqa: E402
from backend.models import load_model  # noqa: E402
from backend.pipeline import build_verbalizer, mask_prefix  # noqa: E402
from backend.prompt_model import PromptModel  # noqa: E402
from backend.prompts.template import compile_template  # noqa: E402
from backend.prompts.verbalizer import compile_verbalizer  # noqa: E402
from backend.workbench.compare import Prompt, compare_prompts  # noqa: E402

SST2 = ROOT.parent / "shared" / "datasets" / "sst2" / "dev.jsonl"
CLASSES = ["negative", "positive"]
TEMPLATES = [
    Prompt("review-colon", "Review: {text_a}\nSentiment (positive or negative):{mask}"),
    Prompt("movie-was", "{text_a} Overall, the movie was{mask}"),
    Prompt("question", "Movie review: {text_a}\nQuestion: Is this review positive or negative?\nAnswer:{mask}"),
    Prompt("chat", "<|im_start|>user\nIs this movie review positive or negative? Answer with one word.\n"
                   "{text_a}<|im_end|>\n<|im_start|>assistant\n{mask}"),
]
VERBALIZERS = [
    Prompt("pos/neg", {"negative": ["negative"], "positive": ["positive"]}),
    Prompt("good/bad", {"negative": ["bad"], "positive": ["good"]}),
    Prompt("three-each", {"negative": ["terrible", "awful", "bad"], "positive": ["great", "wonderful", "good"]}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    if not SST2.exists():
        sys.exit("../shared/datasets/sst2 is absent")
    examples = load_examples(str(SST2), limit=args.limit, label_names=CLASSES).examples
    load0 = [round(x, 2) for x in os.getloadavg()]
    lm = load_model()
    settings = EncodeSettings(profile=lm.kind, max_length=256)
    compare_prompts(lm, TEMPLATES[:1], VERBALIZERS[:1], examples[:8], CLASSES, settings=settings)  # warm-up
    t_cmp = t_single = 0.0
    scored = []
    for t in TEMPLATES:
        start = time.perf_counter()
        part = compare_prompts(lm, [t], VERBALIZERS, examples, CLASSES, settings=settings,
                               batch_size=args.batch_size, calibrate=True)
        t_cmp += time.perf_counter() - start
        scored.append(part)
        tpl = compile_template(str(t.content), lm.tokenizer)
        verb = compile_verbalizer(build_verbalizer(VERBALIZERS[0].content, CLASSES), lm.tokenizer, mask_prefix(tpl))
        pm = PromptModel(lm.model, lm.kind, tpl, verb)
        start = time.perf_counter()
        evaluate(pm, lm.tokenizer, examples, settings=settings, batch_size=args.batch_size, calibration="content-free")
        t_single += time.perf_counter() - start
    cmp = scored[0]
    for part in scored[1:]:
        cmp.scored.extend(part.scored)
        cmp.forwards += part.forwards
    ratio = t_cmp / t_single
    tables = {"uncalibrated": cmp.table(baseline=0), "calibrated": cmp.table(baseline=0, calibrated=True)}
    res = {"dataset": "SST-2 dev", "n": len(examples), "model": lm.model_id, "device": str(lm.device),
           "threads": torch.get_num_threads(), "machine": platform.machine(),
           "templates": len(TEMPLATES), "verbalizers": len(VERBALIZERS),
           "seconds": {"comparison": t_cmp, "single_evaluations": t_single}, "cost_ratio": ratio,
           "target_cost_ratio": 1.15, "forwards": cmp.forwards,
           "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]], "tables": tables}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "design.json").write_text(json.dumps(res, indent=2))
    md = [f"# Prompt comparison ({res['dataset']}, n={len(examples)}, {lm.model_id}, {res['device']}, "
          f"{res['threads']} threads)", "",
          f"{len(TEMPLATES)} templates x {len(VERBALIZERS)} verbalizers, each uncalibrated and content-free "
          f"calibrated, took {t_cmp:.1f} s; the {len(TEMPLATES)} single evaluations (first verbalizer, calibrated) "
          f"took {t_single:.1f} s on the same rows, interleaved: **cost ratio {ratio:.2f}** (target <= 1.15). "
          f"Load average at start {load0}, at end {res['load_average_start_end'][1]}.", ""]
    for name, table in tables.items():
        md += [f"## {name.capitalize()}", "", "| template | verbalizer | accuracy (95% CI) | macro-F1 (95% CI) | "
               "vs first: only it right / only first right, McNemar p |", "|---|---|---|---|---|"]
        for r in sorted(table, key=lambda r: -r["accuracy"]):
            vs = r["vs_baseline"]
            vs_txt = "baseline" if vs is None else f"{vs['only_a']} / {vs['only_b']}, p={vs['p_value']:.3g}"
            md.append(f"| {r['template']} | {r['verbalizer']} | {r['accuracy']:.3f} ({r['accuracy_ci'][0]:.3f}-"
                      f"{r['accuracy_ci'][1]:.3f}) | {r['macro_f1']:.3f} ({r['macro_f1_ci'][0]:.3f}-"
                      f"{r['macro_f1_ci'][1]:.3f}) | {vs_txt} |")
        md.append("")
    (out / "design.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
