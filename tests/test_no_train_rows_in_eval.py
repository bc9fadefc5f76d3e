"""Evaluation that cannot fool its user, through the studio: an uploaded file is split into train / dev
(stratified, seeded, shown), K-shot samples come from train only, every run says which rows it used, and
a run records the model it actually ran on (a config naming another model is refused)."""
from __future__ import annotations

import json
import os
import re

import pytest

from backend.services import cost, data, evaluate, project, runconfig, runs, training
from backend.services.testing import make_context

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _write_csv(path):
    lines = ["text,label"] + [f"review number {i} {'good' if i % 4 else 'bad'},{'positive' if i % 4 else 'negative'}"
                              for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def studio_ctx(tmp_path_factory, smol_tok):
    from tests.tiny import tiny_model

    folder = tmp_path_factory.mktemp("split")
    ctx = make_context(folder / "studio", tiny_model("causal", smol_tok))
    saved = data.save_upload(ctx, _write_csv(folder / "reviews.csv"))
    yield ctx, saved["source"], project.bootstrap(ctx)
    ctx.close()


def _selection(source, **extra):
    return {"source": source, "columns": {}, "split": None, "limit": None, "shots": None, "seed": 13,
            "dev_fraction": 0.2, **extra}


def _build(ctx, opening, sel, **kw):
    return runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"], selection=sel,
                           **kw)


def test_uploaded_file_is_split_and_k_shot_comes_from_train(studio_ctx):
    from backend.data.fingerprint import example_key

    ctx, source, _ = studio_ctx
    res = data.load(ctx, _selection(source))
    assert res["split"]["train"] == 32 and res["split"]["dev"] == 8
    assert "stratified by label, seed 13" in res["split"]["how"]
    dev = {example_key(e) for e in data.train_dev(ctx, _selection(source))[1]}
    shots = data.examples(ctx, _selection(source, shots=4))
    assert len(shots) == 8 and not {example_key(e) for e in shots} & dev


def test_a_training_run_on_an_upload_never_scores_its_training_rows(studio_ctx):
    from backend.data.fingerprint import example_key
    from backend.training.run import load_run_data

    ctx, source, opening = studio_ctx
    cfg = _build(ctx, opening, _selection(source, shots=4), method="prompt-tuning")
    assert cfg.data.dev_fraction == 0.2 and cfg.data.train == cfg.data.eval
    run_data = load_run_data(cfg)
    assert len(run_data.dev) == 8 and len(run_data.train) == 8
    assert not {example_key(e) for e in run_data.train} & {example_key(e) for e in run_data.dev}
    plan = cost.plan(ctx, cfg)
    assert plan["train_examples"] == 8 and plan["dev_examples"] == 8


def test_zero_shot_on_an_upload_scores_the_dev_part_and_the_run_says_so(studio_ctx):
    ctx, source, opening = studio_ctx
    res = evaluate.zero_shot(ctx, _build(ctx, opening, _selection(source)))
    assert res["metrics"]["n"] == 8
    detail = runs.detail(ctx, res["run_id"])
    assert detail["data"].startswith("8 evaluation rows: the dev part (0.2, seed 13) of ")
    snap = ctx.store.get_dataset_snapshot(ctx.store.get_run(res["run_id"]).dataset_snapshot_id)
    assert snap.row_counts["eval"] == 8 and snap.row_counts["split_train"] == 32
    # the confusion-matrix drill-down reads the same 8 rows back
    cell = evaluate.cell_examples(ctx, res["run_id"], res["classes"][0], res["classes"][0])
    assert cell["count"] == res["confusion"][0][0]


def test_rerun_naming_another_model_is_refused_and_nothing_is_recorded(studio_ctx):
    ctx, source, opening = studio_ctx
    cfg = _build(ctx, opening, _selection(source)).to_dict()
    before = len(ctx.store.list_runs())
    out = training.submit_json(ctx, json.dumps(dict(cfg, model="/etc")))
    assert out["error"]["field"] == "model" and "'/etc'" in out["error"]["message"]
    trained = dict(cfg, model="/etc", method={"name": "prompt-tuning"})
    assert training.submit(ctx, runconfig.RunConfig.from_dict(trained))["error"]["field"] in ("model", "train")
    typo = training.submit_json(ctx, json.dumps(dict(trained, model=cfg["model"], template="{text_a} {mask")))
    assert typo["error"]["field"] == "template" and "never closed" in typo["error"]["message"]   # not a failed run
    assert len(ctx.store.list_runs()) == before
    done = training.submit_json(ctx, json.dumps(cfg))        # the studio's own model: evaluated and recorded
    run = ctx.store.get_run(done["run_id"])
    loaded = ctx.model.get()
    assert run.config["model"] == loaded.spec and run.model_id == loaded.model_id
    assert run.model_revision == loaded.revision


@pytest.fixture(scope="module")
def client(tmp_path_factory, smol_tok):
    from tests.client_helpers import api_client

    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path_factory.mktemp("studio-split"), tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield api_client(demo.local_url)
    demo.close()
    ctx.close()


def test_data_tab_shows_the_split_and_the_cost_card_counts_it(client, tmp_path):
    from gradio_client import handle_file

    csv = _write_csv(tmp_path / "reviews.csv")
    out = client.predict("Upload", None, handle_file(str(csv)), "", None, 0, 0.2, api_name="/load_data")
    summary = re.sub(r"<[^>]+>", " ", next(o for o in out if isinstance(o, str) and "fingerprint" in o))
    assert "train 32 / dev 8" in summary and "stratified by label" in summary
    out = client.predict(0.1, api_name="/dev_split")
    assert any(isinstance(o, str) and "train 36 / dev 4" in o for o in out)
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/estimate_cost"]
    args = ["prompt-tuning"] + [p.get("parameter_default") for p in info["parameters"]][1:]
    labels = [p["label"] for p in info["parameters"]]
    args[labels.index("Steps")] = 2
    msg, cost = client.predict(*args, api_name="/estimate_cost")
    text = re.sub(r"<[^>]+>", " ", cost)
    assert re.search(r"training examples:\s+36\b", text) and re.search(r"dev examples:\s+4\b", text), msg + text
    tiny = tmp_path / "two.csv"
    tiny.write_text("text,label\ngood film,positive\nbad film,negative\n")
    out = client.predict("Upload", None, handle_file(str(tiny)), "", None, 0, 0.2, api_name="/load_data")
    assert "cannot split 2 rows" in out[0] and "Choose the columns" not in out[0]


def test_support_calibration_never_takes_its_priors_from_the_rows_it_scores(studio_ctx, monkeypatch):
    """``eval.calibration: support`` divides out class priors measured on the training rows: on one file read
    as both train and eval they are the scored rows themselves. Refused before the model is loaded, from
    the engine and from the studio's re-run JSON (as a message, nothing recorded); with a dev fraction the
    priors come from the train part and the run scores the dev part only."""
    from backend import pipeline
    from backend.data import load_examples
    from backend.data.fingerprint import input_key
    from backend.errors import DatasetError
    from backend.recording import expand_rows

    ctx, source, opening = studio_ctx
    cfg = _build(ctx, opening, _selection(source, dev_fraction=None)).to_dict()
    same = dict(cfg, data=dict(cfg["data"], train=source, eval=source), eval={"calibration": "support"})
    before = len(ctx.store.list_runs(limit=None))
    monkeypatch.setattr(pipeline, "load_for_eval", lambda cfg: pytest.fail("the model was loaded"))
    refused = r"^data: support calibration takes its priors from the training rows, but 40 of the 40 evaluation rows"
    with pytest.raises(DatasetError, match=refused):
        pipeline.run_zero_shot(runconfig.RunConfig.from_dict(same), store=ctx.store)
    out = training.submit_json(ctx, json.dumps(same))
    assert out["error"]["field"] == "data" and "40 of the 40 evaluation rows" in out["error"]["message"], out
    assert len(ctx.store.list_runs(limit=None)) == before
    split = dict(same, data=dict(same["data"], dev_fraction=0.2))
    done = training.submit_json(ctx, json.dumps(split))
    assert "error" not in done, done
    run = ctx.store.get_run(done["run_id"])
    snap = ctx.store.get_dataset_snapshot(run.dataset_snapshot_id)
    support, scored = expand_rows(snap.row_counts["train_rows"]), expand_rows(snap.row_counts["eval_rows"])
    assert (len(support), len(scored)) == (32, 8) and run.metrics["eval/n"] == 8
    by_guid = {ex.guid: input_key(ex) for ex in load_examples(source, columns=cfg["data"]["columns"]).examples}
    assert not {by_guid[g] for g in support} & {by_guid[g] for g in scored}
