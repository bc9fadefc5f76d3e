"""Every run is recorded the same way, whoever starts it: the model actually loaded (id + revision, the
weights' hash), template and verbalizer versions, a dataset snapshot listing the exact train and eval rows,
its parent, and the code version. One test per entry point: studio evaluate / train / re-run / evaluate a
trained run, CLI eval / train, sweep, worker. Plus the trust follow-ups of the recording paths."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend.config import RunConfig
from backend.errors import DatasetError, StudioError
from backend.prompts.example import Example
from backend.services.testing import make_context, on_disk
from storage import open_store
from tests.cli_helpers import backend_cli
from tests.tiny import tiny_model

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "{text_a} It was {mask}."
WORDS = {"negative": ["bad"], "positive": ["good"]}
PAIRS = [("great fun", "positive"), ("awful mess", "negative"), ("lovely film", "positive"),
         ("boring junk", "negative")]


@pytest.fixture(scope="module")
def env(tmp_path_factory, bert_tok):
    """A tiny masked model on disk (so child processes and the CLI load the same weights), a studio whose
    data folder holds a train and a disjoint dev file, and a second database for CLI / worker / sweep."""
    from backend.services.jobs import JobRunner

    root = tmp_path_factory.mktemp("lineage")
    loaded = on_disk(tiny_model("masked", bert_tok), root / "model")
    ctx = make_context(root / "studio", loaded)
    ctx.jobs = JobRunner(ctx.store, project=ctx.project)   # never started: the test runs each queued run itself
    for name, n in (("train", 12), ("dev", 10)):
        rows = [{"text_a": f"this was a {w}, {name} {i}", "label": lab} for i, (w, lab) in
                enumerate((PAIRS * 4)[:n])]
        (ctx.data_dir / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cli = open_store(f"sqlite:///{root / 'cli.db'}")
    yield SimpleNamespace(root=root, loaded=loaded, ctx=ctx, cli=cli)
    cli.close()
    ctx.close()


def _config(env, method: str = "prompt-tuning", **extra) -> dict:
    data = env.ctx.data_dir
    cfg = {"model": env.loaded.spec, "name": "lineage", "template": TEMPLATE, "verbalizer": WORDS,
           "data": {"train": str(data / "train.jsonl"), "eval": str(data / "dev.jsonl")},
           "method": {"name": method}}
    if method != "zero-shot":
        cfg["method"]["num_tokens"] = 2
        cfg["train"] = {"steps": 2, "batch_size": 4, "eval_every": None}
    cfg.update(extra)
    return cfg


def _git_described() -> bool:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def _rows(ids: list) -> list:
    """A snapshot's row list back to one id per row ([first, last] runs of source row numbers)."""
    out: list = []
    for item in ids:
        out.extend(range(item[0], item[1] + 1) if isinstance(item, list) else [item])
    return out


def check_lineage(store, run_id: int, loaded, *, train: list[int], eval: list[int], parent: int | None = None):
    """The same lineage fields on every run, whatever started it."""
    run = store.get_run(run_id)
    assert run.status == "succeeded", run.error
    assert (run.model_id, run.model_revision) == (loaded.model_id, loaded.revision)   # what was loaded
    assert run.template_version_id is not None and run.verbalizer_version_id is not None
    assert store.get_version_by_id(run.template_version_id).content == TEMPLATE
    assert json.loads(store.get_version_by_id(run.verbalizer_version_id).content)["label_words"] == WORDS
    assert run.dataset_snapshot_id is not None
    snap = store.get_dataset_snapshot(run.dataset_snapshot_id)
    assert _rows(snap.row_counts["train_rows"]) == train and _rows(snap.row_counts["eval_rows"]) == eval
    assert (snap.row_counts["train"], snap.row_counts["eval"]) == (len(train), len(eval))
    assert run.parent_run_id == parent
    lineage = [a for a in store.list_artifacts(run_id) if a.kind == "lineage"]
    assert [a.name for a in lineage] == ["lineage.json"]
    doc = json.loads(store.read_artifact(lineage[0].sha256))
    assert doc["model_spec"] == loaded.spec and doc["model_revision"] == loaded.revision
    assert doc["dataset_snapshot_id"] == run.dataset_snapshot_id and doc["parent_run_id"] == parent
    assert doc["code_version"] and (doc["code_version"].startswith("git ") or not _git_described())
    assert (doc["device"], doc["dtype"], doc["autocast"]) == (str(loaded.device), _dtype(loaded), "no")
    return run


def _dtype(loaded) -> str:
    return str(loaded.dtype).removeprefix("torch.")


ALL_TRAIN, ALL_DEV = list(range(12)), list(range(10))


def test_studio_evaluate_records_the_full_lineage(env):
    from backend.services import evaluate

    res = evaluate.zero_shot(env.ctx, RunConfig.from_dict(_config(env, "zero-shot")))
    check_lineage(env.ctx.store, res["run_id"], env.loaded, train=[], eval=ALL_DEV)


def test_code_version_is_computed_once_and_never_fails(monkeypatch):
    from backend import recording

    recording.code_version.cache_clear()
    try:
        monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("git")))
        assert recording.code_version() in ("unknown",) or recording.code_version().startswith("prompt-studio")
        monkeypatch.undo()
        assert recording.code_version() == recording.code_version()   # cached: git not asked again
    finally:
        recording.code_version.cache_clear()


def test_code_version_is_the_checkout_imported_not_the_one_at_the_first_run(tmp_path):
    # a process that imported the code, then saw the checkout change (git pull, an edit), still runs what it
    # imported: its runs must say so
    script = ("from backend import recording\n"
              "recording.describe_code = lambda: 'git changed-since-import'\n"
              "print(recording.code_version())\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and out.stdout.strip() != "git changed-since-import"


def test_an_evaluation_loads_the_dtype_its_config_asks_for_and_records_it(env):
    from backend.pipeline import run_zero_shot

    cfg = RunConfig.from_dict(_config(env, "zero-shot", eval={"dtype": "bfloat16"}))
    result, run_id = run_zero_shot(cfg, store=env.cli)     # loads the model itself, in bf16
    doc = json.loads(env.cli.read_artifact([a for a in env.cli.list_artifacts(run_id) if a.kind == "lineage"][0].sha256))
    assert (doc["device"], doc["dtype"], doc["autocast"]) == ("cpu", "bfloat16", "no")
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


def test_bf16_asked_for_on_a_cpu_without_bf16_units_runs_and_says_it_is_slower(env, monkeypatch, caplog):
    from backend.models import device
    from backend.pipeline import load_for_eval

    cfg = RunConfig.from_dict(_config(env, "zero-shot", eval={"dtype": "bfloat16"}))
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    with caplog.at_level("INFO", logger="backend.pipeline"):
        assert str(load_for_eval(cfg).dtype) == "torch.bfloat16"
    assert "eval.dtype bfloat16: this CPU has no bf16 units: slower than float32" in caplog.text
    caplog.clear()
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    with caplog.at_level("INFO", logger="backend.pipeline"):
        load_for_eval(cfg)
    assert "no bf16 units" not in caplog.text


def test_an_evaluation_on_a_model_loaded_in_another_dtype_is_refused_not_mislabelled(env):
    from backend.errors import ConfigError
    from backend.pipeline import run_zero_shot
    from backend.services import evaluate

    before = len(env.cli.list_runs(limit=None))
    cfg = RunConfig.from_dict(_config(env, "zero-shot", eval={"dtype": "bfloat16"}))
    with pytest.raises(ConfigError, match="asks for bfloat16, but the loaded model is in float32") as err:
        run_zero_shot(cfg, loaded=env.loaded, store=env.cli)
    assert err.value.field == "eval.dtype" and len(env.cli.list_runs(limit=None)) == before
    shown = evaluate.zero_shot(env.ctx, cfg)           # the studio's model: a message, no run, no traceback
    assert "eval.dtype" in json.dumps(shown) and "bfloat16" in json.dumps(shown)


def test_half_precision_a_device_cannot_run_is_refused(env, monkeypatch):
    import torch

    from backend.errors import ConfigError
    from backend.models.device import eval_dtype
    from backend.training.run import mixed_precision

    assert eval_dtype("auto", torch.device("cpu")) == torch.float32
    assert eval_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="float16 on a CPU") as err:
        eval_dtype("float16", torch.device("cpu"))
    assert err.value.field == "eval.dtype"
    with pytest.raises(ConfigError) as bad:
        RunConfig.from_dict(_config(env, "zero-shot", eval={"dtype": "float8"}))
    assert "eval.dtype" in str(bad.value)
    from backend.models import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)   # an AVX2 laptop: said, not refused
    assert "slower than float32" in device.dtype_note(torch.bfloat16, cpu)
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    assert device.dtype_note(torch.bfloat16, cpu) == "" == device.dtype_note(torch.float32, cpu)
    train = RunConfig.from_dict(_config(env, eval={"dtype": "bfloat16"}))
    with pytest.raises(ConfigError, match="train.mixed_precision instead") as err:
        mixed_precision(train, torch.device("cpu"))    # training evaluates as it trains: one place says how
    assert err.value.field == "eval.dtype"


def test_a_queued_zero_shot_run_loads_the_dtype_it_asks_for(env):
    """Queued runs (re-run, sweep, worker) go through the training entry point: a zero-shot one trains
    nothing, so it loads as an evaluation does; handed a model in another dtype, it is refused."""
    from backend.errors import ConfigError
    from backend.jobs import submit
    from backend.jobs.child import execute
    from backend.training import RunData, run_training

    cfg = _config(env, "zero-shot", eval={"dtype": "bfloat16"})
    run_id = submit(env.cli, cfg)
    assert execute(env.cli, run_id) == "succeeded", env.cli.get_run(run_id).error
    doc = json.loads(env.cli.read_artifact([a for a in env.cli.list_artifacts(run_id) if a.kind == "lineage"][0].sha256))
    assert doc["dtype"] == "bfloat16"
    rows = [Example(guid=i, text_a=f"this was a {w}", label=lab) for i, (w, lab) in enumerate(PAIRS)]
    with pytest.raises(ConfigError, match="asks for bfloat16, but the loaded model is in float32"):
        run_training(RunConfig.from_dict(cfg), loaded=env.loaded, data=RunData(train=[], dev=rows))


def test_the_cli_dtype_flag_sets_eval_dtype_on_every_command_that_loads_its_model(env, tmp_path):
    from backend.cli import build_parser
    from backend.cli.eval import _config_from

    path = tmp_path / "zero.json"
    path.write_text(json.dumps(_config(env, "zero-shot")))
    parser = build_parser()
    for command in ("eval", "compare", "search-words", "kpt", "search-templates"):
        args = parser.parse_args([command, str(path), "--dtype", "bfloat16"])
        assert _config_from(args).eval.dtype == "bfloat16", command
    assert _config_from(parser.parse_args(["eval", str(path)])).eval.dtype == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", str(path), "--dtype", "float8"])


@pytest.mark.slow
def test_studio_train_rerun_and_evaluating_a_trained_run_record_the_full_lineage(env):
    from backend.jobs.child import execute
    from backend.services import evaluate, training

    store = env.ctx.store
    queued = training.submit(env.ctx, RunConfig.from_dict(_config(env)))["run_id"]
    assert store.get_run(queued).template_version_id is not None   # versions known while it waits
    assert execute(store, queued) == "succeeded"                    # what the job runner's child does
    check_lineage(store, queued, env.loaded, train=ALL_TRAIN, eval=ALL_DEV)

    # re-run with changes: the run whose config was opened is the new run's parent, queued or evaluated here
    rerun = training.submit_json(env.ctx, json.dumps(_config(env, train={"steps": 1, "batch_size": 4})),
                                 queued)["run_id"]
    assert execute(store, rerun) == "succeeded"
    check_lineage(store, rerun, env.loaded, train=ALL_TRAIN, eval=ALL_DEV, parent=queued)
    zero = training.submit_json(env.ctx, json.dumps(_config(env, "zero-shot")), rerun)["run_id"]
    check_lineage(store, zero, env.loaded, train=[], eval=ALL_DEV, parent=rerun)
    pasted = training.submit_json(env.ctx, json.dumps(_config(env, "zero-shot")))["run_id"]   # typed, not opened
    check_lineage(store, pasted, env.loaded, train=[], eval=ALL_DEV)

    scored = evaluate.trained_run(env.ctx, queued, limit=4)
    check_lineage(store, scored["run_id"], env.loaded, train=ALL_TRAIN, eval=[0, 1, 2, 3], parent=queued)


@pytest.mark.slow
def test_sweep_records_each_seed_as_a_run_with_the_full_lineage(env):
    import copy
    import dataclasses

    from backend.sweeps.seeds import run_seeds

    loaded = dataclasses.replace(env.loaded, model=copy.deepcopy(env.loaded.model))
    out = run_seeds(RunConfig.from_dict(_config(env)), [13, 21], loaded=loaded, store=env.cli)
    assert len(out["runs"]) == 2
    runs = env.cli.list_runs(tag="sweep")
    assert sorted(r.seed for r in runs) == [13, 21]
    for r in runs:
        check_lineage(env.cli, r.id, env.loaded, train=ALL_TRAIN, eval=ALL_DEV)


def _cli(env, *args: str) -> subprocess.CompletedProcess:
    return backend_cli(*args, "--db", env.cli.url, timeout=300)


@pytest.mark.slow
def test_cli_eval_and_train_record_the_full_lineage(env, tmp_path):
    before = {r.id for r in env.cli.list_runs(limit=None)}
    for method in ("zero-shot", "prompt-tuning"):
        path = tmp_path / f"{method}.json"
        path.write_text(json.dumps(_config(env, method)))
        done = _cli(env, "eval" if method == "zero-shot" else "train", str(path))
        assert done.returncode == 0, done.stderr[-2000:]
    new = [r for r in env.cli.list_runs(limit=None) if r.id not in before]
    assert sorted(r.method for r in new) == ["prompt-tuning", "zero-shot"]
    for r in new:
        check_lineage(env.cli, r.id, env.loaded, train=[] if r.method == "zero-shot" else ALL_TRAIN, eval=ALL_DEV)


@pytest.mark.slow
def test_a_worker_run_records_the_model_its_process_loaded(env, tmp_path):
    from backend.jobs import Worker, resume, submit

    run_id = submit(env.cli, _config(env))
    assert env.cli.get_run(run_id).model_revision is None   # not loaded yet: written when its process loads it
    Worker(env.cli, concurrency=1, log_dir=tmp_path / "logs").run(once=True, poll_s=0.2)
    check_lineage(env.cli, run_id, env.loaded, train=ALL_TRAIN, eval=ALL_DEV)
    # a continuation is recorded the same way, with the run it continues as parent
    failed = submit(env.cli, _config(env))
    env.cli.set_status(failed, "running")
    env.cli.set_status(failed, "failed", error="test")
    again = resume(env.cli, failed)
    Worker(env.cli, concurrency=1, log_dir=tmp_path / "logs").run(once=True, poll_s=0.2)
    check_lineage(env.cli, again, env.loaded, train=ALL_TRAIN, eval=ALL_DEV, parent=failed)


# -- trust follow-ups ----------------------------------------------------------------------------------------

def test_copy_as_command_hides_the_database_password(env):
    from backend.services import training

    ctx = SimpleNamespace(store=SimpleNamespace(url="postgresql://ps:s3cret@db.example/runs"))
    cmd = training.command(ctx, RunConfig.from_dict(_config(env)))
    assert "s3cret" not in cmd and "postgresql://ps:***@db.example/runs" in cmd


def test_the_child_gets_the_database_url_through_its_environment_not_argv(env, monkeypatch):
    from backend.jobs import runner

    seen = {}

    def fake_popen(cmd, **kwargs):
        seen.update(cmd=cmd, env=kwargs["env"])
        return SimpleNamespace()

    monkeypatch.setattr(runner.subprocess, "Popen", fake_popen)
    store = SimpleNamespace(url="postgresql://ps:s3cret@db.example/runs", artifacts=SimpleNamespace(root="/tmp/a"),
                            append_metrics=lambda *a: 0)
    runner.spawn(store, 7, warm=False)    # the cold path; the warm one: tests/test_jobs_warm.py
    assert not any("s3cret" in part for part in seen["cmd"])
    assert seen["env"][runner.DB_ENV] == store.url


def test_a_started_process_is_returned_even_when_how_it_started_cannot_be_recorded(monkeypatch):
    """Losing the handle of a started run process would leave it running unwatched; the start's record
    only prices later runs."""
    from backend.jobs import runner

    started = SimpleNamespace(pid=4242)
    monkeypatch.setattr(runner.subprocess, "Popen", lambda cmd, **kwargs: started)

    def broken(*args):
        raise OSError("database is locked")

    store = SimpleNamespace(url="sqlite:///x.db", artifacts=SimpleNamespace(root="/tmp/a"), append_metrics=broken)
    assert runner.spawn(store, 7, warm=False) is started


def test_the_child_reads_the_database_url_from_its_environment(env, monkeypatch):
    from backend.jobs import child, runner

    monkeypatch.setenv(runner.DB_ENV, env.cli.url)
    opened = {}
    monkeypatch.setattr("storage.open_store", lambda url, artifacts=None: opened.setdefault("url", url) and None)
    monkeypatch.setattr(child, "execute", lambda store, run_id, stop=None, claimed=False: "succeeded")
    assert child.main(["--run", "1"]) == 0 and opened["url"] == env.cli.url


def test_a_wrong_run_label_is_named_without_echoing_a_megabyte(env):
    from backend.services.runs import run_id_of

    with pytest.raises(StudioError) as err:
        run_id_of("x" * 1_000_000)
    assert len(err.value.message) < 300 and "not a run" in err.value.message


def test_training_refuses_dev_rows_that_are_training_rows_even_when_handed_in(bert_tok, tmp_path):
    from backend.prompts.example import Example
    from backend.training import RunData, run_training

    rows = [Example(guid=i, text_a=f"this was a {w}", label=lab) for i, (w, lab) in enumerate(PAIRS)]
    cfg = RunConfig.from_dict({"model": "tiny", "data": {"eval": "x"}, "template": TEMPLATE, "verbalizer": WORDS,
                               "method": {"name": "bitfit"}, "train": {"steps": 1, "output_dir": str(tmp_path)}})
    with pytest.raises(DatasetError, match="evaluation rows are also training rows"):
        run_training(cfg, loaded=tiny_model("masked", bert_tok), data=RunData(train=rows, dev=rows[:2]))


def test_an_unwritable_output_dir_is_refused_when_the_run_is_queued(env, tmp_path):
    from backend.errors import ConfigError
    from backend.jobs import submit

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    before = len(env.cli.list_runs(limit=None))
    cfg = _config(env)
    cfg["train"]["output_dir"] = str(blocker / "out")
    with pytest.raises(ConfigError, match="is a file"):
        submit(env.cli, cfg)
    assert len(env.cli.list_runs(limit=None)) == before


def test_opening_the_studio_fails_runs_whose_process_is_gone(tmp_path):
    from storage.models import Run

    folder = tmp_path / "studio"
    store = open_store(f"sqlite:///{folder / 'studio.db'}", artifacts_dir=folder / "artifacts")
    run_id = store.create_run({"model": "x"}, method="zero-shot", status="running")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with store.write() as s:
        s.get(Run, run_id).pid = proc.pid
    store.close()
    ctx = make_context(folder)
    try:
        run = ctx.store.get_run(run_id)
        assert run.status == "failed" and run.error.startswith("process gone")
    finally:
        ctx.close()
    assert os.path.exists(folder / "studio.db")
