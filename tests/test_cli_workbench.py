"""``python -m backend compare | search-words | kpt | search-templates`` on a tiny model saved to disk (in
process)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from backend.cli import main
from tests.cli_helpers import backend_cli, loaded_torch
from tests.tiny import tiny_model


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, bert_tok) -> Path:
    root = tmp_path_factory.mktemp("wbcli")
    tiny_model("masked", bert_tok).model.save_pretrained(root / "model")
    bert_tok.save_pretrained(root / "model")
    words = [("great fun", "positive"), ("awful mess", "negative"), ("lovely film", "positive"),
             ("boring junk", "negative")]
    train = [{"text_a": f"this was a {w} {i}", "label": lab} for i, (w, lab) in enumerate(words * 2)]
    dev = [{"text_a": f"honestly a {w}, take {i}", "label": lab} for i, (w, lab) in enumerate(words * 3)]
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train))
    (root / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in dev))
    cfg = {"model": str(root / "model"), "template": "{text_a} It was {mask}.",
           "verbalizer": {"negative": ["bad"], "positive": ["good"]},
           "data": {"train": str(root / "train.jsonl"), "eval": str(root / "dev.jsonl")}}
    path = root / "run.json"
    path.write_text(json.dumps(cfg))
    return path


def test_compare_prints_one_row_per_combination_and_records_them_as_a_group(config_file, capsys, tmp_path):
    db = f"sqlite:///{tmp_path / 'cmp.db'}"
    rc = main(["compare", str(config_file), "--db", db, "--template", "{text_a} It was {mask}.", "--template",
               "Review: {text_a} {mask}", "--verbalizer", '{"negative": ["bad"], "positive": ["good"]}',
               "--verbalizer", '{"negative": ["awful", "bad"], "positive": ["great"]}', "--baseline", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 12 and out["forwards"] == 2
    for table in (out["uncalibrated"], out["calibrated"]):
        assert [(r["template"], r["verbalizer"]) for r in table] == [("t1", "v1"), ("t1", "v2"), ("t2", "v1"),
                                                                     ("t2", "v2")]
        assert table[1]["vs_baseline"] is None and table[0]["vs_baseline"]["p_value"] <= 1
    from storage import open_store

    rec = out["recorded"]
    with open_store(db) as store:
        runs = store.list_runs(tag=rec["group"])
        assert sorted(r.id for r in runs) == sorted(rec["run_ids"]) and len(runs) == 4
        for r in runs:
            assert r.status == "succeeded" and r.template_version_id and r.verbalizer_version_id
            assert r.dataset_snapshot_id and r.model_revision
            assert r.metrics["eval/accuracy"] == next(
                row["accuracy"] for row in out["uncalibrated"]
                if f"template:{row['template']}" in r.tags and f"verbalizer:{row['verbalizer']}" in r.tags)
            assert len(store.get_predictions(r.id)) == 12


def test_search_words_and_kpt_print_a_usable_verbalizer(config_file, capsys):
    assert main(["search-words", str(config_file), "--no-db", "--pool", "10", "--keep", "2"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["rows"] == 8 and set(found["best"]) == {"negative", "positive"} and found["recorded"] is None
    assert main(["kpt", str(config_file), "--neighbours", "5"]) == 0
    kpt = json.loads(capsys.readouterr().out)
    assert kpt["verbalizer"]["label_words"]["negative"][0] == "bad"


def test_mistakes_are_one_line_and_exit_2(config_file, capsys):
    assert main(["compare", str(config_file), "--no-db", "--verbalizer", "{not json"]) == 2
    assert "--verbalizer is not valid JSON" in capsys.readouterr().err
    assert main(["compare", str(config_file), "--no-db", "--baseline", "5"]) == 2
    assert "--baseline must be between 0 and 0" in capsys.readouterr().err
    assert main(["compare", str(config_file), "--no-db", "--verbalizer", "missing.txt"]) == 2
    assert "label-word file 'missing.txt' not found" in capsys.readouterr().err


def test_a_label_word_file_on_the_command_line_is_read_there(tmp_path):
    # the comparison's job scores (and records) the words; its label words are never a path to follow
    from backend.cli.workbench import _verbalizer_arg

    (tmp_path / "w.txt").write_text("bad, awful\ngood\n")
    assert _verbalizer_arg(str(tmp_path / "w.txt")) == [["bad", "awful"], ["good"]]


@pytest.mark.parametrize("command", ["compare", "search-words", "kpt", "search-templates"])
def test_a_config_mistake_is_said_before_torch_is_imported(config_file, tmp_path, monkeypatch, command):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(json.loads(config_file.read_text()), template="{text_a} {mask")))
    proc = backend_cli(command, str(bad), timeout=120)
    assert proc.returncode == 2 and "this '{' is never closed" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not loaded_torch(proc.stderr)


def test_search_templates_ranks_within_its_budget(config_file, capsys):
    assert main(["search-templates", str(config_file), "--no-db", "--task", "sentiment", "--budget", "20",
                 "--keep", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] is None and out["rows"] == 12 and out["forwards"] <= 20 * 12 and len(out["best"]) == 2
    assert out["best"][0]["template"] == next(r["text"] for r in out["ranking"] if r["family"] != "yours")
    assert any(r["family"] == "yours" for r in out["ranking"])
    # a masked model writes no rephrasings: said, not silently skipped
    assert any("no chat template" in d["reason"] for d in out["dropped"])
    assert main(["search-templates", str(config_file), "--no-db"]) == 2   # 5 evaluations of 12 rows are too few
    assert "use more dev rows or a larger budget" in capsys.readouterr().err
    assert main(["search-templates", str(config_file), "--no-db", "--budget", "nan"]) == 2
    assert "budget" in capsys.readouterr().err
    assert main(["search-templates", str(config_file), "--no-db", "--compare"]) == 2
    assert "--compare records the comparison of the winners as runs: drop --no-db" in capsys.readouterr().err


def _rows(store, run_id, split):
    """The row numbers of ``split`` a run's dataset snapshot names."""
    from backend.recording import expand_rows

    snap = store.get_dataset_snapshot(store.get_run(run_id).dataset_snapshot_id)
    return set(expand_rows(snap.row_counts[f"{split}_rows"]))


def test_search_templates_is_recorded_as_the_studios_job_and_compares_on_rows_it_did_not_rank_on(
        config_file, capsys, tmp_path):
    from storage import open_store

    db = f"sqlite:///{tmp_path / 'search.db'}"
    assert main(["search-templates", str(config_file), "--db", db, "--project", "cli-search", "--task", "sentiment",
                 "--budget", "50", "--keep", "2", "--compare", "--extra", "Honestly: {text_a} {mask}!"]) == 0
    out = json.loads(capsys.readouterr().out)
    search, compared = out["recorded"]["search"], out["recorded"]["comparison"]
    assert out["rows"] == 6 and out["held_out"] == 6 and len(out["best"]) == 2
    assert any(r["family"] == "extra" for r in out["ranking"])          # --extra reached the job's candidates
    with open_store(db) as store:
        job = store.get_run(search)
        assert (job.method, job.status, job.project) == ("template-search", "succeeded", "cli-search")
        assert job.dataset_snapshot_id and job.template_version_id and job.model_revision
        cmp = store.get_run(compared)
        assert (cmp.method, cmp.status, cmp.parent_run_id) == ("comparison", "succeeded", search)
        ranked, held = _rows(store, search, "eval"), _rows(store, compared, "eval")
        assert len(ranked) == len(held) == 6 and not ranked & held
    table = out["comparison"]["rows"]
    assert table[0]["template"] == "T1" and len(table) == 3 and out["comparison"]["n"] == 6
    assert "held out from the search" in out["note"]
    assert main(["search-templates", str(config_file), "--db", db, "--compare"]) == 2     # 5 evaluations of 6 rows
    err = capsys.readouterr().err
    failed = re.match(r"error: template search #(\d+) failed: 5 evaluations of 6 rows cannot rank", err)
    assert failed and err.endswith("use more dev rows or a larger budget\n")
    with open_store(db) as store:                           # recorded with its reason, as the studio's would be
        info = store.get_run(int(failed.group(1)))
        assert (info.method, info.status) == ("template-search", "failed") and "cannot rank" in info.error


def test_search_words_is_recorded_with_the_rows_it_read_and_the_words_it_found(config_file, capsys, tmp_path):
    from storage import open_store

    db = f"sqlite:///{tmp_path / 'words.db'}"
    assert main(["search-words", str(config_file), "--db", db, "--pool", "10", "--keep", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    with open_store(db) as store:
        job = store.get_run(out["recorded"]["search"])
        assert (job.method, job.status) == ("label-search", "succeeded")
        assert len(_rows(store, job.id, "train")) == 8 and not _rows(store, job.id, "eval")
        words = store.get_version_by_id(job.verbalizer_version_id)
        assert words.name == "searched" and all(f'"{w[0]}"' in words.content for w in out["best"].values())
    assert set(out["best"]) == {"negative", "positive"} and out["rows"] == 8


def test_a_job_another_worker_claimed_first_runs_there_once_and_the_cli_waits_for_its_result(tmp_path, monkeypatch):
    """The CLI queues its job, then claims it; a studio or worker on the same database may have claimed it
    in between: the job then runs there, once, and the CLI reads that result."""
    import threading

    from backend.cli import workbench as cli_workbench
    from backend.workbench import labelsearch_job
    from backend.workbench.labelsearch_job import JOB
    from storage import open_store

    monkeypatch.setattr(cli_workbench, "WAIT_S", 0.05)
    with open_store(f"sqlite:///{tmp_path / 'race.db'}") as store:
        job = store.create_run({"name": "x"}, method="label-search")
        store.set_status(job, "running")                 # the other worker's claim

        def worker() -> None:
            store.attach_artifact(job, "report", JOB.result, b'{"best": {"a": ["x"]}}')
            store.set_status(job, "succeeded")

        def never(*args, **kwargs):
            raise AssertionError("run twice")

        monkeypatch.setattr(labelsearch_job, "run_label_search_job", never)
        timer = threading.Timer(0.3, worker)
        timer.start()
        try:
            assert cli_workbench._run_job(store, JOB, job, loaded=None) == {"best": {"a": ["x"]}}
        finally:
            timer.join()
        queued = store.create_run({"name": "y"}, method="label-search")
        seen = []

        def here(store_, run_id, loaded):
            seen.append(store_.get_run(run_id).status)    # claimed by this process before it runs
            store_.set_status(run_id, "failed", error="no training rows")
            return "failed"

        monkeypatch.setattr(labelsearch_job, "run_label_search_job", here)
        with pytest.raises(cli_workbench.JobFailed, match=rf"label-word search #{queued} failed: no training rows"):
            cli_workbench._run_job(store, JOB, queued, loaded=None)
        assert seen == ["running"] and store.get_run(queued).pid == os.getpid()
