"""A sweep's table from its stored runs: one row per configuration with mean ± std over the seeds
that finished, best first; and the same rows as CSV.

Why no std below two seeds, and why complete configurations rank first: one seed has no spread to
report (a "± 0.0000" would read as a very stable configuration), and a mean over the seeds that happened
to survive (the others failed or were stopped) is a lucky number, not the configuration's. A wrong number
shown confidently is worse than none.

Why from runs alone: the runs carry their configuration's ``key`` and ``params`` (``RunConfig.sweep``)
and their metrics, so the table is the same whoever ran them (studio, CLI, Ray), survives a restart, and
cannot disagree with the Runs tab. Pure: run records in (anything shaped like ``storage.RunInfo``),
rows out.
"""
from __future__ import annotations

import csv
import io
import statistics
from typing import Any, Iterable

from backend.sweeps.asha import early_stop_metric, stop_reason

ACTIVE = ("queued", "running")
# the per-run numbers a row shows besides the metric (what the Pareto plot puts on its x axis)
COSTS = {"trainable": "params/trainable", "seconds_per_step": "train/seconds_per_step",
         "peak_memory_mb": "train/peak_memory_mb"}


def sweep_of(run: Any) -> dict[str, Any]:
    return (getattr(run, "config", None) or {}).get("sweep") or {}


def rows(runs: Iterable[Any], metric: str | None = None) -> list[dict[str, Any]]:
    """One row per configuration key: counts by status, the final dev ``metric`` (default: the sweep's
    early-stopping metric, else accuracy) as mean ± std over the seeds that have a score (std None below
    two: one value has no spread), macro-F1, the highest of its seeds' LAST dev evaluations (``last_eval``,
    stopped runs included; the last, not the best: the run record keeps each key's latest value),
    costs, stop reasons, run ids.

    Order: the configurations whose every seed finished with a score first, by mean; then those still
    running or queued, by their mean so far; then those with a failed or stopped seed (they lost a rung,
    crashed or were stopped from the table: their mean is over the seeds that got through, and a run
    through Ray Tune, whose ASHA judges each seed alone, may have kept only its lucky seeds); then those
    with no score yet, by their last dev evaluation. So 0.95 from 1 of 5 seeds (4 failed) never outranks
    0.936 over all 5."""
    groups: dict[str, list[Any]] = {}
    for r in runs:
        key = sweep_of(r).get("key")
        if key is not None:
            groups.setdefault(key, []).append(r)
    out = [_row(key, sorted(rs, key=lambda r: r.id), metric) for key, rs in groups.items()]
    out.sort(key=lambda row: (row["mean"] is None, not row["complete"], row["stopped"] + row["failed"] > 0,
                              -(row["mean"] or 0.0), -(row["last_eval"] or 0.0), row["key"]))
    for rank, row in enumerate(out, 1):
        row["rank"] = rank
    return out


def score_text(row: dict[str, Any]) -> str:
    """``mean ± std`` of a row for people to read; one seed says so instead of a "± 0.0000" that would
    pass for a perfectly stable configuration."""
    if row["mean"] is None:
        return "-"
    if row["std"] is None:
        return f"{row['mean']:.4f} ± n/a (1 seed)"
    return f"{row['mean']:.4f} ± {row['std']:.4f}"


def latest_per_seed(runs: list[Any]) -> list[Any]:
    """One run per (configuration, seed): the newest. A resumed run (or a re-run of the same trial)
    stands for its seed, so a seed is never counted twice and a resumed seed is not also "stopped"."""
    latest: dict[tuple[Any, Any], Any] = {}
    for r in sorted(runs, key=lambda r: r.id):
        latest[(sweep_of(r).get("key"), r.seed)] = r
    return sorted(latest.values(), key=lambda r: r.id)


def _row(key: str, all_runs: list[Any], metric: str | None) -> dict[str, Any]:
    sweep = sweep_of(all_runs[0])
    metric = metric or early_stop_metric(sweep)
    runs = latest_per_seed(all_runs)
    by = {s: [r for r in runs if r.status == s] for s in ("queued", "running", "succeeded", "cancelled", "failed")}
    done = by["succeeded"]
    values = [r.metrics[f"final/{metric}"] for r in done if r.metrics.get(f"final/{metric}") is not None]
    f1 = [r.metrics["final/macro_f1"] for r in done if r.metrics.get("final/macro_f1") is not None]
    # each run's LAST dev evaluation (RunInfo.metrics keeps a key's value at its highest step), which after
    # early stopping is ``patience`` evaluations past its best: named "last", never "best"
    evals = [r.metrics[f"eval/{metric}"] for r in runs if r.metrics.get(f"eval/{metric}") is not None]
    costs = {name: _mean(r.metrics.get(k) for r in runs) for name, k in COSTS.items()}
    if costs["peak_memory_mb"] is not None:
        costs["peak_memory_mb"] = max(r.metrics[COSTS["peak_memory_mb"]] for r in runs
                                      if r.metrics.get(COSTS["peak_memory_mb"]) is not None)
    reasons = sorted({why for r in by["cancelled"] if (why := stop_reason(r.metrics, metric))})
    seeds = len(sweep.get("seeds") or []) or len(runs)
    # every seed scored, none failed, stopped or still to come: only then is the mean the configuration's
    complete = len(values) >= seeds and not any(by[s] for s in ("queued", "running", "cancelled", "failed"))
    return {"key": key, "params": sweep.get("params") or {}, "sweep": sweep.get("name"),
            "method": runs[0].method, "metric": metric,
            "seeds": seeds, "finished": len(done), "complete": complete,
            "running": len(by["running"]), "queued": len(by["queued"]), "stopped": len(by["cancelled"]),
            "failed": len(by["failed"]),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values, "macro_f1": statistics.fmean(f1) if f1 else None,
            "last_eval": max(evals) if evals else None, **costs, "reasons": reasons,
            "run_ids": [r.id for r in all_runs], "active": any(r.status in ACTIVE for r in all_runs),
            "config": runs[0].config}


def _mean(values: Iterable[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return statistics.fmean(xs) if xs else None


CSV_COLUMNS = ("rank", "key", "method", "metric", "mean", "std", "finished", "seeds", "stopped", "failed",
               "macro_f1", "last_eval", "trainable", "seconds_per_step", "peak_memory_mb", "run_ids", "reasons")


def to_csv(table: list[dict[str, Any]]) -> str:
    """The table as CSV: one line per configuration, its params as ``param:<key>`` columns."""
    params = list(dict.fromkeys(k for row in table for k in row["params"]))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*CSV_COLUMNS, *(f"param:{p}" for p in params)])
    for row in table:
        cells = [" ".join(map(str, row[c])) if c == "run_ids" else "; ".join(row[c]) if c == "reasons"
                 else _cell(row[c]) for c in CSV_COLUMNS]
        w.writerow([*cells, *(_cell(row["params"].get(p)) for p in params)])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        import json

        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
