"""Template ensembles vs the best single template on SST-2, AG News, TREC and CB (SmolLM2, zero-shot).

Per dataset: five templates are scored on 16 training rows per class and on the evaluation rows in one
comparison each (content-free calibrated). The three best templates *by training accuracy* form the
ensembles (uniform mean probability, PET accuracy weights, a logistic regression fitted on the training
rows); the single template to beat is also the best by training accuracy, so nothing is chosen on the rows
it is scored on. The best single template *on the evaluation rows* (an oracle no user has) is reported
beside it. Target: an ensemble of the top 3 beats the best single template on at least 3 of the 4 sets.

    .venv/bin/python bench/bench_ensemble.py [--eval-limit 300]
Writes bench/results/ensemble.json and ensemble.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.workbench.compare import Prompt, compare_prompts  # noqa: E402
from backend.workbench.ensemble import KINDS, fit_ensemble  # noqa: E402
from bench.fewshot_sets import few_shot_split, start  # noqa: E402
TASKS = {
    "sst2": ("dev.jsonl", ["negative", "positive"], {"negative": ["negative"], "positive": ["positive"]}, [
        "Review: {text_a}\nSentiment (positive or negative):{mask}",
        "{text_a} Overall, the movie was{mask}",
        "Movie review: {text_a}\nQuestion: Is this review positive or negative?\nAnswer:{mask}",
        "<|im_start|>user\nIs this movie review positive or negative? Answer with one word.\n{text_a}<|im_end|>\n"
        "<|im_start|>assistant\n{mask}",
        "Text: {text_a}\nThe sentiment of the text is{mask}"]),
    "agnews": ("test.jsonl", ["World", "Sports", "Business", "Sci/Tech"],
               {"World": ["World"], "Sports": ["Sports"], "Business": ["Business"], "Sci/Tech": ["Technology"]}, [
        "Article: {text_a}\nTopic (world, sports, business or technology):{mask}",
        "{text_a}\nThis news article is about{mask}",
        "Category:{mask}\n{text_a}",
        "<|im_start|>user\nIs this news about World, Sports, Business or Technology? Answer with one word.\n"
        "{text_a}<|im_end|>\n<|im_start|>assistant\n{mask}",
        "News: {text_a}\nQuestion: What is the topic?\nAnswer:{mask}"]),
    "trec": ("test.jsonl", ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
             {"ABBR": ["abbreviation"], "DESC": ["description"], "ENTY": ["entity"], "HUM": ["person"],
              "LOC": ["location"], "NUM": ["number"]}, [
        "Question: {text_a}\nAnswer type (abbreviation, description, entity, person, location or number):{mask}",
        "{text_a} The answer is a{mask}",
        "Q: {text_a}\nThe question asks for a{mask}",
        "<|im_start|>user\nWhat kind of answer does this question want: abbreviation, description, entity, "
        "person, location or number?\n{text_a}<|im_end|>\n<|im_start|>assistant\n{mask}",
        "Question: {text_a}\nType:{mask}"]),
    "cb": ("dev.jsonl", ["contradiction", "entailment", "neutral"],
           {"contradiction": ["No"], "entailment": ["Yes"], "neutral": ["Maybe"]}, [
        "{text_a}\nQuestion: {text_b}? Yes, No or Maybe?\nAnswer:{mask}",
        "{text_a} Question: {text_b}? Answer:{mask}",
        "Premise: {text_a}\nHypothesis: {text_b}\nDoes the premise imply the hypothesis? Yes, No or Maybe:{mask}",
        "<|im_start|>user\n{text_a}\nIs it true that {text_b}? Answer Yes, No or Maybe.<|im_end|>\n"
        "<|im_start|>assistant\n{mask}",
        "\"{text_a}\" implies \"{text_b}\"?{mask}"]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-limit", type=int, default=300)
    ap.add_argument("--shots", type=int, default=16)
    args = ap.parse_args()
    lm, settings, load0 = start()
    results = {}
    for name, (eval_file, classes, words, templates) in TASKS.items():
        train, rows = few_shot_split(name, eval_file, classes, args.shots, args.eval_limit)
        prompts = [Prompt(f"T{i + 1}", t) for i, t in enumerate(templates)]
        verb = [Prompt("words", words)]
        on_train = compare_prompts(lm, prompts, verb, train, classes, settings=settings)
        on_eval = compare_prompts(lm, prompts, verb, rows, classes, settings=settings)
        tr_gold, ev_gold = np.asarray(on_train.gold), np.asarray(on_eval.gold)
        tr_acc = [float((s.calibrated.argmax(-1) == tr_gold).mean()) for s in on_train.scored]
        ev_acc = [float((s.calibrated.argmax(-1) == ev_gold).mean()) for s in on_eval.scored]
        top3 = sorted(range(len(prompts)), key=lambda i: -tr_acc[i])[:3]
        chosen = top3[0]
        ens = {}
        for kind in KINDS:
            e = fit_ensemble(kind, [prompts[i].name for i in top3], [on_train.scored[i].calibrated for i in top3],
                             tr_gold)
            ens[kind] = float((e.apply([on_eval.scored[i].calibrated for i in top3]).argmax(-1) == ev_gold).mean())
        results[name] = {"train_rows": len(train), "eval_rows": len(rows), "templates": templates,
                         "train_accuracy": tr_acc, "eval_accuracy": ev_acc, "top3_by_train": [i + 1 for i in top3],
                         "best_single_by_train": {"template": chosen + 1, "accuracy": ev_acc[chosen]},
                         "oracle_best_single": {"template": int(np.argmax(ev_acc)) + 1, "accuracy": max(ev_acc)},
                         "ensembles": ens, "beats_best_single": max(ens.values()) > ev_acc[chosen]}
        print(name, json.dumps({k: results[name][k] for k in ("best_single_by_train", "ensembles")}), flush=True)
    res = {"model": lm.model_id, "threads": torch.get_num_threads(), "shots": args.shots, "seed": 13,
           "calibration": "content-free", "load_average_start_end": [load0, [round(x, 2) for x in os.getloadavg()]],
           "tasks": results, "sets_won": sum(r["beats_best_single"] for r in results.values())}
    out = ROOT / "bench" / "results"
    (out / "ensemble.json").write_text(json.dumps(res, indent=2))
    md = [f"# Template ensembles vs the best single template ({lm.model_id}, zero-shot, content-free calibrated, "
          f"{args.shots} training rows per class for the weights, seed 13)", "",
          "Top 3 templates and the single template to beat are chosen by training accuracy; the oracle column is "
          f"the best single template on the evaluation rows, for reference. Load average at start {load0}, at "
          f"end {res['load_average_start_end'][1]}.", "",
          "| set | eval rows | best single (by train) | oracle single | uniform | PET accuracy-weighted | fitted (logistic) | ensemble wins |",
          "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        e = r["ensembles"]
        md.append(f"| {name} | {r['eval_rows']} | T{r['best_single_by_train']['template']} "
                  f"{r['best_single_by_train']['accuracy']:.3f} | T{r['oracle_best_single']['template']} "
                  f"{r['oracle_best_single']['accuracy']:.3f} | {e['uniform']:.3f} | {e['accuracy']:.3f} | "
                  f"{e['fitted']:.3f} | {'yes' if r['beats_best_single'] else 'no'} |")
    md += ["", f"An ensemble beats the best single template on **{res['sets_won']} of {len(results)}** sets "
           "(target: at least 3).", ""]
    for name, r in results.items():
        md.append(f"- {name}: " + "; ".join(f"T{i + 1} `{t!r}` train {a:.3f} / eval {b:.3f}" for i, (t, a, b) in
                                               enumerate(zip(r["templates"], r["train_accuracy"], r["eval_accuracy"]))))
    (out / "ensemble.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
