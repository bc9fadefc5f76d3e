"""A training step on a CPU that something else also wants: OpenMP's default spinning waits against
sleeping ones (``OMP_WAIT_POLICY=PASSIVE``, what backend/openmp.py asks for in every process of ours).

    python bench/bench_contention.py [--steps 6] [--rounds 2] [--method lora]

Each arm is a fresh process (libgomp reads the policy once, when torch loads it) running our SmolLM2
training step (bench/bench_training.py's, batch 8 of SST-2 dev) with torch's default thread count, on a free
machine and with one busy-looping process beside it (one core's worth of other work: the studio's page, a
second program). Arms are interleaved over rounds so machine drift hits all alike; figures are medians of
the steps of each arm and ratios measured in the same run. Writes bench/results/contention.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
ARMS = (("free", "spinning"), ("free", "sleeping"), ("busy", "spinning"), ("busy", "sleeping"))


def child(method: str, steps: int) -> None:
    """Time ``steps`` training steps after a warm-up one; prints their seconds as JSON."""
    import torch

    from backend.cpu_memory import cpu_buffers, mode_for
    from backend.models import load_model
    from bench.bench_training import SPEED_METHODS, _our_step_fn, speed_batches

    loaded = load_model("smollm2-135m-instruct", dtype="float32")
    step = _our_step_fn(loaded, next(m for m in SPEED_METHODS if m["name"] == method), speed_batches())
    times = []
    with cpu_buffers(mode_for(loaded.model, "cpu")):
        step(0)
        for i in range(1, steps + 1):
            t = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "threads": torch.get_num_threads()}))


def run_arm(load: str, policy: str, method: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy == "sleeping":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
    try:
        out = subprocess.run([sys.executable, __file__, "child", "--method", method, "--steps", str(steps)],
                             capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=1800)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if out.returncode:
        raise SystemExit(f"arm {load}/{policy} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--method", default="lora")
    c.add_argument("--steps", type=int, default=6)
    p.add_argument("--method", default="lora")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    if args.cmd == "child":
        child(args.method, args.steps)
        return
    from bench.mfu import machine, machine_label

    times: dict[str, list[float]] = {f"{load}/{policy}": [] for load, policy in ARMS}
    threads = None
    load_start = [round(x, 2) for x in os.getloadavg()]
    for r in range(args.rounds):
        for load, policy in (ARMS if r % 2 == 0 else tuple(reversed(ARMS))):
            got = run_arm(load, policy, args.method, args.steps)
            times[f"{load}/{policy}"] += got["times"]
            threads = got["threads"]
            print(load, policy, [round(t, 2) for t in got["times"]], flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"setting": {"model": "smollm2-135m-instruct", "method": args.method, "batch_size": 8,
                          "steps_per_arm_per_round": args.steps, "rounds": args.rounds, "torch_threads": threads,
                          "machine": machine(), "load_average_start": load_start,
                          "load_average_end": [round(x, 2) for x in os.getloadavg()]},
              "median_s": med, "steps_s": times,
              "ratios": {"busy_over_free_spinning": med["busy/spinning"] / med["free/spinning"],
                         "busy_over_free_sleeping": med["busy/sleeping"] / med["free/sleeping"],
                         "sleeping_over_spinning_free": med["free/sleeping"] / med["free/spinning"],
                         "sleeping_over_spinning_busy": med["busy/sleeping"] / med["busy/spinning"]}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "contention.json").write_text(json.dumps(report, indent=2))
    r = report["ratios"]
    lines = [
        "# Training step with a busy core: OpenMP's spinning waits against sleeping ones",
        "",
        f"`python bench/bench_contention.py --steps {args.steps} --rounds {args.rounds}` on "
        f"{machine_label(report['setting']['machine'])}; SmolLM2-135M, {args.method}, batch 8 of SST-2 dev, "
        f"torch threads {threads}; each arm a fresh process, arms interleaved over rounds; median seconds "
        f"a step. Busy: one busy-looping process beside the step (one core's worth of other work). "
        f"Load average at start {load_start}, at end {report['setting']['load_average_end']}.",
        "",
        "| machine | OpenMP default (spinning waits) | OMP_WAIT_POLICY=PASSIVE (sleeping) | sleeping / spinning |",
        "|---|---|---|---|",
        f"| free | {med['free/spinning']:.2f} s | {med['free/sleeping']:.2f} s | {r['sleeping_over_spinning_free']:.2f}x |",
        f"| one core busy | {med['busy/spinning']:.2f} s | {med['busy/sleeping']:.2f} s | "
        f"{r['sleeping_over_spinning_busy']:.2f}x |",
        f"| busy / free | {r['busy_over_free_spinning']:.2f}x | {r['busy_over_free_sleeping']:.2f}x | |",
        "",
        "Why it matters: the studio's job child trains at a lower priority than the studio and the page that "
        "draws its curve, on the same cores; with spinning waits every op of a step waits on a thread that "
        "is not running. backend/openmp.py asks for sleeping waits in the CLI, launch.py and every job child "
        "(a value the user set wins).",
    ]
    (RESULTS / "contention.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
