"""In-context demonstrations (LM-BFF) vs zero-shot on SST-2 and CB (SmolLM2), random vs similar.

Per dataset: 16 training rows per class (seed 13) are the only demonstration pool; the evaluation rows are
the dataset's dev rows that repeat no training row (bench/fewshot_sets.py), and the pool also leaves out
any row whose text equals an evaluation row (backend.prompts.demos.build_pool), so no scored row is ever
shown as a demonstration. One template per set (the plain question/answer form, which reads naturally when
repeated) is scored four ways on the same rows: zero-shot (the demos block renders nothing), 1 random
demonstration per class (seeded per input; three seeds), 1 most similar demonstration per class (MiniLM
sentence embeddings). Accuracy with a paired 95% bootstrap interval (same resampled rows for every
condition) and McNemar's exact test against zero-shot; uncalibrated and content-free calibrated (the
content-free inputs get demonstrations too).

    .venv/bin/python bench/bench_demos.py [--eval-limit 300] [--max-length 1024] [--markdown-only]
Writes bench/results/demos.json and demos.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.batching import EncodeSettings  # noqa: E402
from backend.evaluate import evaluate  # noqa: E402
from backend.models.embed import SentenceEmbedder  # noqa: E402
from backend.pipeline import build_verbalizer  # noqa: E402
from backend.prompt_model import PromptModel  # noqa: E402
from backend.prompts.demos import DemoChooser, build_pool  # noqa: E402
from backend.prompts.template import compile_template, mask_prefix  # noqa: E402
from backend.prompts.verbalizer import compile_verbalizer  # noqa: E402
from backend.workbench.stats import accuracy_samples, interval, mcnemar_exact, resample_indices  # noqa: E402
from bench.fewshot_sets import SEED, few_shot_split, start  # noqa: E402

BLOCK = '{"demos": 1, "separator": "\\n\\n"}'
TASKS = {
    "sst2": ("dev.jsonl", ["negative", "positive"], {"negative": ["negative"], "positive": ["positive"]},
             BLOCK + "Review: {text_a}\nSentiment (positive or negative):{mask}"),
    "cb": ("dev.jsonl", ["contradiction", "entailment", "neutral"],
           {"contradiction": ["No"], "entailment": ["Yes"], "neutral": ["Maybe"]},
           BLOCK + "{text_a}\nQuestion: {text_b}? Yes, No or Maybe?\nAnswer:{mask}"),
}
RANDOM_SEEDS = (13, 14, 15)


def _pm(lm, template_text: str, words: dict, classes: list[str]):
    template = compile_template(template_text, lm.tokenizer)
    verb = compile_verbalizer(build_verbalizer(words, classes), lm.tokenizer, prefix=mask_prefix(template))
    return PromptModel(lm.model, lm.kind, template, verb), verb


def _run(pm, lm, rows, settings, chooser, calibration):
    t0 = time.perf_counter()
    res = evaluate(pm, lm.tokenizer, rows, settings=settings, calibration=calibration, batch_size=16,
                   demos=chooser)
    gold = [res.classes.index(p["gold"]) for p in res.predictions]
    pred = [res.classes.index(p["predicted"]) for p in res.predictions]
    used = sorted({r for p in res.predictions for r in p.get("demos", [])})
    return {"accuracy": res.metrics["accuracy"], "macro_f1": res.metrics["macro_f1"], "gold": gold, "pred": pred,
            "demos_shown_per_input": res.metrics.get("demos_shown", 0.0),
            "demos_dropped": res.metrics.get("demos_dropped", 0), "inputs_truncated": res.metrics["truncated"],
            "pool_rows_shown": used, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-limit", type=int, default=300)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--markdown-only", action="store_true", help="rewrite demos.md from demos.json")
    args = ap.parse_args()
    target = ROOT / "bench" / "results"
    if args.markdown_only:
        (target / "demos.md").write_text(markdown(json.loads((target / "demos.json").read_text())))
        return
    lm, _, load0 = start()
    settings = EncodeSettings(profile=lm.kind, max_length=args.max_length)
    embed = SentenceEmbedder()
    results = {}
    for name, (eval_file, classes, words, template_text) in TASKS.items():
        train, rows = few_shot_split(name, eval_file, classes, args.shots, args.eval_limit)
        pm, verb = _pm(lm, template_text, words, classes)
        first_words = [ws[0] for ws in verb.verbalizer.words]
        pool = build_pool(train, classes, first_words, exclude=rows, embed=embed)
        conditions = {"zero-shot": None, "similar": DemoChooser(pool, k=1, selection="similar")}
        conditions.update({f"random (seed {s})": DemoChooser(pool, k=1, selection="random", seed=s)
                           for s in RANDOM_SEEDS})
        idx = resample_indices(len(rows), 1000, seed=0)
        out: dict[str, dict] = {}
        for calibration in (None, "content-free"):
            cal = calibration or "none"
            out[cal] = {}
            for cond, chooser in conditions.items():
                r = _run(pm, lm, rows, settings, chooser, calibration)
                r["ci95"] = interval(accuracy_samples(r["gold"], r["pred"], idx))
                out[cal][cond] = r
                print(name, cal, cond, f"{r['accuracy']:.3f}", r["ci95"], f"{r['seconds']}s", flush=True)
            base = out[cal]["zero-shot"]
            base_ok = [g == p for g, p in zip(base["gold"], base["pred"])]
            for cond, r in out[cal].items():
                ok = [g == p for g, p in zip(r["gold"], r["pred"])]
                diff = accuracy_samples(r["gold"], r["pred"], idx) - accuracy_samples(base["gold"], base["pred"], idx)
                r["vs_zero_shot"] = {"diff": r["accuracy"] - base["accuracy"], "diff_ci95": interval(diff),
                                     **mcnemar_exact(ok, base_ok).to_dict()}
            rand = [out[cal][f"random (seed {s})"]["accuracy"] for s in RANDOM_SEEDS]
            out[cal]["random mean of seeds"] = {"accuracy": float(np.mean(rand)), "min": min(rand), "max": max(rand)}
            for r in out[cal].values():
                r.pop("gold", None)
                r.pop("pred", None)
        results[name] = {"template": template_text, "classes": classes, "label_words": words,
                         "pool": {"rows": len(train), "per_class": args.shots, "seed": SEED,
                                  "guids": [e.guid for e in train], "excluded_as_identical_to_eval": list(pool.excluded)},
                         "eval_rows": len(rows), "eval_file": eval_file, "results": out}
    res = {"model": lm.model_id, "threads": torch.get_num_threads(), "max_length": args.max_length,
           "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]], "tasks": results}
    (target / "demos.json").write_text(json.dumps(res, indent=2))
    (target / "demos.md").write_text(markdown(res))
    print(markdown(res))


def markdown(res: dict) -> str:
    md = [f"# In-context demonstrations vs zero-shot ({res['model']}, 1 demonstration per class, max length "
          f"{res['max_length']})", "",
          "Pool: 16 training rows per class (seed 13), the only rows a demonstration can come from; evaluation: "
          "the dev rows that repeat no training row, and a pool row whose text equals an evaluation row is left "
          "out of the pool (listed below). Random demonstrations are drawn per input (seeded by the input); similar "
          "ones are the nearest pool row of each class by MiniLM sentence embedding, most similar first. Accuracy "
          "with a paired 95% bootstrap interval (1000 resamples of the same rows for every condition); the "
          "difference to zero-shot with its own interval and McNemar's exact p. Load average at start "
          f"{res['load_average_start_end'][0]}, at end {res['load_average_start_end'][1]} "
          f"({res['threads']} threads).", ""]
    for name, t in res["tasks"].items():
        md += [f"## {name} ({t['eval_rows']} evaluation rows from {t['eval_file']}, pool {t['pool']['rows']} rows)", "",
               f"Template: `{t['template']!r}`, label words {t['label_words']}.", "",
               "| calibration | condition | accuracy | 95% CI | vs zero-shot | diff 95% CI | McNemar p | "
               "demos shown / input | distinct pool rows shown | seconds |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for cal, conds in t["results"].items():
            for cond, r in conds.items():
                if "ci95" not in r:
                    md.append(f"| {cal} | {cond} | {r['accuracy']:.3f} (min {r['min']:.3f}, max {r['max']:.3f}) "
                              "| | | | | | | |")
                    continue
                v = r["vs_zero_shot"]
                vs = "" if cond == "zero-shot" else f"{v['diff']:+.3f}"
                dci = "" if cond == "zero-shot" else f"[{v['diff_ci95'][0]:+.3f}, {v['diff_ci95'][1]:+.3f}]"
                p = "" if cond == "zero-shot" else f"{v['p_value']:.3g}"
                md.append(f"| {cal} | {cond} | {r['accuracy']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {vs} | "
                          f"{dci} | {p} | {r['demos_shown_per_input']:.2f} | {len(r['pool_rows_shown'])} | "
                          f"{r['seconds']} |")
        md += ["", f"Pool rows left out as identical to an evaluation row: {t['pool']['excluded_as_identical_to_eval'] or 'none'}; "
               f"inputs truncated: {max(r.get('inputs_truncated', 0) for c in t['results'].values() for r in c.values())}; "
               f"demonstrations dropped to fit: {max(r.get('demos_dropped', 0) for c in t['results'].values() for r in c.values())}.", ""]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
