"""``python -m backend sweep SPEC.yaml`` end to end: a 2 methods x 2 seeds sweep on a tiny model saved to
disk, each trial a recorded run in its own process, the table on stdout and as CSV, and the records a
table is rebuilt from (tag, key, params, costs) in SQLite."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli_helpers import backend_cli
from tests.job_helpers import write_assets



def _run(*args: str) -> subprocess.CompletedProcess:
    return backend_cli(*args, timeout=900)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory, bert_tok) -> Path:
    root = write_assets(tmp_path_factory.mktemp("sweep"), bert_tok, repeat=2)
    base = {"model": str(root / "model"), "template": "{text_a} It was {mask}.",
            "verbalizer": {"negative": ["bad"], "positive": ["good"]},
            "data": {"train": str(root / "data.jsonl"), "eval": str(root / "dev.jsonl")},
            "method": {"name": "lora", "r": 2}, "train": {"steps": 2, "batch_size": 4, "eval_every": 1}}
    (root / "base.json").write_text(json.dumps(base))
    path = root / "sweep.yaml"
    path.write_text("name: two-by-two\nbase: base.json\n"
                    "grid:\n  method.name: [lora, bitfit]\n  method.r: [2]\n"
                    "seeds: [13, 21]\nearly_stop: {kind: asha, metric: accuracy, grace_steps: 1, reduction_factor: 2}\n")
    return path


@pytest.mark.slow
def test_cli_sweep_runs_a_two_by_two_grid_into_sqlite(spec_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    csv_path = tmp_path / "out" / "table.csv"
    proc = _run("sweep", str(spec_file), "--db", db, "--csv", str(csv_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["sweep"] == "two-by-two" and len(out["runs"]) == 4
    assert "sweep two-by-two: 4 runs (2 configurations x 2 seeds), ASHA early stopping" in proc.stderr
    keys = {row["key"] for row in out["table"]}
    assert keys == {"method=lora,method.r=2", "method=bitfit"}
    for row in out["table"]:
        # each seed either finished or was stopped early by ASHA (a clear reason, never a failure)
        assert row["finished"] + row["stopped"] == 2 and row["failed"] == 0
        assert len(row["reasons"]) == row["stopped"] and all(r.startswith("stopped early by ASHA")
                                                            for r in row["reasons"])
        assert row["trainable"] > 0 and row["seconds_per_step"] > 0 and row["peak_memory_mb"] > 0
    assert csv_path.read_text().startswith("rank,key,")
    from storage import open_store

    with open_store(db) as store:
        runs = store.list_runs(tag="sweep:two-by-two", limit=None)
        assert sorted(r.seed for r in runs) == [13, 13, 21, 21]
        assert {r.status for r in runs} <= {"succeeded", "cancelled"}
        for r in runs:
            sweep = r.config["sweep"]
            assert sweep["name"] == "two-by-two" and sweep["params"]["method.name"] == r.method
            assert r.config["data"]["seed"] == r.config["train"]["seed"] == r.seed
            if r.status == "cancelled":
                assert store.get_run(r.id).history[-1].note.startswith("stopped early by ASHA at step 1")
    again = _run("sweep", str(spec_file), "--db", db)
    assert again.returncode == 2 and "already has runs" in again.stderr


def test_cli_sweep_refuses_a_bad_spec_before_anything_runs(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("base: {template: '{text_a} {mask}', verbalizer: [[a], [b]], data: {eval: x.jsonl}}\n"
                    "grid: {train.lr: [0.001, -1]}\n")
    proc = _run("sweep", str(spec), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: sweep: grid.train.lr[1]: must be greater than 0, got -1.0"
    assert not (tmp_path / "x.db").exists()


def test_cli_sweep_queues_into_the_project_it_names(spec_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'projects.db'}"
    proc = _run("sweep", str(spec_file), "--db", db, "--queue-only", "--project", "cli-sweeps")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["queued"] == 4
    from storage import open_store

    with open_store(db) as store:
        runs = store.list_runs(tag="sweep:two-by-two", limit=None)
        assert len(runs) == 4 and {(r.project, r.config["project"], r.status) for r in runs} == \
            {("cli-sweeps", "cli-sweeps", "queued")}
        assert store.list_runs(project="demo", limit=None) == []
    bad = _run("sweep", str(spec_file), "--db", db, "--queue-only", "--project", "../x")
    assert bad.returncode == 2 and "--project" in bad.stderr and "Traceback" not in bad.stderr
