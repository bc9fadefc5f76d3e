"""``python -m backend train`` and ``predict`` end to end on a tiny model saved to disk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import backend_cli, loaded_torch
from tests.job_helpers import write_assets

ROOT = Path(__file__).resolve().parents[1]


_run = backend_cli


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, bert_tok) -> Path:
    root = write_assets(tmp_path_factory.mktemp("cli"), bert_tok, repeat=2)
    cfg = {"model": str(root / "model"), "template": "{text_a} {soft} It was {mask}.",
           "verbalizer": {"negative": ["bad"], "positive": ["good"]},
           "data": {"train": str(root / "data.jsonl"), "eval": str(root / "dev.jsonl")},
           "method": {"name": "lora", "r": 4}, "train": {"steps": 3, "batch_size": 4}}
    path = root / "run.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
def test_train_records_the_run_and_predict_serves_it(config_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'studio.db'}"
    proc = _run("train", str(config_file), "--db", db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded" and "final/accuracy" in out["metrics"]
    assert "3/3" in proc.stderr                      # the progress bar reached the end
    pred = _run("predict", "--run", str(out["run_id"]), "--text", "a lovely film", "--db", db)
    assert pred.returncode == 0, pred.stderr[-3000:]
    probs = json.loads(pred.stdout)[str(out["run_id"])][0]["probs"]
    assert set(probs) == {"negative", "positive"} and abs(sum(probs.values()) - 1) < 1e-5


@pytest.mark.slow
def test_train_seeds_records_each_seed_as_a_run_with_its_lineage(config_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'seeds.db'}"
    proc = _run("train", str(config_file), "--db", db, "--seeds", "13,21")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from storage import open_store

    with open_store(db) as store:
        runs = store.list_runs()
        assert len(runs) == 2 and all("sweep" in r.tags and r.status == "succeeded" for r in runs)
        assert sorted(r.seed for r in runs) == [13, 21]
        for r in runs:
            assert r.template_version_id and r.verbalizer_version_id and r.dataset_snapshot_id
            assert r.model_revision


@pytest.mark.slow
def test_train_seeds_reports_mean_and_std(config_file):
    proc = _run("train", str(config_file), "--no-db", "--seeds", "13,21")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["summary"]["seeds"] == [13, 21] and "std" in out["summary"]["accuracy"]


@pytest.mark.slow
def test_bad_method_option_is_a_clear_error(config_file, tmp_path):
    cfg = json.loads(config_file.read_text())
    cfg["method"] = {"name": "lora", "rank": 4}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    proc = _run("train", str(path), "--no-db")
    assert proc.returncode == 2
    assert "method.rank: unknown option" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_two_process_training_on_cpu(config_file, tmp_path):
    """``torchrun`` / ``accelerate launch`` with 2 CPU processes (gloo): ranks take alternate batches, chunk
    them differently (rows of different lengths, a small token budget) and still synchronise once per step;
    rank 0 alone writes the weights and prints the result."""
    cfg = json.loads(config_file.read_text())
    rows = [{"text_a": "this was a lovely film" + " really" * i, "label": "positive" if i % 2 else "negative"}
            for i in range(12)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg["data"] = {"train": str(tmp_path / "data.jsonl"), "dev_fraction": 0.25}   # 8 train / 4 dev rows
    cfg["train"] = {"steps": 4, "batch_size": 3, "micro_batch_tokens": 25, "eval_every": 2,
                    "output_dir": str(tmp_path / "out")}
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29531", "-m", "backend", "train", str(tmp_path / "run.json")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)                     # one result: rank 0's
    assert out["status"] == "succeeded" and out["steps"] == 4 and [h["step"] for h in out["history"]] == [2, 4]
    final = tmp_path / "out" / "final"
    assert (final / "adapter" / "adapter_model.safetensors").exists() and (final / "run.json").exists()


@pytest.mark.slow
def test_a_user_error_inside_a_recorded_run_exits_2_with_one_line(config_file, tmp_path):
    """The data is fine (checked before the run is recorded) but the method cannot apply: soft-prompt on a
    template without soft tokens fails in the run itself; the run is recorded failed and the exit is 2."""
    cfg = json.loads(config_file.read_text())
    cfg["template"] = "{text_a} It was {mask}."
    cfg["method"] = {"name": "soft-prompt"}
    (tmp_path / "dev.jsonl").write_text(json.dumps({"text_a": "a dull film", "label": "negative"}) + "\n"
                                        + json.dumps({"text_a": "a fine film", "label": "positive"}))
    cfg["data"]["eval"] = str(tmp_path / "dev.jsonl")
    path = tmp_path / "nosoft.json"
    path.write_text(json.dumps(cfg))
    proc = _run("train", str(path), "--db", f"sqlite:///{tmp_path / 'studio.db'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "this template has none" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_checks_output_dir_seeds_and_template_before_any_work(config_file, tmp_path, monkeypatch):
    """Mistakes in the config are said in a fraction of a second: before torch is imported (seconds) and
    before a run is recorded."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    cfg = json.loads(config_file.read_text())
    (tmp_path / "afile").write_text("")
    cfg["train"] = {"steps": 1, "output_dir": str(tmp_path / "afile" / "out")}
    path = tmp_path / "out.json"
    path.write_text(json.dumps(cfg))
    db = tmp_path / "studio.db"
    proc = _run("train", str(path), "--db", f"sqlite:///{db}")
    assert proc.returncode == 2 and "train.output_dir" in proc.stderr and "is a file" in proc.stderr
    assert "Traceback" not in proc.stderr and not db.exists() and not loaded_torch(proc.stderr)
    proc = _run("train", str(config_file), "--no-db", "--seeds", "13,-1")
    assert proc.returncode == 2 and "--seeds[1]: must be at least 0" in proc.stderr
    assert not loaded_torch(proc.stderr)
    cfg = dict(json.loads(config_file.read_text()), template='{"placehoder": "text_a"} {mask}')
    path.write_text(json.dumps(cfg))
    for command in ("train", "eval"):
        proc = _run(command, str(path), "--db", f"sqlite:///{db}")
        assert proc.returncode == 2 and "did you mean 'placeholder'" in proc.stderr, (command, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr and not db.exists() and not loaded_torch(proc.stderr), command
    proc = _run("eval", str(config_file), "--no-db", "--limit", "2")   # the check itself: torch is seen
    assert proc.returncode == 0 and loaded_torch(proc.stderr), proc.stderr[-2000:]
