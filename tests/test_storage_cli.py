"""``python -m storage``: runs, show, export, import, versions; JSON output; one-line errors (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import open_store

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPT_STUDIO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "storage", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def populated(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with open_store(url) as st:
        t = st.save_version("template", "sst2", 'It was {"mask"}.', message="first")
        st.save_version("template", "sst2", 'Really {"mask"}.', message="second")
        st.set_alias("template", "sst2", "prod", 1)
        rid = st.create_run({"lr": 0.01}, method="soft", template_version_id=t.id, status="running")
        st.append_metrics(rid, [{"key": "acc", "step": 1, "value": 0.5},
                                {"key": "acc", "step": 2, "value": 0.75},
                                {"key": "loss", "step": 2, "value": float("nan")}])
        st.attach_artifact(rid, "adapter", "w.bin", b"w" * 100)
        st.set_status(rid, "succeeded")
        st.create_run({"lr": 0.1}, method="zero-shot")
    return url, rid, tmp_path


def test_runs_json_lists_ids_status_method_and_final_metrics(populated):
    url, rid, home = populated
    res = cli("runs", "--json", "--db", url, home=home)
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)
    assert [(r["id"], r["status"], r["method"]) for r in runs] == \
           [(rid + 1, "queued", "zero-shot"), (rid, "succeeded", "soft")]
    assert runs[1]["metrics"] == {"acc": 0.75, "loss": None}  # strict JSON: NaN -> null
    text = cli("runs", "--db", url, "--method", "soft", home=home)
    assert "succeeded" in text.stdout and "acc=0.75" in text.stdout and "zero-shot" not in text.stdout


def test_show_prints_the_run(populated):
    url, rid, home = populated
    res = cli("show", str(rid), "--db", url, home=home)
    assert res.returncode == 0, res.stderr
    assert "template: sst2 v1" in res.stdout and "artifact: adapter/w.bin  100 bytes" in res.stdout
    detail = json.loads(cli("show", str(rid), "--json", "--db", url, home=home).stdout)
    assert [h["status"] for h in detail["history"]] == ["running", "succeeded"]


def test_versions_lists_numbers_messages_and_aliases(populated):
    url, _, home = populated
    res = cli("versions", "template", "sst2", "--db", url, home=home)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("v1") and "first [prod]" in lines[0] and "second" in lines[1]
    assert [v["number"] for v in json.loads(cli("versions", "template", "sst2", "--json", "--db", url,
                                                home=home).stdout)] == [1, 2]


def test_export_then_import_into_another_database(populated):
    url, rid, home = populated
    out = home / "bundle.zip"
    assert cli("export", str(rid), str(out), "--db", url, home=home).returncode == 0
    other = f"sqlite:///{home / 'other.db'}"
    res = cli("import", str(out), "--json", "--db", other, "--artifacts", str(home / "oa"), home=home)
    assert res.returncode == 0, res.stderr
    new_id = json.loads(res.stdout)["run_id"]
    shown = json.loads(cli("show", str(new_id), "--json", "--db", other, "--artifacts",
                           str(home / "oa"), home=home).stdout)
    assert shown["metrics"]["acc"] == 0.75 and shown["artifacts"][0]["name"] == "w.bin"


def test_default_db_is_the_studios(tmp_path):
    res = cli("runs", "--json", home=tmp_path)
    assert res.returncode == 0 and json.loads(res.stdout) == []
    assert (tmp_path / "studio.db").exists()


@pytest.mark.parametrize("args, message", [
    (["show", "42"], "error: no run with id 42"),
    (["versions", "template", "nope"], "error: no template named 'nope' in project 'demo'"),
    (["import", "missing.zip"], "error: bundle missing.zip does not exist"),
])
def test_errors_are_one_line_with_exit_status_2(populated, args, message):
    url, _, home = populated
    res = cli(*args, "--db", url, home=home)
    assert res.returncode == 2 and res.stderr.strip() == message and "Traceback" not in res.stderr


def test_bad_db_url_is_one_line(tmp_path):
    res = cli("runs", "--db", "nosuchdb://x", home=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "nosuchdb" in res.stderr


@pytest.mark.parametrize("url", ["postgresql+psycopg://ann:s3cr%40t@127.0.0.1:1/studio",
                                 "mysql://ann:s3cr%40t@127.0.0.1:1/studio",
                                 "postgresql+nosuchdriver://ann:s3cr%40t@127.0.0.1:1/studio"])
def test_database_passwords_never_appear_in_messages(tmp_path, url):
    res = cli("runs", "--db", url, home=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "s3cr" not in res.stderr and "ann:***@127.0.0.1" in res.stderr


def test_check_reports_a_corrupt_artifact_with_exit_1(populated):
    url, rid, home = populated
    ok = cli("check", "--db", url, home=home)
    assert ok.returncode == 0 and "2 runs, 1 artifact files: ok" in ok.stdout
    with open_store(url) as st:
        st.artifacts.path_for(st.list_artifacts(rid)[0].sha256).write_bytes(b"bitrot")
    bad = cli("check", "--db", url, home=home)
    assert bad.returncode == 1 and "PROBLEMS" in bad.stdout and "is corrupt" in bad.stdout
