"""Storage benchmark: metric-event append throughput with concurrent writer processes, and
version-save latency. Writes bench/results/storage.json and storage.md.

    python bench/bench_storage.py [--writers 4] [--events 5000] [--saves 300]

Targets (issue #4): >= 2,000 events/s in total with 4 writers on SQLite using batched commits, and
version-save p95 <= 20 ms. Each figure comes with a baseline measured in the same run on the same disk,
so the ratios stay meaningful on another machine: one commit per event for the throughput, and a bare
sqlite3 INSERT + COMMIT (same PRAGMAs) for the save latency.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import open_store  # noqa: E402
from storage.sink import StoreSink  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _writer(url: str, artifacts: str, run_id: int, events: int, flush_every: int,
            start: mp.Event) -> float:  # type: ignore[valid-type]
    st = open_store(url, artifacts)
    start.wait()
    t0 = time.perf_counter()
    with StoreSink(st, run_id, flush_every=flush_every, flush_interval_s=3600) as sink:
        for step in range(events):
            sink.emit("train/loss", 1.0 / (step + 1), step)
    elapsed = time.perf_counter() - t0
    st.close()
    return elapsed


def append_throughput(workdir: Path, writers: int, events: int, flush_every: int) -> dict:
    """Total events/s for ``writers`` processes each emitting ``events`` through a StoreSink."""
    url = f"sqlite:///{workdir / f'append-{flush_every}.db'}"
    st = open_store(url, workdir / "artifacts")
    runs = [st.create_run({}, method="bench", status="running") for _ in range(writers)]
    ctx = mp.get_context("spawn")
    start = ctx.Manager().Event()
    with ctx.Pool(writers) as pool:
        pending = pool.starmap_async(_writer, [(url, str(workdir / "artifacts"), r, events, flush_every,
                                                start) for r in runs])
        time.sleep(3.0)  # let every process import and open before the clock starts
        t0 = time.perf_counter()
        start.set()
        per_writer = pending.get(timeout=600)
        wall = time.perf_counter() - t0
    stored = sum(len(st.get_metrics(r)) for r in runs)
    st.close()
    total = writers * events
    assert stored == total, f"lost events: {stored} of {total}"
    return {"writers": writers, "events_per_writer": events, "flush_every": flush_every,
            "events_total": total, "events_stored": stored, "wall_s": round(wall, 3),
            "events_per_s": round(total / wall, 1),
            "slowest_writer_s": round(max(per_writer), 3)}


def _percentiles(samples_s: list[float]) -> dict:
    ms = sorted(x * 1000 for x in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50_ms": round(q[49], 3), "p95_ms": round(q[94], 3),
            "p99_ms": round(q[98], 3), "max_ms": round(ms[-1], 3)}


def version_save_latency(workdir: Path, saves: int) -> dict:
    st = open_store(f"sqlite:///{workdir / 'versions.db'}", workdir / "artifacts")
    body = '{"placeholder": "text_a"} In summary, it was {"mask"}. ' * 8
    for i in range(50):  # some history first: numbering and dedupe look at existing versions
        st.save_version("template", "warm", f"{body} {i}")
    new, same = [], []
    for i in range(saves):
        t0 = time.perf_counter()
        st.save_version("template", "sst2", f"{body}\nedit {i}", message=f"edit {i}", author="bench")
        new.append(time.perf_counter() - t0)
    for i in range(min(saves, 100)):
        t0 = time.perf_counter()
        st.save_version("template", "sst2", f"{body}\nedit {i}")  # identical: returns existing
        same.append(time.perf_counter() - t0)
    st.close()
    return {"new_version": _percentiles(new), "identical_content": _percentiles(same)}


def bare_sqlite_commit_latency(workdir: Path, n: int) -> dict:
    """Baseline: the cheapest durable write the same disk allows (one INSERT + COMMIT, WAL, NORMAL)."""
    conn = sqlite3.connect(workdir / "bare.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, content TEXT)")
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (content) VALUES (?)", (f"row {i}",))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return _percentiles(samples)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--events", type=int, default=5000, help="events per writer (batched run)")
    p.add_argument("--flush-every", type=int, default=50)
    p.add_argument("--saves", type=int, default=300)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        work = Path(tmp)
        batched = append_throughput(work, a.writers, a.events, a.flush_every)
        unbatched = append_throughput(work, a.writers, max(200, a.events // 10), 1)
        versions = version_save_latency(work, a.saves)
        bare = bare_sqlite_commit_latency(work, a.saves)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version, "platform": platform.platform(),
                    "load_avg_1min_before": round(load_before, 2)},
        "append": {"batched": batched, "one_commit_per_event": unbatched,
                   "speedup_vs_one_commit_per_event": round(batched["events_per_s"]
                                                            / unbatched["events_per_s"], 2),
                   "target_events_per_s": 2000, "meets_target": batched["events_per_s"] >= 2000},
        "version_save": {**versions, "bare_sqlite_insert_commit": bare,
                         "p95_ratio_vs_bare_commit": round(versions["new_version"]["p95_ms"]
                                                           / bare["p95_ms"], 2),
                         "target_p95_ms": 20,
                         "meets_target": versions["new_version"]["p95_ms"] <= 20},
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "storage.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / "storage.md").write_text(render(result))
    print(render(result))
    return 0


def render(r: dict) -> str:
    ap, vs, m = r["append"], r["version_save"], r["machine"]
    b, u = ap["batched"], ap["one_commit_per_event"]
    nv, same, bare = vs["new_version"], vs["identical_content"], vs["bare_sqlite_insert_commit"]
    return f"""# Storage benchmark

Machine: {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']} ({m['platform']});
1-minute load average before the run: {m['load_avg_1min_before']} (other work on the machine slows
every row alike, which is why each figure has a baseline from the same run).
Produced by `python bench/bench_storage.py`; raw numbers in `storage.json`.

## Metric-event append, {b['writers']} writer processes on one SQLite file

| mode | events | wall s | events/s (total) |
| --- | ---: | ---: | ---: |
| StoreSink, flush every {b['flush_every']} (one transaction per batch) | {b['events_total']} | {b['wall_s']} | **{b['events_per_s']}** |
| baseline: one commit per event | {u['events_total']} | {u['wall_s']} | {u['events_per_s']} |

Batched / one-commit-per-event: **{ap['speedup_vs_one_commit_per_event']}x**. Target >= 2,000 events/s:
{'met' if ap['meets_target'] else 'NOT met'}. Every event was read back (stored = emitted).

## Version save latency (single process, SQLite)

| operation | n | p50 ms | p95 ms | p99 ms | max ms |
| --- | ---: | ---: | ---: | ---: | ---: |
| save a new version | {nv['n']} | {nv['p50_ms']} | **{nv['p95_ms']}** | {nv['p99_ms']} | {nv['max_ms']} |
| save identical content (returns existing) | {same['n']} | {same['p50_ms']} | {same['p95_ms']} | {same['p99_ms']} | {same['max_ms']} |
| baseline: bare sqlite3 INSERT + COMMIT | {bare['n']} | {bare['p50_ms']} | {bare['p95_ms']} | {bare['p99_ms']} | {bare['max_ms']} |

p95 new version / p95 bare commit: **{vs['p95_ratio_vs_bare_commit']}x**. Target p95 <= 20 ms:
{'met' if vs['meets_target'] else 'NOT met'}.
"""


if __name__ == "__main__":
    sys.exit(main())
