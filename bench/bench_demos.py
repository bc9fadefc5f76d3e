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

    .venv/bin/python bench/bench_demos.py [--tasks sst2,cb] [--eval-limit 200] [--random-seeds 3] [--merge]
                                          [--max-length 1024] [--threads 1] [--markdown-only]
Writes bench/results/demos.json and demos.md (``--merge`` keeps the sets not run this time; one thread,
because on a shared, oversubscribed CPU two threads ran three times slower).
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
from backend.evaluate import calibration_prior, content_free_examples, evaluate  # noqa: E402
from backend.models.embed import SentenceEmbedder  # noqa: E402
from backend.pipeline import build_verbalizer  # noqa: E402
from backend.prompt_model import PromptModel  # noqa: E402
from backend.prompts.demos import DemoChooser, build_pool  # noqa: E402
from backend.prompts.encode import describe_tokenizer  # noqa: E402
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


def _run(pm, lm, rows, settings, chooser):
    """One pass over ``rows``: accuracy uncalibrated and content-free calibrated (the content-free inputs
    get demonstrations too, chosen the same way), from the same class scores."""
    t0 = time.perf_counter()
    res = evaluate(pm, lm.tokenizer, rows, settings=settings, batch_size=16, demos=chooser)
    info = describe_tokenizer(lm.tokenizer)
    prior = calibration_prior(pm, lm.tokenizer, content_free_examples(rows), settings, info, info.pad_id,
                              demos=chooser).numpy()
    logp = np.log(np.array([[p["probs"][c] for c in res.classes] for p in res.predictions]).clip(1e-12))
    gold = [res.classes.index(p["gold"]) for p in res.predictions]
    used = sorted({r for p in res.predictions for r in p.get("demos", [])})
    common = {"demos_shown_per_input": res.metrics.get("demos_shown", 0.0),
              "demos_dropped": res.metrics.get("demos_dropped", 0), "inputs_truncated": res.metrics["truncated"],
              "pool_rows_shown": used, "seconds": round(time.perf_counter() - t0, 1)}
    # the class of the demonstration nearest the input, per row: does the model copy it (recency)?
    last = [res.classes.index(str(chooser.pool.examples[p["demos"][-1]].label)) if chooser and p.get("demos")
            else None for p in res.predictions]
    out = {}
    for cal, scores in (("none", logp), ("content-free", logp - prior)):
        pred = scores.argmax(-1).tolist()
        copied = [int(q == c) for q, c in zip(pred, last) if c is not None]
        out[cal] = {"accuracy": float(np.mean(np.asarray(pred) == np.asarray(gold))), "gold": gold, "pred": pred,
                    "predicted_counts": {c: pred.count(k) for k, c in enumerate(res.classes)},
                    "predicts_last_demo_class": float(np.mean(copied)) if copied else None, **common}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-limit", type=int, default=200)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--random-seeds", type=int, default=3, help="how many of the seeds 13, 14, 15")
    ap.add_argument("--tasks", default="sst2,cb")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--merge", action="store_true", help="keep the other tasks already in demos.json")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite demos.md from demos.json")
    args = ap.parse_args()
    target = ROOT / "bench" / "results"
    if args.markdown_only:
        (target / "demos.md").write_text(markdown(json.loads((target / "demos.json").read_text())))
        return
    lm, _, load0 = start()
    torch.set_num_threads(args.threads)
    settings = EncodeSettings(profile=lm.kind, max_length=args.max_length)
    embed = SentenceEmbedder()
    before = json.loads((target / "demos.json").read_text()) if args.merge and (target / "demos.json").exists() else {}
    results = dict(before.get("tasks", {}))
    for name in args.tasks.split(","):
        eval_file, classes, words, template_text = TASKS[name]
        load_task = [round(x, 2) for x in os.getloadavg()] if results or name != args.tasks.split(",")[0] else load0
        train, rows = few_shot_split(name, eval_file, classes, args.shots, args.eval_limit)
        pm, verb = _pm(lm, template_text, words, classes)
        first_words = [ws[0] for ws in verb.verbalizer.words]
        pool = build_pool(train, classes, first_words, exclude=rows, embed=embed)
        conditions = {"zero-shot": None, "similar": DemoChooser(pool, k=1, selection="similar")}
        conditions.update({f"random (seed {s})": DemoChooser(pool, k=1, selection="random", seed=s)
                           for s in RANDOM_SEEDS[:args.random_seeds]})
        idx = resample_indices(len(rows), 1000, seed=0)
        out: dict[str, dict] = {"none": {}, "content-free": {}}
        for cond, chooser in conditions.items():
            for cal, r in _run(pm, lm, rows, settings, chooser).items():
                r["ci95"] = interval(accuracy_samples(r["gold"], r["pred"], idx))
                out[cal][cond] = r
                print(name, cal, cond, f"{r['accuracy']:.3f}", r["ci95"], f"{r['seconds']}s", flush=True)
        for cal in out:
            base = out[cal]["zero-shot"]
            base_ok = [g == p for g, p in zip(base["gold"], base["pred"])]
            for cond, r in out[cal].items():
                ok = [g == p for g, p in zip(r["gold"], r["pred"])]
                diff = accuracy_samples(r["gold"], r["pred"], idx) - accuracy_samples(base["gold"], base["pred"], idx)
                r["vs_zero_shot"] = {"diff": r["accuracy"] - base["accuracy"], "diff_ci95": interval(diff),
                                     **mcnemar_exact(ok, base_ok).to_dict()}
            rand = [out[cal][c]["accuracy"] for c in out[cal] if c.startswith("random")]
            if len(rand) > 1:
                out[cal]["random mean of seeds"] = {"accuracy": float(np.mean(rand)), "min": min(rand),
                                                    "max": max(rand)}
            for r in out[cal].values():
                r.pop("gold", None)
                r.pop("pred", None)
        load_end = [round(x, 2) for x in os.getloadavg()]
        results[name] = {"eval_limit": args.eval_limit, "random_seeds": list(RANDOM_SEEDS[:args.random_seeds]),
                         "threads": torch.get_num_threads(), "load_average_start_end": [load_task, load_end],
                         "template": template_text, "classes": classes, "label_words": words,
                         "pool": {"rows": len(train), "per_class": args.shots, "seed": SEED,
                                  "guids": [e.guid for e in train],
                                  "excluded_as_identical_to_eval": list(pool.excluded)},
                         "eval_rows": len(rows), "eval_file": eval_file, "results": out}
        partial = {"model": lm.model_id, "max_length": args.max_length, "tasks": results, "partial": True}
        (target / "demos.json").write_text(json.dumps(partial, indent=2))     # a long run keeps what it has
    res = {"model": lm.model_id, "max_length": args.max_length, "tasks": results}
    (target / "demos.json").write_text(json.dumps(res, indent=2))
    (target / "demos.md").write_text(markdown(res))
    print(markdown(res))


def counts(r: dict) -> str:
    return " / ".join(f"{c} {n}" for c, n in r.get("predicted_counts", {}).items())


def markdown(res: dict) -> str:
    md = [f"# In-context demonstrations vs zero-shot ({res['model']}, 1 demonstration per class, max length "
          f"{res['max_length']})", "",
          "Pool: 16 training rows per class (seed 13), the only rows a demonstration can come from; evaluation: "
          "the dev rows that repeat no training row, and a pool row whose text equals an evaluation row is left "
          "out of the pool (listed below). Random demonstrations are drawn per input (seeded by the input); similar "
          "ones are the nearest pool row of each class by MiniLM sentence embedding, most similar first. Accuracy "
          "with a paired 95% bootstrap interval (1000 resamples of the same rows for every condition); the "
          "difference to zero-shot with its own interval and McNemar's exact p. Seconds are wall time on a "
          "shared, heavily loaded 2-core machine (load average per set below): they say nothing about speed.", ""]
    for name, t in res["tasks"].items():
        md += [f"## {name} ({t['eval_rows']} evaluation rows from {t['eval_file']}, pool {t['pool']['rows']} rows)", "",
               f"Template: `{t['template']!r}`, label words {t['label_words']}. Random seeds "
               f"{t['random_seeds']}; load average at start {t['load_average_start_end'][0]}, at end "
               f"{t['load_average_start_end'][1]} ({t['threads']} threads).", "",
               "| calibration | condition | accuracy | 95% CI | vs zero-shot | diff 95% CI | McNemar p | "
               "demos shown / input | distinct pool rows shown | predicted per class | predicts the last "
               "demo's class | seconds |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for cal, conds in t["results"].items():
            for cond, r in conds.items():
                if "ci95" not in r:
                    md.append(f"| {cal} | {cond} | {r['accuracy']:.3f} (min {r['min']:.3f}, max {r['max']:.3f}) "
                              "| | | | | | | | | |")
                    continue
                v = r["vs_zero_shot"]
                vs = "" if cond == "zero-shot" else f"{v['diff']:+.3f}"
                dci = "" if cond == "zero-shot" else f"[{v['diff_ci95'][0]:+.3f}, {v['diff_ci95'][1]:+.3f}]"
                p = "" if cond == "zero-shot" else f"{v['p_value']:.3g}"
                copy = "" if r.get("predicts_last_demo_class") is None else f"{r['predicts_last_demo_class']:.2f}"
                md.append(f"| {cal} | {cond} | {r['accuracy']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
                          f"{vs} | {dci} | {p} | {r['demos_shown_per_input']:.2f} | {len(r['pool_rows_shown'])} | "
                          f"{counts(r)} | {copy} | {r['seconds']} |")
        for cal, conds in t["results"].items():
            shown = {c: r for c, r in conds.items() if c != "zero-shot" and "vs_zero_shot" in r}
            best = max(shown, key=lambda c: shown[c]["accuracy"])
            lo, hi = shown[best]["vs_zero_shot"]["diff_ci95"]
            verdict = "better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from"
            md.append(f"\nCalibration {cal}: the best demonstration condition ({best}, "
                      f"{shown[best]['accuracy']:.3f}) is {verdict} zero-shot ({conds['zero-shot']['accuracy']:.3f}).")
        runs = [r for c in t["results"].values() for r in c.values()]
        md += ["", f"Pool (the {t['pool']['rows']} training rows, by guid): "
               f"{', '.join(str(g) for g in t['pool']['guids'])}.", "",
               "Pool rows left out as identical to an evaluation row: "
               f"{t['pool']['excluded_as_identical_to_eval'] or 'none'}; inputs truncated: "
               f"{max(r.get('inputs_truncated', 0) for r in runs)}; demonstrations dropped to fit: "
               f"{max(r.get('demos_dropped', 0) for r in runs)}.", ""]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
