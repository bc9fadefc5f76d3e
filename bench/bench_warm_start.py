"""How soon a queued run trains: its process forked from the warm job server against a fresh interpreter.

    python bench/bench_warm_start.py [--rounds 3] [--steps 2]

Each round starts the same SmolLM2 LoRA run (the demo prompt and built-in reviews, ``--steps`` steps of
batch 4) both ways, in alternating order, through the product's own ``backend.jobs.runner.spawn``: cold
(``python -m backend.jobs.child``) and warm (``backend.jobs.warm``; the server is started, and has done its
one-time imports, before the first timed run, as for every run after a studio's first). Timed: from the
spawn to the run's first training loss in the store, and to its process's exit. Medians and warm / cold
ratios from the same run; writes bench/results/warm_start.json and .md.
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


def _config(steps: int, out: Path) -> dict:
    from backend.config import DEMO_CONFIG

    return dict(DEMO_CONFIG, name="warm-start bench", method={"name": "lora"},
                data=dict(DEMO_CONFIG["data"], shots=8),
                train={"steps": steps, "batch_size": 4, "output_dir": str(out), "eval_every": None,
                       "eval_limit": 8})


def _time_run(store, run_id: int, warm: bool, logs: Path) -> dict:
    from backend.jobs.runner import reap, spawn

    t0 = time.perf_counter()
    child = spawn(store, run_id, logs, warm=warm)
    first = None
    while child.poll() is None:
        if first is None and store.get_metrics(run_id, keys=["train/loss"]):
            first = time.perf_counter() - t0
        time.sleep(0.05)
    end = time.perf_counter() - t0
    reap(store, run_id, child.returncode)
    info = store.get_run(run_id)
    if info.status != "succeeded":
        raise SystemExit(f"run {run_id} ({'warm' if warm else 'cold'}) ended {info.status}: {info.error}")
    return {"first_loss_s": first if first is not None else end, "exit_s": end}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    args = p.parse_args()
    from backend.openmp import sleeping_waits

    sleeping_waits()    # as every entry point of ours, before anything imports torch
    from storage import open_store

    from backend.jobs import submit
    from backend.jobs.warm import WarmChild
    from bench.mfu import machine, machine_label

    tmp = Path(tempfile.mkdtemp(prefix="ps-warm-bench-"))
    store = open_store(f"sqlite:///{tmp / 'runs.db'}", tmp / "artifacts")
    logs = tmp / "logs"

    def one(warm: bool, i: int) -> dict:
        run_id = submit(store, _config(args.steps, tmp / f"run-{i}-{int(warm)}"))
        return _time_run(store, run_id, warm, logs)

    from backend.jobs.runner import spawn
    t0 = time.perf_counter()
    probe = spawn(store, submit(store, _config(args.steps, tmp / "warm-up")), logs, warm=True)
    if not isinstance(probe, WarmChild):
        raise SystemExit("no warm start on this machine (backend/jobs/warm.py: available)")
    probe.wait()
    server_first = time.perf_counter() - t0     # the first warm run: the server's imports, then the run
    load_start = [round(x, 2) for x in os.getloadavg()]
    arms: dict[str, list[dict]] = {"cold": [], "warm": []}
    for r in range(args.rounds):
        for arm in (("cold", "warm") if r % 2 == 0 else ("warm", "cold")):
            got = one(arm == "warm", r)
            arms[arm].append(got)
            print(arm, {k: round(v, 2) for k, v in got.items()}, flush=True)
    med = {arm: {k: statistics.median(x[k] for x in runs) for k in ("first_loss_s", "exit_s")}
           for arm, runs in arms.items()}
    report = {"setting": {"model": "smollm2-135m-instruct", "method": "lora", "steps": args.steps, "batch_size": 4,
                          "rounds": args.rounds, "machine": machine(), "load_average_start": load_start,
                          "load_average_end": [round(x, 2) for x in os.getloadavg()]},
              "median_s": med, "runs": arms, "first_warm_run_with_server_start_s": server_first,
              "ratios": {"first_loss_warm_over_cold": med["warm"]["first_loss_s"] / med["cold"]["first_loss_s"],
                         "exit_warm_over_cold": med["warm"]["exit_s"] / med["cold"]["exit_s"]}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "warm_start.json").write_text(json.dumps(report, indent=2))
    ratio = report["ratios"]
    lines = [
        "# A queued run's start: forked from the warm job server against a fresh interpreter",
        "",
        f"`python bench/bench_warm_start.py --rounds {args.rounds} --steps {args.steps}` on "
        f"{machine_label(report['setting']['machine'])}: SmolLM2-135M LoRA on the demo prompt, {args.steps} "
        f"steps of batch 4, started through `backend.jobs.runner.spawn` both ways in alternating order; median "
        f"seconds from the spawn. Load average at start {load_start}, at end "
        f"{report['setting']['load_average_end']}.",
        "",
        "| start | to the first training loss | to the process's exit |",
        "|---|---|---|",
        f"| cold (`python -m backend.jobs.child`) | {med['cold']['first_loss_s']:.2f} | {med['cold']['exit_s']:.2f} |",
        f"| warm (`backend/jobs/warm.py`) | {med['warm']['first_loss_s']:.2f} | {med['warm']['exit_s']:.2f} |",
        f"| warm / cold | {ratio['first_loss_warm_over_cold']:.2f} | {ratio['exit_warm_over_cold']:.2f} |",
        "",
        f"The first warm run of a process also starts the server (its imports, once): "
        f"{server_first:.1f} s to its exit here.",
    ]
    (RESULTS / "warm_start.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
