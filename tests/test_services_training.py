"""Training services: method catalogue and options, the cost card, the CLI command, and a real tiny run
through the job runner (child process) read back as progress, then served in the Playground."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from backend.services import cost, data, evaluate, playground, project, runconfig, runs, training
from backend.services.testing import make_context, on_disk, with_jobs


def test_catalogue_lists_every_trainable_method_with_typed_options():
    cat = {m["name"]: m for m in training.methods()}
    assert list(cat) == ["prompt-tuning", "soft-prompt", "p-tuning", "prefix-tuning", "lora", "adapter", "bitfit",
                         "ia3", "full", "protoverb"]          # the picker's order; zero-shot trains nothing
    lora = {o["key"]: o for o in cat["lora"]["options"]}
    assert lora["r"] == {"key": "r", "type": "int", "default": 8, "min": 1, "max": 4096, "label": "Rank",
                         "help": lora["r"]["help"], "advanced": False, "common": False}
    assert "raise it" in lora["r"]["help"]
    assert lora["alpha"]["gt"] == 0 and lora["dropout"]["lt"] == 1 and lora["dropout"]["advanced"] is True
    assert lora["target_modules"]["type"] == "list" and lora["target_modules"]["default"] is None
    assert lora["head"]["choices"] == ["words", "soft"] and lora["head"]["common"] is True
    assert cat["lora"]["default_lr"] == 5e-4 and cat["lora"]["label"].startswith("LoRA")
    assert cat["lora"]["kinds"] == ["masked", "causal", "seq2seq"] and cat["lora"]["description"]
    assert json.loads(json.dumps(list(cat.values()))) == list(cat.values())   # plain JSON, as the studio needs


def test_option_values_keep_only_changes_and_type_them():
    assert training.option_values("lora", {"r": 8, "alpha": 32.0, "target_modules": "q_proj, v_proj",
                                           "dropout": None}) == {"alpha": 32.0, "target_modules": ["q_proj", "v_proj"]}
    assert training.option_values("prompt-tuning", {"num_tokens": "4", "init_text": ""}) == {"num_tokens": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smol_tok):
    """A studio context whose base model is a tiny causal model saved on disk, with a job runner."""
    from tests.tiny import tiny_model

    folder = tmp_path_factory.mktemp("train")
    loaded = on_disk(tiny_model("causal", smol_tok), folder / "tiny")
    ctx = with_jobs(make_context(folder / "studio", loaded))
    opening = project.bootstrap(ctx)
    yield ctx, opening
    ctx.close()


def _cfg(ctx, opening, **train):
    return runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                           selection=dict(data.default_selection(), shots=4), method="prompt-tuning",
                           options={"num_tokens": 4}, train_split="train",
                           train={"steps": 4, "batch_size": 4, "eval_every": 2, **train})


def test_cost_card_and_command(trained):
    ctx, opening = trained
    cfg = _cfg(ctx, opening)
    plan = cost.plan(ctx, cfg)
    assert plan["trainable"] > 0 and 0 < plan["percent"] < 1
    assert plan["train_examples"] == 8 and plan["tokens_per_epoch"] > 0 and plan["estimated_s"] > 0
    cmd = training.command(ctx, cfg)
    body = cmd.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0]
    assert json.loads(body)["method"]["name"] == "prompt-tuning"
    assert cmd.endswith(f"python -m backend train run.json --db {ctx.store.url}")
    # the printed config is exactly what the CLI reads
    out = subprocess.run([sys.executable, "-c", "import json,sys; from backend.config import RunConfig; "
                          "print(RunConfig.from_dict(json.loads(sys.stdin.read())).method.name)"],
                         input=body, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "prompt-tuning"


def test_zero_shot_cannot_be_submitted_for_training(trained):
    ctx, opening = trained
    cfg = runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                          selection=data.default_selection())
    assert training.submit(ctx, cfg)["error"]["field"] == "method"


def test_a_run_queued_from_the_page_writes_under_the_studios_runs_folder(trained, tmp_path):
    ctx, opening = trained
    before = len(ctx.store.list_runs(limit=None))
    text = json.dumps(dict(_cfg(ctx, opening).to_dict(), train={"steps": 1, "output_dir": str(tmp_path / "x")}))
    res = training.submit_json(ctx, text)
    assert res["error"]["field"] == "train.output_dir" and "runs folder" in res["error"]["message"]
    assert len(ctx.store.list_runs(limit=None)) == before and not (tmp_path / "x").exists()


def _wait(ctx, run_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = training.progress(ctx, run_id)
        if p["done"]:
            return p
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish: {training.progress(ctx, run_id)}")


@pytest.mark.slow
def test_train_progress_queue_and_playground(trained):
    ctx, opening = trained
    res = training.submit(ctx, _cfg(ctx, opening))
    run_id = res["run_id"]
    assert any(r["id"] == run_id for r in training.queue(ctx)["runs"]) or training.progress(ctx, run_id)["done"]
    done = _wait(ctx, run_id)
    assert done["status"] == "succeeded", done.get("run_error")
    assert done["step"] == done["total_steps"] == 4 and done["fraction"] == 1.0
    assert len(done["curves"]["train/loss"]) == 4 and done["curves"]["eval/accuracy"]
    assert "accuracy" in done["final"] and any("succeeded" in line for line in done["log"])
    final = done["final"]     # the final score's 95% interval, recorded with the run and shown with it
    assert final["accuracy_ci_low"] <= final["accuracy"] <= final["accuracy_ci_high"]
    from studio.views.training import progress_html

    assert f"(95% CI {final['accuracy_ci_low']:.4f}-" in progress_html(done)
    assert training.latest_training_run(ctx) == run_id
    assert f"#{run_id} prompt-tuning demo (succeeded)" in playground.runs(ctx)
    out = playground.predict(ctx, "A wonderful film.", [run_id])
    probs = out["results"][0]["probs"]
    assert set(probs) == {"negative", "positive"} and sum(probs.values()) == pytest.approx(1, abs=1e-5)
    assert playground.predict(ctx, "", [run_id])["error"]["field"] == "text"
    assert playground.predict(ctx, "x", [])["error"]["field"] == "runs"
    # the run knows the template and label-word versions it was started with
    detail = runs.detail(ctx, run_id)
    assert detail["versions"]["template"]["content"] == opening["template"]
    assert '"positive"' in detail["versions"]["verbalizer"]["content"]
    assert any(a["name"] == "run.json" for a in detail["artifacts"])
    # evaluating the trained run on a sample records an evaluation run that drills down like any other
    scored = evaluate.trained_run(ctx, run_id, "dev", 10)
    assert scored["metrics"]["n"] == 10 and scored["run_id"] != run_id
    child = ctx.store.get_run(scored["run_id"])
    assert child.method == "evaluation" and child.parent_run_id == run_id
    lo, hi = scored["intervals"]["accuracy"]      # the interval shown is the one recorded with the run
    assert (child.metrics["eval/accuracy_ci_low"], child.metrics["eval/accuracy_ci_high"]) == (lo, hi)
    assert (child.model_id, child.model_revision) == (ctx.model.get().model_id, ctx.model.get().revision)
    g, p = scored["classes"][0], scored["classes"][0]
    assert evaluate.cell_examples(ctx, scored["run_id"], g, p)["count"] == scored["confusion"][0][0]
    assert all(f"#{scored['run_id']} " not in c for c in playground.runs(ctx))
    assert evaluate.trained_run(ctx, scored["run_id"])["error"]["field"] == "evaluate"
    # ...but never on the rows it trained on
    on_train = evaluate.trained_run(ctx, run_id, "train")
    assert "evaluation rows are also training rows" in on_train["error"]["message"]
    # ...nor when its training rows no longer read as recorded (a file edited since): nothing to check against
    from storage.models import DatasetSnapshot

    snap_id = ctx.store.get_run(run_id).dataset_snapshot_id
    with ctx.store.write() as s:
        snap = s.get(DatasetSnapshot, snap_id)
        kept = dict(snap.row_counts)
        snap.row_counts = dict(kept, train_rows=[[0, 3]])
    changed = evaluate.trained_run(ctx, run_id, "dev", 10)
    assert "reads differently now than when it trained" in changed["error"]["message"]
    with ctx.store.write() as s:
        s.get(DatasetSnapshot, snap_id).row_counts = kept
    # the run says which rows it used
    assert detail["data"].endswith("train 8 / dev 64 (separate splits, checked disjoint)")


@pytest.mark.slow
def test_cancel_then_resume(trained):
    ctx, opening = trained
    run_id = training.submit(ctx, _cfg(ctx, opening, steps=400))["run_id"]
    deadline = time.monotonic() + 120
    while training.progress(ctx, run_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    training.cancel(ctx, run_id)
    done = _wait(ctx, run_id)
    assert done["status"] == "cancelled"
    resumed = training.resume(ctx, run_id)
    assert resumed["run_id"] != run_id
    training.cancel(ctx, resumed["run_id"])
    assert _wait(ctx, resumed["run_id"])["status"] in ("cancelled", "succeeded")
    assert ctx.store.get_run(resumed["run_id"]).parent_run_id == run_id
    assert "no run with id" in training.resume(ctx, 9999)["error"]["message"]


def test_cost_card_adds_every_dev_evaluation_to_the_training_time(trained):
    ctx, opening = trained
    few = cost.plan(ctx, _cfg(ctx, opening, eval_every=4))       # 4 steps: evaluated once, then the final one
    many = cost.plan(ctx, _cfg(ctx, opening, eval_every=1))      # evaluated after each of the 4 steps
    dev_rows = many["dev_examples"]
    assert few["evaluations"] == 1 and few["eval_rows"] == 2 * dev_rows
    assert many["evaluations"] == 4 and many["eval_rows"] == 5 * dev_rows
    for card in (few, many):   # (a tiny model's evaluation takes milliseconds: its timings are noise)
        assert card["eval_s"] > 0 and card["saving_s"] > 0
        assert card["estimated_s"] == pytest.approx(card["train_s"] + card["eval_s"] + card["saving_s"]
                                                    + (card["start_s"] or 0.0))
    # 4 steps: a checkpoint at each evaluation (3 copies of the weights: them and AdamW's two moments), the
    # best weights at each evaluation at most, the final weights
    assert few["writes"] == 3 * 1 + 1 + 1 and many["writes"] == 3 * 4 + 4 + 1


def _run_record(run_id, *, wall, loop, final, trainable, model="m", cold=None, server_s=0.0, host=None):
    from types import SimpleNamespace

    from storage.runs import machine

    m = {"train/loop_s": loop, "final/seconds": final, "params/trainable": trainable, "train/saving_s": 0.1}
    if cold is not None:
        m["run/cold_start"], m["run/job_server_s"] = float(cold), server_s
    return SimpleNamespace(id=run_id, model_id=model, started_at=100.0, finished_at=100.0 + wall, metrics=m,
                           host=host or machine())


def test_start_and_finish_are_what_earlier_runs_spent_outside_their_loop_and_final_evaluation():
    from types import SimpleNamespace

    runs = [_run_record(9, wall=30.0, loop=20.0, final=4.0, trainable=1000),            # 6 s outside
            _run_record(8, wall=40.0, loop=20.0, final=4.0, trainable=1000),            # 16 s
            _run_record(7, wall=32.0, loop=20.0, final=4.0, trainable=250_000_000),     # a gigabyte written at the end
            _run_record(6, wall=99.0, loop=1.0, final=1.0, trainable=10, model="another model"),
            SimpleNamespace(id=5, model_id="m", started_at=1.0, finished_at=2.0, metrics={"eval/accuracy": 1.0},
                            host=None),
            # a worker elsewhere on the shared database (a GPU's seconds would price this machine's run)
            _run_record(4, wall=5.0, loop=4.0, final=0.5, trainable=10, host="gpu-node (0123abcd)")]
    ctx = SimpleNamespace(store=SimpleNamespace(list_runs=lambda **kw: runs))
    # run 7's final weights (1e9 bytes at 6e-9 s a byte: 6 s) are its method's, not the next run's
    seconds, source, alike = cost._start_finish(ctx, "m", final_per_byte=6e-9)
    assert seconds == pytest.approx(2.0, abs=1e-3) and source == "the shortest of runs #9, #8, #7 on this machine"
    assert not alike          # none of them says how it started (recorded before run/cold_start)
    assert cost._start_finish(ctx, "a third model", 6e-9) == (None, "", False)


def test_start_is_priced_from_runs_that_started_as_the_next_one_will():
    from types import SimpleNamespace

    runs = [_run_record(3, wall=26.0, loop=20.0, final=4.0, trainable=10, cold=False),   # 2 s: forked warm
            _run_record(2, wall=31.0, loop=20.0, final=4.0, trainable=10, cold=True),    # 7 s: imported torch
            _run_record(1, wall=30.0, loop=20.0, final=4.0, trainable=10, cold=True)]    # 6 s
    ctx = SimpleNamespace(store=SimpleNamespace(list_runs=lambda **kw: runs))
    warm = cost._start_finish(ctx, "m", 0.0, cold=False)
    cold = cost._start_finish(ctx, "m", 0.0, cold=True)
    assert warm == (pytest.approx(2.0), "the shortest of run #3 on this machine, which started warm as this one will", True)
    assert cold == (pytest.approx(6.0), "the shortest of runs #2, #1 on this machine, which started cold as this one will",
                    True)
    # the job server's first run: 9 s outside, 5.5 of them waiting for the server; a warm start takes 3.5
    first = SimpleNamespace(store=SimpleNamespace(list_runs=lambda **kw: [
        _run_record(1, wall=33.0, loop=20.0, final=4.0, trainable=10, cold=True, server_s=5.5)]))
    assert cost._start_finish(first, "m", 0.0, cold=False) == (
        pytest.approx(3.5), "the shortest of run #1 on this machine, which started warm as this one will", True)
    assert cost._start_finish(first, "m", 0.0, cold=True)[0] == pytest.approx(9.0)
    only_cold = SimpleNamespace(store=SimpleNamespace(list_runs=lambda **kw: runs[1:]))
    assert cost._start_finish(only_cold, "m", 0.0, cold=False)[1:] == (
        "the shortest of runs #2, #1 on this machine, which started cold; this one will start warm", False)


def test_writes_are_priced_at_the_rate_an_earlier_run_of_the_method_wrote(trained):
    ctx, opening = trained
    cfg = _cfg(ctx, opening)
    rid = training.submit(ctx, cfg)["run_id"]
    assert _wait(ctx, rid)["status"] == "succeeded"
    m = ctx.store.get_run(rid).metrics
    assert m["train/saved_bytes"] > 0 and m["train/saving_s"] > 0 and m["run/cold_start"] in (0.0, 1.0)
    card = cost.plan(ctx, cfg)
    assert card["saving_source"].startswith("at run #")
    rate, source = cost._write_rate(ctx, cfg, ctx.model.get().model_id)
    assert source == card["saving_source"] and rate > 0
    # the start and finish: an earlier run's time outside its loop and final evaluation
    assert card["start_s"] is not None and card["start_s"] >= 0 and "on this machine" in card["start_source"]


def test_write_timing_uses_the_runs_folder_and_leaves_nothing_there(trained, tmp_path):
    from backend.methods.build import build_tuned_model
    from backend.pipeline import build_verbalizer

    ctx, opening = trained
    loaded = ctx.model.get()
    verb = build_verbalizer(_cfg(ctx, opening).verbalizer, ["negative", "positive"], [])
    tuned = build_tuned_model(loaded.model, loaded.tokenizer, loaded.kind, _cfg(ctx, opening).template, verb,
                              "prompt-tuning", {"num_tokens": 4}, seed=0)
    root = tmp_path / "runs"
    write, attach = cost._measure_writes(tuned, root)
    assert 0 < write < 1e-6 and 0 < attach < 1e-6      # seconds a byte: a disk writes far above 1 MB/s
    assert list(root.iterdir()) == []
    # a folder the run could not write in either: named before the run starts (root ignores permissions,
    # so the folder's parent is a file here)
    (tmp_path / "a-file").write_text("x")
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.output_dir: the run's folder .*a-file/runs cannot be written"):
        cost._measure_writes(tuned, tmp_path / "a-file" / "runs")


def test_cost_card_says_what_it_leaves_out():
    from studio.views.training import cost_card

    card = {"trainable": 10, "total": 100, "percent": 10.0, "train_examples": 8, "dev_examples": 4,
            "tokens_per_epoch": 80, "steps": 4, "epochs": 2.0, "batch_size": 4, "lr": 0.1, "estimated_s": 12.0,
            "device": "cpu", "train_s": 5.0, "tokens_per_s": 64.0, "speed_source": "run #3 on this machine",
            "evaluations": 2, "eval_rows": 12, "eval_s": 3.0, "writes": 9, "saving_s": 0.01,
            "saving_source": "timed now on this disk", "start_s": None, "start_source": "", "starts_job_server": False}
    html = cost_card(card)
    assert "under a second (checkpoints, best and final weights: 9 writes of the trained weights at most; timed now on this disk)" in html
    assert "not priced yet (no earlier run of this model here" in html
    html = cost_card(dict(card, saving_s=14.0, saving_source="at run #3's rate", start_s=4.0,
                          start_source="the shortest of runs #3, #2 on this machine", starts_job_server=True))
    assert "14 s (checkpoints, best and final weights: 9 writes of the trained weights at most; at run #3&#x27;s rate)" in html
    assert "4 s (as the shortest of runs #3, #2 on this machine); this run also starts the studio&#x27;s job server" in html


def test_cost_card_times_a_training_pass_after_an_untimed_first_one(trained, monkeypatch):
    """The first pass of a fresh copy pays for buffers and kernel choice; timing it made one sweep
    configuration look 25% dearer than the same work at another learning rate."""
    from backend.prompt_model import PromptModel

    ctx, opening = trained
    monkeypatch.setattr(cost, "_throughput", lambda *a: (None, ""))   # the measuring path, not an earlier run's rate
    plain = cost.plan(ctx, _cfg(ctx, opening))["tokens_per_s"]
    forward, calls = PromptModel.forward, []

    def slow_first_training_pass(self, *args, **kwargs):
        import torch

        if torch.is_grad_enabled() and self.training and not calls:
            calls.append(1)
            time.sleep(1.0)           # a tiny model's pass takes milliseconds
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(PromptModel, "forward", slow_first_training_pass)
    card = cost.plan(ctx, _cfg(ctx, opening))
    assert calls and card["speed_source"] == "measured on one batch now"
    assert card["tokens_per_s"] > plain / 10    # the slow pass timed would make it ~100x lower


def test_a_run_trained_on_another_revision_of_the_base_is_neither_served_nor_scored(trained):
    """Same model name, other weights (a folder rewritten since): the run's weights were scored on a model
    they never learned on, and the evaluation recorded the new revision as if nothing had changed."""
    ctx, opening = trained
    rid = ctx.store.create_run(_cfg(ctx, opening).to_dict(), method="prompt-tuning", model_revision="0" * 64,
                               status="running", project=ctx.project)
    ctx.store.set_status(rid, "succeeded")
    for res in (playground.predict(ctx, "A wonderful film.", [rid]), evaluate.trained_run(ctx, rid)):
        assert "error" in res and "revision 000000000000" in res["error"]["message"], res
