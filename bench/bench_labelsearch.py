"""Automatic label words vs hand-written ones on AG News and TREC (SmolLM2, zero-shot scoring).

The search reads 16 training rows per class (seed 13) and nothing else; both verbalizers are then scored
on the same test rows in one comparison (one forward per template), uncalibrated and content-free
calibrated, with paired bootstrap intervals and McNemar's exact test (searched vs hand-written).
Test rows that repeat a search row (TREC's test set repeats some training questions) are left out.
Target: searched >= the best hand-written set on both, search <= 3 minutes on this CPU.

    .venv/bin/python bench/bench_labelsearch.py [--test-limit 500]
Writes bench/results/labelsearch.json and labelsearch.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.workbench.compare import Prompt, compare_prompts  # noqa: E402
from backend.workbench.labelsearch import search_label_words  # noqa: E402
from bench.fewshot_sets import few_shot_split, start  # noqa: E402
TASKS = {
    "agnews": {
        "classes": ["World", "Sports", "Business", "Sci/Tech"],
        "template": "Article: {text_a}\nTopic (world, sports, business or technology):{mask}",
        "hand": [{"World": ["world"], "Sports": ["sports"], "Business": ["business"], "Sci/Tech": ["technology"]},
                 {"World": ["World"], "Sports": ["Sports"], "Business": ["Business"], "Sci/Tech": ["Technology"]},
                 {"World": ["world", "politics"], "Sports": ["sports"], "Business": ["business", "economy"],
                  "Sci/Tech": ["technology", "science"]}],
    },
    "trec": {
        "classes": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
        "template": "Question: {text_a}\nAnswer type (abbreviation, description, entity, person, location "
                    "or number):{mask}",
        "hand": [{"ABBR": ["abbreviation"], "DESC": ["description"], "ENTY": ["entity"], "HUM": ["person"],
                  "LOC": ["location"], "NUM": ["number"]},
                 {"ABBR": ["Abbreviation"], "DESC": ["Description"], "ENTY": ["Entity"], "HUM": ["Person"],
                  "LOC": ["Location"], "NUM": ["Number"]},
                 {"ABBR": ["abbreviation"], "DESC": ["description", "definition"], "ENTY": ["thing", "entity"],
                  "HUM": ["person", "human"], "LOC": ["location", "place"], "NUM": ["number", "quantity"]}],
    },
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--test-limit", type=int, default=500)
    ap.add_argument("--shots", type=int, default=16)
    args = ap.parse_args()
    lm, settings, load0 = start()
    results = {}
    for name, task in TASKS.items():
        classes = task["classes"]
        train, test = few_shot_split(name, "test.jsonl", classes, args.shots, args.test_limit)
        t0 = time.perf_counter()
        found = search_label_words(lm, task["template"], train, classes, settings=settings)
        search_s = time.perf_counter() - t0
        verbs = [Prompt(f"hand-{i + 1}", h) for i, h in enumerate(task["hand"])] + [Prompt("searched", found.best)]
        cmp = compare_prompts(lm, [Prompt("t", task["template"])], verbs, test, classes, settings=settings)
        results[name] = {
            "train_rows": len(train), "test_rows": len(test), "search_seconds": search_s,
            "searched": found.best, "search_train_accuracy": found.train_accuracy,
            "candidates": found.candidates, "hand": task["hand"], "template": task["template"],
            "uncalibrated": cmp.table(baseline=len(verbs) - 1),
            "calibrated": cmp.table(baseline=len(verbs) - 1, calibrated=True)}
        print(name, json.dumps({k: results[name][k] for k in ("searched", "search_seconds")}), flush=True)
    res = {"model": lm.model_id, "threads": torch.get_num_threads(), "shots": args.shots, "seed": 13,
           "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]], "tasks": results}
    out = ROOT / "bench" / "results"
    (out / "labelsearch.json").write_text(json.dumps(res, indent=2))
    md = [f"# Automatic label words vs hand-written ({lm.model_id}, {args.shots} training rows per class, "
          f"seed 13, {res['threads']} threads)", "",
          "Searched on the training rows only; scored on the test rows in one comparison. "
          f"Load average at start {load0}, at end {res['load_average_start_end'][1]}.", ""]
    for name, r in results.items():
        md += [f"## {name} (test rows: {r['test_rows']}; search {r['search_seconds']:.1f} s, target <= 180 s)", "",
               f"Template `{r['template']!r}`. Searched words: {r['searched']}.", "",
               "| verbalizer | accuracy uncalibrated (95% CI) | accuracy calibrated (95% CI) | "
               "calibrated vs searched: only it / only searched right, p |", "|---|---|---|---|"]
        for u, c in zip(r["uncalibrated"], r["calibrated"]):
            vs = c["vs_baseline"]
            md.append(f"| {u['verbalizer']} | {u['accuracy']:.3f} ({u['accuracy_ci'][0]:.3f}-{u['accuracy_ci'][1]:.3f})"
                      f" | {c['accuracy']:.3f} ({c['accuracy_ci'][0]:.3f}-{c['accuracy_ci'][1]:.3f}) | "
                      + ("—" if vs is None else f"{vs['only_a']} / {vs['only_b']}, p={vs['p_value']:.3g}") + " |")
        md.append("")
    (out / "labelsearch.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
