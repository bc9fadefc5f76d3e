"""``--project`` on the command line: runs and their template / verbalizer versions are recorded in the named
project, ``python -m storage`` lists them apart, and a bad project name exits 2 with the reason."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.job_helpers import write_assets

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, bert_tok) -> Path:
    root = write_assets(tmp_path_factory.mktemp("projects-cli"), bert_tok, repeat=1)
    cfg = {"model": str(root / "model"), "template": "{text_a} It was {mask}.", "name": "prompt",
           "verbalizer": {"negative": ["bad"], "positive": ["good"]}, "data": {"eval": str(root / "dev.jsonl")}}
    path = root / "run.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
def test_two_projects_through_the_cli_never_mix(config_file, tmp_path):
    from storage import open_store

    db = f"sqlite:///{tmp_path / 'studio.db'}"
    ids = {}
    for project in ("alpha", "beta"):
        proc = _run("backend", "eval", str(config_file), "--db", db, "--project", project)
        assert proc.returncode == 0, proc.stderr[-2000:]
        ids[project] = json.loads(proc.stdout)["run_id"]
    listed = {}
    for project in ("alpha", "beta"):
        proc = _run("storage", "runs", "--db", db, "--project", project, "--json")
        assert proc.returncode == 0, proc.stderr
        listed[project] = [r["id"] for r in json.loads(proc.stdout)]
        assert {r["project"] for r in json.loads(proc.stdout)} == {project}
    assert listed == {"alpha": [ids["alpha"]], "beta": [ids["beta"]]}
    proc = _run("storage", "versions", "template", "prompt", "--db", db, "--project", "beta", "--json")
    assert proc.returncode == 0 and [v["project"] for v in json.loads(proc.stdout)] == ["beta"]
    proc = _run("storage", "projects", "--db", db, "--json")
    assert {p["name"]: p["runs"] for p in json.loads(proc.stdout)} == {"alpha": 1, "beta": 1}
    with open_store(db) as st:
        for project, rid in ids.items():
            run = st.get_run(rid)
            assert run.project == project and run.config["project"] == project
            assert st.get_version_by_id(run.template_version_id).project == project


def test_a_bad_project_name_exits_2_with_the_reason(config_file, tmp_path):
    proc = _run("backend", "eval", str(config_file), "--db", f"sqlite:///{tmp_path / 's.db'}",
                "--project", "../etc")
    assert proc.returncode == 2 and "'/' is not allowed" in proc.stderr and "Traceback" not in proc.stderr
    bad = json.loads(config_file.read_text())
    bad["project"] = "a\\b"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = _run("backend", "eval", str(tmp_path / "bad.json"), "--no-db")
    assert proc.returncode == 2 and "project:" in proc.stderr and "Traceback" not in proc.stderr
