"""Acceptance of issue #14: one sweep (methods x seeds on SST-2, 16 shots per class, SmolLM2-135M-Instruct)
run on this machine through the job queue (``backend.sweeps.local.run_sweep``: one child process per run)
and through a local Ray instance with Ray Tune (``backend.sweeps.ray_tune.run_sweep_ray``), each into its
own fresh store; the same seed must give the same dev accuracy whichever executor ran it.

    python bench/bench_sweep_ray.py [--methods prompt-tuning,lora,bitfit] [--seeds 13,21,42]
                                    [--steps 8] [--limit 200]

Each Ray trial asks for both CPUs (``resources.cpus: 2``): trials then run one at a time with two torch
threads, as the local runs do (Ray sets OMP_NUM_THREADS to a task's CPUs), so the two executors do the
same arithmetic. The stores are throwaway PostgreSQL databases when the server binaries are here (the
test suite's cluster, tests/storage_helpers.py), else SQLite files. Writes bench/results/sweep_ray.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_training import RESULTS, SST2, TEMPLATE, VERBALIZER  # noqa: E402 - the SST-2 few-shot setting


def spec_for(name: str, methods: list[str], seeds: list[int], steps: int, limit: int) -> dict[str, Any]:
    base = {"model": "smollm2-135m-instruct", "template": TEMPLATE, "verbalizer": VERBALIZER, "max_length": 128,
            "data": {"train": str(SST2 / "train.jsonl"), "eval": str(SST2 / "dev.jsonl"), "shots": 16,
                     "limit": limit},
            "train": {"steps": steps, "batch_size": 8}, "eval": {"batch_size": 32},
            "resources": {"cpus": 2}}
    return {"name": name, "base": base, "grid": {"method.name": methods}, "seeds": seeds}


def open_fresh_store(tmp: Path, label: str) -> tuple[Any, str]:
    """A new empty store: a database on a throwaway PostgreSQL server if one can start, else SQLite."""
    from storage import open_store
    from tests.storage_helpers import shared_cluster

    cluster = shared_cluster()
    if isinstance(cluster, str):
        return open_store(f"sqlite:///{tmp / label / 'runs.db'}", tmp / label / "artifacts"), "SQLite"
    return open_store(cluster.new_database(), tmp / label / "artifacts"), "PostgreSQL"


def per_run(store: Any, name: str) -> dict[str, dict[str, Any]]:
    """``key seed=N`` -> status and final dev accuracy of each run of sweep ``name``."""
    from backend.sweeps.local import sweep_runs

    out = {}
    for r in sweep_runs(store, name):
        out[f"{r.config['sweep']['key']} seed={r.seed}"] = {
            "run_id": r.id, "status": r.status, "accuracy": r.metrics.get("final/accuracy"),
            "wall_s": (r.finished_at - r.started_at) if r.finished_at and r.started_at else None,
            "error": (r.error or "").splitlines()[0][:200] if r.error else None}
    return out


def run_both(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from backend.jobs.ray_executor import connect
    from backend.sweeps.local import run_sweep
    from backend.sweeps.ray_tune import run_sweep_ray
    from backend.sweeps.spec import load_spec

    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    report: dict[str, Any] = {"setting": {"model": "smollm2-135m-instruct", "methods": methods, "seeds": seeds,
                                          "shots_per_class": 16, "steps": args.steps, "batch_size": 8,
                                          "dev_rows": args.limit, "template": TEMPLATE},
                              "load_before": [round(x, 2) for x in os.getloadavg()]}
    for label in ("local", "ray"):
        store, kind = open_fresh_store(tmp, label)
        spec = load_spec(spec_for(f"bench-{label}", methods, seeds, args.steps, args.limit))
        t0 = time.perf_counter()
        if label == "local":
            run_sweep(store, spec, concurrency=1, log_dir=tmp / "logs")
        else:
            t_ray = time.perf_counter()
            connect(None, num_cpus=2)
            report["ray_start_s"] = round(time.perf_counter() - t_ray, 1)
            run_sweep_ray(store, spec)
        report[label] = {"store": kind, "wall_s": round(time.perf_counter() - t0, 1),
                         "runs": per_run(store, spec.name), "load_after": [round(x, 2) for x in os.getloadavg()]}
        store.close()
        print(f"{label}: {report[label]['wall_s']} s", file=sys.stderr, flush=True)
    return compare(report)


def compare(report: dict[str, Any]) -> dict[str, Any]:
    """``same`` per run: both executors finished it with the same accuracy (a run that failed on both, for
    the same user error, is reported as failed, not as a match); ``all_same`` over every run."""
    keys = sorted(set(report["local"]["runs"]) | set(report["ray"]["runs"]))
    local, ray = report["local"]["runs"], report["ray"]["runs"]
    report["same"] = {k: local.get(k, {}).get("accuracy") is not None
                      and local[k]["accuracy"] == ray.get(k, {}).get("accuracy") for k in keys}
    report["failed_on_both"] = [k for k in keys if local.get(k, {}).get("status") == "failed"
                                and ray.get(k, {}).get("status") == "failed"]
    report["all_same"] = any(report["same"].values()) and all(
        same or k in report["failed_on_both"] for k, same in report["same"].items())
    return report


def write_markdown(report: dict[str, Any]) -> str:
    s = report["setting"]
    lines = ["# One sweep, two executors: local job queue vs Ray Tune on a local Ray instance", "",
             f"SST-2, {s['shots_per_class']} training rows per class (seeded by the run's seed), "
             f"{s['dev_rows']} dev rows, {s['model']}, {s['steps']} steps of batch {s['batch_size']}, "
             f"template `{s['template']}`; methods {', '.join(s['methods'])} x seeds {s['seeds']} "
             f"(`python bench/bench_sweep_ray.py`). Local: `backend.sweeps.local.run_sweep` (one child "
             "process per run, one at a time). Ray: `backend.sweeps.ray_tune.run_sweep_ray` on "
             "`ray.init(num_cpus=2)`, each trial asking for both CPUs. Stores: "
             f"{report['local']['store']} (local) and {report['ray']['store']} (Ray), each a fresh database. "
             f"Load average before: {report['load_before']}.", "",
             "| run | local accuracy | Ray accuracy | same | local s | Ray s |", "|---|---|---|---|---|---|"]
    for key, same in report["same"].items():
        a, b = report["local"]["runs"].get(key, {}), report["ray"]["runs"].get(key, {})
        verdict = "yes" if same else ("failed on both" if key in report["failed_on_both"] else "**no**")
        lines.append(f"| {key} | {_acc(a)} | {_acc(b)} | {verdict} | {_s(a)} | {_s(b)} |")
    lines += ["", f"**Same accuracy for every run that finished: {'yes' if report['all_same'] else 'NO'}** "
              f"({sum(report['same'].values())} of {len(report['same'])} runs finished with the same accuracy on "
              f"both; {len(report['failed_on_both'])} failed on both, with the same error).", "",
              f"Whole sweep wall time: local {report['local']['wall_s']} s, Ray {report['ray']['wall_s']} s "
              f"(plus {report.get('ray_start_s', '?')} s to start the Ray instance). Load average after: local "
              f"{report['local']['load_after']}, Ray {report['ray']['load_after']}. Per-run seconds are the "
              "runs' own started -> finished times from their records (model loading and the dev evaluation "
              "included); the Ray trials reuse their worker process, so only the first pays torch's import."]
    if report.get("note"):
        lines += ["", f"Note: {report['note']}"]
    return "\n".join(lines) + "\n"


def _acc(run: dict[str, Any]) -> str:
    if not run:
        return "missing"
    return f"{run['accuracy']:.4f}" if run.get("accuracy") is not None else f"{run['status']}: {run.get('error')}"


def _s(run: dict[str, Any]) -> str:
    return f"{run['wall_s']:.0f}" if run and run.get("wall_s") else "-"


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/bench_sweep_ray.py")
    ap.add_argument("--methods", default="prompt-tuning,lora,ia3")   # bitfit: SmolLM2 has no biases
    ap.add_argument("--seeds", default="13,21,42")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--limit", type=int, default=200, help="dev rows scored")
    ap.add_argument("--out", default=str(RESULTS / "sweep_ray"), help="writes OUT.json and OUT.md")
    ap.add_argument("--render", metavar="JSON", help="only rewrite OUT.md from a saved OUT.json")
    ap.add_argument("--note", help="a line on the conditions, kept in the results")
    args = ap.parse_args()
    if args.render:
        report = compare(json.loads(Path(args.render).read_text()))
        report["note"] = args.note or report.get("note")
        Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
        Path(args.out + ".md").write_text(write_markdown(report))
        return 0 if report["all_same"] else 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # atexit then stops the throwaway database server
    if not SST2.exists():
        sys.exit("../shared/datasets/sst2 is absent")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-ray-") as tmp:
        report = run_both(args, Path(tmp))
    report["note"] = args.note
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    Path(args.out + ".md").write_text(write_markdown(report))
    print(write_markdown(report))
    return 0 if report["all_same"] else 1


if __name__ == "__main__":
    sys.exit(main())
