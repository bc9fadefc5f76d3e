"""KPT and ProtoVerb vs hand-written label words on AG News and TREC; template search on SST-2 (SmolLM2).

Verbalizers (``--part verbalizers``): per set, 16 training rows per class (seed 13) and at most N test
rows none of which repeats a training row (bench/fewshot_sets.py). Every system is scored on the same
test rows with 95% bootstrap intervals on shared resamples (backend/workbench/stats.py) and McNemar's
exact test against the hand-written words:
- hand-written words, zero-shot, uncalibrated and content-free calibrated;
- KPT (backend/workbench/kpt.py): the words expanded from the model's embeddings and refined on the
  training rows *without their labels*, support-calibrated on them (zero-shot);
- ProtoVerb trained on the 16 rows per class through the normal training path (run_training, method
  protoverb, the PLM frozen, no checkpoint chosen on the test rows), scored beside the words and alone;
- the hand-written words trained with the same rows and epochs, as a fair baseline: a WARP soft
  verbalizer head started from the words' rows (method prompt-tuning with one soft token, head soft).

Template search (``--part templates``): candidates for the SST-2 template ranked by successive halving
on 400 SST-2 *training* rows (not the few-shot rows), then the user's template and the best three
scored on the dev rows, which the search never saw.

    .venv/bin/python bench/bench_verbalizers.py [--part all|verbalizers|templates] [--test-limit 200]
Writes bench/results/verbalizers.{json,md} and bench/results/templatesearch.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.config import RunConfig  # noqa: E402
from backend.evaluate import classification_metrics, evaluate, gold_indices  # noqa: E402
from backend.methods.build import build_tuned_model  # noqa: E402
from backend.pipeline import build_verbalizer  # noqa: E402
from backend.training import RunData, load_trained, run_training  # noqa: E402
from backend.workbench import stats  # noqa: E402
from backend.workbench.compare import Prompt, compare_prompts  # noqa: E402
from backend.workbench.kpt import knowledgeable_verbalizer  # noqa: E402
from backend.workbench.templatesearch import search_templates  # noqa: E402
from bench.fewshot_sets import DATA, SEED, few_shot_split, start  # noqa: E402

OUT = ROOT / "bench" / "results"
TASKS = {
    "agnews": {"classes": ["World", "Sports", "Business", "Sci/Tech"],
               "template": "Article: {text_a}\nTopic (world, sports, business or technology):{mask}",
               "words": {"World": ["world"], "Sports": ["sports"], "Business": ["business"],
                         "Sci/Tech": ["technology"]}},
    "trec": {"classes": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
             "template": "Question: {text_a}\nAnswer type (abbreviation, description, entity, person, location "
                         "or number):{mask}",
             "words": {"ABBR": ["abbreviation"], "DESC": ["description"], "ENTY": ["entity"], "HUM": ["person"],
                       "LOC": ["location"], "NUM": ["number"]}},
}
SST2 = {"classes": ["negative", "positive"], "template": "Review: {text_a}\nSentiment (positive or negative):{mask}",
        "words": {"negative": ["negative"], "positive": ["positive"]}, "task": "sentiment"}


def zero_shot(lm: Any, template: str, words: Any, rows: list, classes: list[str], settings: Any,
              calibration: str | None = None, support: list | None = None) -> list[int]:
    verb = build_verbalizer(words, classes)
    tuned = build_tuned_model(lm.model, lm.tokenizer, lm.kind, template, verb, "zero-shot")
    res = evaluate(tuned.pm, lm.tokenizer, rows, settings=settings, calibration=calibration, support=support)
    return [classes.index(p["predicted"]) for p in res.predictions]


def trained(lm: Any, template: str, words: Any, train: list, rows: list, classes: list[str], method: dict,
            epochs: int, out: Path) -> tuple[list[int], Any]:
    cfg = RunConfig.from_dict({"model": lm.model_id, "data": {"eval": "bench"}, "template": template,
                               "verbalizer": words, "method": method, "max_length": 256,
                               "train": {"epochs": epochs, "batch_size": 16, "seed": SEED, "output_dir": str(out)}})
    res = run_training(cfg, loaded=lm, data=RunData(train=train, dev=rows, classes=classes))
    return [classes.index(p["predicted"]) for p in res.predictions], res


def prototypes_alone(lm: Any, out: Path, rows: list, classes: list[str], settings: Any) -> list[int]:
    """The trained ProtoVerb run scored with its prototypes only (same weights, other scoring)."""
    pm = load_trained(out, lm.model, lm.tokenizer).pm.eval()
    pm.class_head.scoring = "prototypes"
    res = evaluate(pm, lm.tokenizer, rows, settings=settings)
    return [classes.index(p["predicted"]) for p in res.predictions]


def table(gold: list[int], preds: dict[str, list[int]], n_classes: int, baseline: str) -> list[dict[str, Any]]:
    idx = stats.resample_indices(len(gold), 1000, 0)
    g = np.asarray(gold)
    base_ok = (np.asarray(preds[baseline]) == g).tolist()
    rows = []
    for name, pred in preds.items():
        p = np.asarray(pred)
        acc = stats.accuracy_samples(g, p, idx)
        f1 = stats.macro_f1_samples(g, p, n_classes, idx)
        test = stats.mcnemar_exact((p == g).tolist(), base_ok)
        rows.append({"system": name, "accuracy": float((p == g).mean()), "accuracy_ci": stats.interval(acc),
                     "macro_f1": classification_metrics(gold, pred, list(range(n_classes)))["macro_f1"],
                     "macro_f1_ci": stats.interval(f1), "predictions": list(map(int, pred)),
                     "vs_words": None if name == baseline else test.to_dict()})
    return rows


def run_verbalizers(lm: Any, settings: Any, shots: int, test_limit: int, epochs: int) -> dict[str, Any]:
    results = {}
    for name, task in TASKS.items():
        classes, template, words = task["classes"], task["template"], task["words"]
        train, rows = few_shot_split(name, "test.jsonl", classes, shots, test_limit)
        gold = gold_indices(rows, classes)
        preds, seconds = {}, {}
        t0 = time.perf_counter()
        preds["words zero-shot"] = zero_shot(lm, template, words, rows, classes, settings)
        preds["words zero-shot, calibrated"] = zero_shot(lm, template, words, rows, classes, settings, "content-free")
        seconds["words"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        seeds = build_verbalizer(words, classes)
        kpt = knowledgeable_verbalizer(lm, template, dict(zip(seeds.classes, seeds.words)), train, settings=settings)
        preds["KPT zero-shot (support-calibrated, labels unread)"] = zero_shot(
            lm, template, kpt.verbalizer, rows, classes, settings, "support", train)
        seconds["kpt"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="bench-pv-") as tmp:
            t0 = time.perf_counter()
            preds["ProtoVerb + words (trained)"], pv = trained(lm, template, words, train, rows, classes,
                                                              {"name": "protoverb"}, epochs, Path(tmp) / "pv")
            seconds["protoverb_train_and_eval"] = time.perf_counter() - t0
            preds["ProtoVerb alone (trained)"] = prototypes_alone(lm, Path(tmp) / "pv", rows, classes, settings)
            t0 = time.perf_counter()
            preds["words + soft head (trained, same rows/epochs)"], warp = trained(
                lm, template, words, train, rows, classes, {"name": "prompt-tuning", "num_tokens": 1, "head": "soft"},
                epochs, Path(tmp) / "warp")
            seconds["words_trained_train_and_eval"] = time.perf_counter() - t0
        results[name] = {"train_rows": len(train), "test_rows": len(rows), "template": template, "words": words,
                         "kpt_words": kpt.verbalizer["label_words"], "seconds": seconds,
                         "protoverb_steps": pv.steps, "words_trained_steps": warp.steps,
                         "table": table(gold, preds, len(classes), "words zero-shot")}
        print(name, json.dumps({r["system"]: round(r["accuracy"], 3) for r in results[name]["table"]}), flush=True)
    return results


def run_templates(lm: Any, settings: Any, search_rows: int, dev_limit: int, rephrasings: int) -> dict[str, Any]:
    from backend.data import load_examples

    classes, template, words = SST2["classes"], SST2["template"], SST2["words"]
    pool = load_examples(str(DATA / "sst2" / "train.jsonl"), label_names=classes).examples
    rng = np.random.default_rng(SEED)
    search = [pool[i] for i in sorted(rng.choice(len(pool), search_rows, replace=False))]
    dev_all = load_examples(str(DATA / "sst2" / "dev.jsonl"), label_names=classes).examples
    dev = dev_all[::max(1, len(dev_all) // dev_limit)][:dev_limit]
    t0 = time.perf_counter()
    res = search_templates(lm, template, words, search, classes, settings=settings, task=SST2["task"],
                           rephrasings=rephrasings, budget=5.0, keep=3, seed=SEED)
    search_s = time.perf_counter() - t0
    best = [p.content for p in res.best(3)]
    shown = [Prompt("yours", template)] + [Prompt(f"S{i + 1}", t) for i, t in enumerate(best)]
    final = [r for r in res.ranking if r["round"] == len(res.rounds)]
    cmp = compare_prompts(lm, shown, [Prompt("words", words)], dev, classes, settings=settings)
    return {"search_rows": len(search), "dev_rows": len(dev), "candidates": len(res.ranking),
            "forwards": res.forwards, "full_evaluations": res.full_evaluations,
            "one_each_forwards": len(res.ranking) * len(search), "search_seconds": search_s,
            "rounds": [vars(r) for r in res.rounds], "families": sorted({r["family"] for r in res.ranking}),
            "dropped": [vars(d) for d in res.dropped], "ranking_top10": res.ranking[:10], "last_round": final,
            "template": template, "best": best, "templates_scored": {p.name: p.content for p in shown},
            "uncalibrated": cmp.table(baseline=0), "calibrated": cmp.table(baseline=0, calibrated=True)}


def _ci(lo_hi: Any) -> str:
    return f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}"


def _vs(test: dict[str, Any] | None) -> str:
    """McNemar's cell: only this one right / only the baseline right, p."""
    return "—" if test is None else f"{test['only_a']} / {test['only_b']}, p={test['p_value']:.3g}"


def write_verbalizers(res: dict[str, Any]) -> None:
    (OUT / "verbalizers.json").write_text(json.dumps(res, indent=2))
    md = [f"# KPT and ProtoVerb vs hand-written label words ({res['model']}, {res['shots']} training rows per class, "
          f"seed {SEED}, {res['threads']} threads)", "",
          "All systems scored on the same test rows (no training row among them); 95% bootstrap intervals on "
          "shared resamples; McNemar's exact test against the hand-written words zero-shot (only it right / only "
          f"words right). ProtoVerb and the trained words: {res['epochs']} epochs, batch 16, no checkpoint chosen "
          f"on the test rows. Load average at start {res['load_average_start_end'][0]}, at end "
          f"{res['load_average_start_end'][1]}.", ""]
    for name, r in res["tasks"].items():
        md += [f"## {name} ({r['test_rows']} test rows, {r['train_rows']} training rows)", "",
               f"Template `{r['template']!r}`; words {r['words']}; KPT kept {sum(map(len, r['kpt_words'].values()))} "
               f"words. Seconds: {json.dumps({k: round(v, 1) for k, v in r['seconds'].items()})}.", "",
               "| system | accuracy (95% CI) | macro-F1 (95% CI) | vs words: only it / only words, p |",
               "|---|---|---|---|"]
        md += [f"| {row['system']} | {row['accuracy']:.3f} ({_ci(row['accuracy_ci'])}) | {row['macro_f1']:.3f} "
               f"({_ci(row['macro_f1_ci'])}) | {_vs(row['vs_words'])} |" for row in r["table"]]
        md.append("")
    (OUT / "verbalizers.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def write_templates(res: dict[str, Any]) -> None:
    t = res["sst2"]
    (OUT / "templatesearch.json").write_text(json.dumps(res, indent=2))
    md = [f"# Template search on SST-2 ({res['model']}, {res['threads']} threads)", "",
          f"{t['candidates']} candidates (families: {', '.join(t['families'])}; {len(t['dropped'])} dropped with "
          f"their reason) ranked by successive halving on {t['search_rows']} SST-2 training rows: "
          f"**{t['forwards']} row forwards = {t['full_evaluations']:.2f} full evaluations** (one evaluation each "
          f"would be {t['one_each_forwards']} forwards = {t['candidates']} evaluations; target for 50 candidates: "
          f"at most 5), {t['search_seconds']:.0f} s including the model writing its rephrasings. The user's "
          f"template and the best three were then scored on {t['dev_rows']} dev rows the search never saw. Load "
          f"average at start {res['load_average_start_end'][0]}, at end {res['load_average_start_end'][1]}.", "",
          "| rounds: candidates x rows (forwards) |", "|---|",
          "| " + " → ".join(f"{r['candidates']} x {r['rows']} ({r['forwards']})" for r in t["rounds"]) + " |", "",
          "Last round on the search rows (the user's template is always kept to it): "
          + "; ".join(f"{r['family']} {r['accuracy']:.3f}" for r in t["last_round"]) + ".", "",
          "| template | text | dev accuracy uncalibrated (95% CI) | calibrated (95% CI) | calibrated vs yours: "
          "only it / only yours, p |", "|---|---|---|---|---|"]
    md += [f"| {u['template']} | `{t['templates_scored'][u['template']]!r}` | {u['accuracy']:.3f} "
           f"({_ci(u['accuracy_ci'])}) | {c['accuracy']:.3f} ({_ci(c['accuracy_ci'])}) | {_vs(c['vs_baseline'])} |"
           for u, c in zip(t["uncalibrated"], t["calibrated"])]
    reasons: dict[str, int] = {}
    for d in t["dropped"]:
        key = d["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    md += ["", "Dropped candidates by reason: " + "; ".join(f"{k} ({v})" for k, v in reasons.items()) + "."]
    (OUT / "templatesearch.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "verbalizers", "templates"), default="all")
    ap.add_argument("--test-limit", type=int, default=200)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--search-rows", type=int, default=400)
    ap.add_argument("--dev-limit", type=int, default=400)
    ap.add_argument("--rephrasings", type=int, default=24)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 on a loaded machine")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm, settings, load0 = start()
    head = {"model": lm.model_id, "threads": torch.get_num_threads()}
    if args.part in ("all", "verbalizers"):
        tasks = run_verbalizers(lm, settings, args.shots, args.test_limit, args.epochs)
        write_verbalizers({**head, "shots": args.shots, "epochs": args.epochs, "tasks": tasks,
                           "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]]})
        load0 = [round(x, 2) for x in os.getloadavg()]
    if args.part in ("all", "templates"):
        sst2 = run_templates(lm, settings, args.search_rows, args.dev_limit, args.rephrasings)
        write_templates({**head, "sst2": sst2, "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]]})


if __name__ == "__main__":
    main()
