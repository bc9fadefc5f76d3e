"""Training benchmarks on SmolLM2 (CPU): the SST-2 few-shot sweep and step time / memory against PEFT.

    python bench/bench_training.py sweep [--steps 40] [--methods prompt-tuning,p-tuning,prefix-tuning,lora]
    python bench/bench_training.py speed [--steps 12]
    python bench/bench_training.py rss            # peak RSS of soft-prompt training (own process)

Results go to bench/results/training_*.json and a short markdown. Speed figures are ratios against PEFT
measured in the same run (same model, batch, data and method), never absolute thresholds.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
RESULTS = ROOT / "bench" / "results"
TEMPLATE = "Review: {text_a} Sentiment (positive or negative):{mask}"
VERBALIZER = {"negative": ["negative"], "positive": ["positive"]}
SEEDS = (13, 21, 42, 87, 100)


def read_jsonl(path: Path):
    from backend.prompts.example import Example

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Example(guid=i, text_a=r["text_a"], label=r["label"]) for i, r in enumerate(rows)]


def k_shot(examples, k: int, seed: int):
    rng = random.Random(seed)
    by: dict[str, list] = {}
    for e in examples:
        by.setdefault(e.label, []).append(e)
    out = []
    for lab in sorted(by):
        out += rng.sample(by[lab], k)
    rng.shuffle(out)
    return out


def base_config(method: dict, steps: int, out: Path):
    from backend.config import RunConfig

    return RunConfig.from_dict({"model": "smollm2-135m-instruct", "data": {"train": "sst2", "eval": "sst2"},
                                "template": TEMPLATE, "verbalizer": VERBALIZER, "max_length": 128,
                                "method": method, "train": {"steps": steps, "batch_size": 8,
                                                            "output_dir": str(out)},
                                "eval": {"batch_size": 32}})


def cmd_sweep(args: argparse.Namespace) -> None:
    from backend.models import load_model
    from backend.training.run import RunData
    from backend.training.run import TrainResult
    from backend.training.sweep import run_seeds, summarize

    train_all = read_jsonl(SST2 / "train.jsonl")
    dev = read_jsonl(SST2 / "dev.jsonl")[: args.dev_limit or None]
    loaded = load_model("smollm2-135m-instruct", dtype="float32")
    out_path = RESULTS / "training_sst2.json"
    report = json.loads(out_path.read_text()) if out_path.exists() and args.append else {}
    report.setdefault("setting", {"model": "smollm2-135m-instruct", "template": TEMPLATE,
                                  "verbalizer": VERBALIZER, "shots_per_class": args.k, "seeds": list(SEEDS),
                                  "steps": args.steps, "batch_size": 8, "dev_examples": len(dev)})
    report.setdefault("methods", {})
    for name in args.methods.split(","):
        t0 = time.perf_counter()
        cfg = base_config({"name": name}, args.steps, Path(args.out) / name)
        runs = []
        for seed in SEEDS[:1] if name == "zero-shot" else SEEDS:   # one seed at a time: partial results survive
            res = run_seeds(cfg, [seed], loaded=loaded,
                            data_for_seed=lambda c: RunData(train=k_shot(train_all, args.k, c.data.seed), dev=dev))
            runs += res["runs"]
            summary = summarize([TrainResult(**r) for r in runs])
            summary["sweep_wall_s"] = time.perf_counter() - t0
            summary["params"] = runs[0]["params"]
            report["methods"][name] = summary
            out_path.write_text(json.dumps(report, indent=2))
            write_markdown(report)
            print(f"{name} seed {seed}: {runs[-1]['metrics']['accuracy']:.4f} ({runs[-1]['wall_s']:.0f}s)", flush=True)
    write_markdown(report)


def write_markdown(report: dict) -> None:
    lines = ["# SST-2 few-shot (SmolLM2-135M-Instruct, CPU)", "",
             f"Template `{report['setting']['template']}`, K = {report['setting']['shots_per_class']} per class, "
             f"seeds {report['setting']['seeds']}, {report['setting']['steps']} steps of batch 8, "
             f"{report['setting']['dev_examples']} dev examples.", "",
             "| method | accuracy mean ± std | per seed | trainable params | wall s (mean per seed) |",
             "|---|---|---|---|---|"]
    for name, s in report["methods"].items():
        acc = s["accuracy"]
        lines.append(f"| {name} | {acc['mean']:.4f} ± {acc['std']:.4f} | "
                     f"{', '.join(f'{v:.3f}' for v in acc['values'])} | {int(s['params']['trainable']):,} "
                     f"({s['params']['percent']:.3f}%) | {s['wall_s']['mean']:.0f} |")
    (RESULTS / "training_sst2.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep")
    sw.add_argument("--methods", default="zero-shot,prompt-tuning,p-tuning,prefix-tuning,lora")
    sw.add_argument("--steps", type=int, default=40)
    sw.add_argument("--k", type=int, default=16)
    sw.add_argument("--dev-limit", type=int, default=0)
    sw.add_argument("--out", default="/tmp/ps-bench-runs")
    sw.add_argument("--append", action="store_true")
    sw.set_defaults(func=cmd_sweep)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
