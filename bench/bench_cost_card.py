"""How close the Train tab's cost card comes to the time the run then takes.

    python bench/bench_cost_card.py [--steps 40] [--methods prompt-tuning,lora,full]

For each method, on the demo prompt and built-in reviews (8 shots per class, a dev evaluation every 10
steps), in a fresh store with the studio's own services and job runner (SmolLM2 loaded in this process as
the studio loads it; runs in job children, as the studio starts them):

1. the card before any run of the method (one training batch timed now, an evaluation batch timed now);
2. that run, queued through the job runner;
3. the card again, now from that run's own step rate, and a second run with another seed.

Each estimate is set against the run's wall time (started -> finished, so model loading in the child and
saving count too) and its parts: the steps, the dev evaluations (during training and the final one), and
the rest (the weights written, the process's start and finish).
Writes bench/results/cost_card.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def _config(ctx, opening, method: str, steps: int, seed: int):
    from backend.services import data, runconfig

    return runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                           selection=dict(data.default_selection(), shots=8), method=method, options={},
                           train_split="train", train={"steps": steps, "batch_size": 8, "eval_every": 10,
                                                       "seed": seed})


def _run(ctx, cfg) -> dict:
    """Queue ``cfg``, wait for it, and split its wall time into steps, evaluations and the rest."""
    from backend.services import training

    run_id = training.submit(ctx, cfg)["run_id"]
    while (info := ctx.store.get_run(run_id)).status in ("queued", "running"):
        time.sleep(0.5)
    if info.status != "succeeded":
        raise SystemExit(f"run {run_id} ended {info.status}: {info.error}")
    evals = [m["value"] for m in ctx.store.get_metrics(run_id, keys=["eval/seconds", "final/seconds"])]
    m = info.metrics
    loop = m["train/elapsed_s"]
    # the loop's time off evaluations, as its Progress kept it: tokens over the steps' own rate
    steps = m["train/tokens_per_s"] * loop / m["train/step_tokens_per_s"]
    wall = info.finished_at - info.started_at
    return {"run_id": run_id, "wall_s": wall, "loop_s": m["train/loop_s"], "steps_s": steps,
            "eval_s": sum(evals), "rest_s": wall - steps - sum(evals), "loop_writes_s": m["train/saving_s"],
            "step_tokens_per_s": m["train/step_tokens_per_s"]}


def _card(ctx, cfg) -> dict:
    from backend.services import cost

    t0 = time.perf_counter()
    card = cost.plan(ctx, cfg)
    if "error" in card:
        raise SystemExit(f"cost card failed: {card['error']}")
    keep = ("estimated_s", "train_s", "eval_s", "evaluations", "eval_rows", "tokens_per_s", "speed_source",
            "writes", "saving_s", "start_s", "start_source")
    return dict({k: card[k] for k in keep}, card_wait_s=time.perf_counter() - t0,
                rest_s=card["saving_s"] + (card["start_s"] or 0.0))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--methods", default="prompt-tuning,lora,full")
    args = p.parse_args()
    from backend.openmp import sleeping_waits

    os.environ.update(sleeping_waits(dict(os.environ)))   # as launch.py sets it for the studio
    from backend.models import load_model
    from backend.services import project
    from backend.services.testing import make_context, with_jobs
    from bench.mfu import machine, machine_label

    loaded = load_model("smollm2-135m-instruct")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ps-bench-card-") as tmp:
        ctx = with_jobs(make_context(Path(tmp) / "studio", loaded))
        try:
            opening = project.bootstrap(ctx)
            for method in args.methods.split(","):
                for phase, seed in (("before any run of the method (one batch timed now)", 13),
                                    ("after one run (its step rate)", 21)):
                    cfg = _config(ctx, opening, method, args.steps, seed)
                    card = _card(ctx, cfg)
                    run = _run(ctx, cfg)
                    row = {"method": method, "phase": phase, "card": card, "run": run,
                           "estimate_over_wall": card["estimated_s"] / run["wall_s"],
                           "train_estimate_over_steps": card["train_s"] / run["steps_s"],
                           "eval_estimate_over_evals": card["eval_s"] / run["eval_s"],
                           "rest_estimate_over_rest": card["rest_s"] / run["rest_s"]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            ctx.close()
    report = {"setting": {"model": "smollm2-135m-instruct", "steps": args.steps, "batch_size": 8, "shots": 8,
                          "eval_every": 10, "machine": machine(), "cpus": os.cpu_count(),
                          "load_average_end": [round(x, 2) for x in os.getloadavg()]},
              "rows": rows,
              "median_estimate_over_wall": statistics.median(r["estimate_over_wall"] for r in rows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cost_card.json").write_text(json.dumps(report, indent=2))
    lines = [f"# Cost card against the run it priced ({report['setting']['model']}, CPU)", "",
             f"`python bench/bench_cost_card.py --steps {args.steps}` on {machine_label(report['setting']['machine'])}: "
             f"demo prompt and built-in reviews, 8 shots per class, batch 8, {args.steps} steps, a dev "
             "evaluation every 10 steps and the final one; the card from the studio's service "
             "(`backend.services.cost.plan`), each run through the studio's job runner (a job child). "
             "Wall: the run's started -> finished (the child's model load and saving included). Rest: the "
             "weights written (checkpoints, best and final weights, attaching them to the store) and the "
             "process's start and finish; the card prices the writes on this disk now and the start and "
             "finish from earlier runs of the model (none before the first run).", "",
             "| method | card from | estimated | run wall | estimate / wall | steps: estimated / taken | "
             "evaluations: estimated / taken | rest: estimated / taken | card took |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, run = r["card"], r["run"]
        lines.append(f"| {r['method']} | {r['phase']} | {c['estimated_s']:.1f} s | {run['wall_s']:.1f} s | "
                     f"**{r['estimate_over_wall']:.2f}** | {c['train_s']:.1f} / {run['steps_s']:.1f} s | "
                     f"{c['eval_s']:.1f} / {run['eval_s']:.1f} s | {c['rest_s']:.1f} / {run['rest_s']:.1f} s"
                     f"{'' if c['start_s'] is not None else ' (start not priced)'} | {c['card_wait_s']:.1f} s |")
    lines += ["", f"Median estimate / wall: **{report['median_estimate_over_wall']:.2f}**. Load average at the end "
              f"{report['setting']['load_average_end']}."]
    (RESULTS / "cost_card.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
