"""Evaluate and Runs services: a recorded zero-shot run, its drill-down, comparison, bundles."""
from __future__ import annotations

import pytest

from backend.services import data, evaluate, project, runconfig, runs
from backend.services.testing import make_context


@pytest.fixture
def ctx(tmp_path, smol_tok):
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    return ctx


def _cfg(ctx, template="{text_a} It was {mask}", calibrate=False, limit=None):
    return runconfig.build(ctx, template=template, label_words="negative: bad\npositive: good",
                           selection=data.default_selection(), max_length=64, eval_limit=limit,
                           evaluation={"calibration": "content-free" if calibrate else None})


def test_zero_shot_is_recorded_and_rebuilt_from_predictions(ctx):
    res = evaluate.zero_shot(ctx, _cfg(ctx))
    assert res["classes"] == ["negative", "positive"] and res["run_id"]
    assert sum(map(sum, res["confusion"])) == res["metrics"]["n"] == 64
    again = evaluate.run_result(ctx, res["run_id"])
    assert again["confusion"] == res["confusion"]
    assert again["metrics"]["accuracy"] == pytest.approx(res["metrics"]["accuracy"])
    # each metric with its 95% interval over the 64 rows scored, the same when the run is reopened
    for key in ("accuracy", "macro_f1"):
        lo, hi = res["intervals"][key]
        assert lo <= res["metrics"][key] <= hi and 0.05 < hi - lo < 0.4
        assert again["intervals"][key] == res["intervals"][key]
    from studio.views.evaluation import metrics_card

    acc, (lo, hi) = res["metrics"]["accuracy"], res["intervals"]["accuracy"]
    assert f"{acc:.4f} (95% CI {lo:.4f}-{hi:.4f})" in metrics_card(res)


def test_calibration_is_an_option_and_limit_samples(ctx):
    res = evaluate.zero_shot(ctx, _cfg(ctx, calibrate=True, limit=10))
    assert res["calibration"] == "content-free" and res["metrics"]["n"] == 10
    assert evaluate.run_result(ctx, res["run_id"])["calibration"] == "content-free"
    # a trained run is scored uncalibrated: a config copied from a calibrated zero-shot run must not say otherwise
    trained = ctx.store.create_run(dict(_cfg(ctx, calibrate=True).to_dict(), method={"name": "lora"}),
                                   method="lora", status="running", project=ctx.project)
    ctx.store.add_predictions(trained, [{"index": 0, "gold": "negative", "predicted": "negative",
                                         "probs": {"negative": 0.9, "positive": 0.1}}])
    assert evaluate.run_result(ctx, trained)["calibration"] == "none"


def test_cell_lists_examples_with_wrapped_input_and_probabilities(ctx):
    res = evaluate.zero_shot(ctx, _cfg(ctx, template="Review: {text_a} Verdict: {mask}"))
    conf = res["confusion"]
    g, p = next((i, j) for i in range(2) for j in range(2) if conf[i][j])
    cell = evaluate.cell_examples(ctx, res["run_id"], res["classes"][g], res["classes"][p])
    assert cell["count"] == conf[g][p] and cell["rows"]
    row = cell["rows"][0]
    assert row["input"].startswith("Review: ") and "Verdict:" in row["input"]
    assert set(row["probs"]) == {"negative", "positive"} and sum(row["probs"].values()) == pytest.approx(1)
    empty = evaluate.cell_examples(ctx, res["run_id"], "negative", "nonsense")
    assert empty["count"] == 0


def test_runs_table_detail_compare_and_bundle_round_trip(ctx, tmp_path):
    a = evaluate.zero_shot(ctx, _cfg(ctx))["run_id"]
    b = evaluate.zero_shot(ctx, _cfg(ctx, template="{text_a} Verdict: {mask}"))["run_id"]
    rows = runs.table(ctx)["runs"]
    assert [r["id"] for r in rows[:2]] == [b, a] and rows[0]["accuracy"] is not None
    assert runs.table(ctx, text=str(a))["runs"][0]["id"] == a
    assert runs.table(ctx, status="failed")["runs"] == []
    detail = runs.detail(ctx, a)
    assert detail["computed_on"] == "cpu, float32"     # from the run's lineage: what it ran on and in
    assert detail["versions"]["template"]["content"] == "{text_a} It was {mask}"
    assert detail["predictions"] == 64 and any(x["name"] == "metrics.json" for x in detail["artifacts"])
    assert all(len(x["sha256"]) == 64 for x in detail["artifacts"])
    cmp = runs.compare(ctx, [a, b])
    assert list(cmp["config_diff"]) == ["config.template", "template_version_id"]
    assert "eval/accuracy" in cmp["metrics"]
    assert runs.compare(ctx, [a])["error"]["field"] == "compare"
    bundle = runs.export_bundle(ctx, a)
    other = make_context(tmp_path / "other")
    imported = runs.import_bundle(other, bundle["path"])
    assert runs.detail(other, imported["run_id"])["predictions"] == 64
    assert runs.detail(ctx, 999)["error"]["field"] == "runs"


def test_run_picker_labels_round_trip():
    assert runs.run_id_of("#12 lora demo (succeeded)") == 12 and runs.run_id_of(7) == 7
    from backend.errors import StudioError

    with pytest.raises(StudioError):
        runs.run_id_of("lora")


@pytest.mark.parametrize("kwargs, field", [
    ({"max_length": "long"}, "max_length"),
    ({"selection": {}}, "data"),
    ({"label_words": "positive good"}, "verbalizer"),
    ({"template": ""}, "config"),
    ({"truncate": "middle"}, "config"),
])
def test_run_config_errors_name_their_field(ctx, kwargs, field):
    from backend.errors import StudioError

    args = dict(template="{text_a} It was {mask}", label_words="negative: bad\npositive: good",
                selection=data.default_selection(), max_length=64)
    args.update(kwargs)
    with pytest.raises(StudioError) as err:
        runconfig.build(ctx, **args)
    assert err.value.field == field


# -- inputs checked where they enter the engine ---------------------------------------------------------

@pytest.mark.parametrize("field, kwargs", [("text", {"text": "fine\ud800film"}),
                                           ("text_b", {"text": "fine", "text_b": "x\udfffy"})])
def test_playground_refuses_a_lone_surrogate_naming_the_field(ctx, field, kwargs):
    """Checked before any run is attached or the tokenizer sees it (it would raise a TypeError there)."""
    from backend.services import playground

    res = playground.predict(ctx, run_ids=[424242], **kwargs)
    assert res["error"]["field"] == field and "lone surrogate" in res["error"]["message"]
    assert ctx.serving is None  # refused before the serving copy of the model was made


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": 4}, "max_length: must be at least 8"),
    ({"truncate": "sideways"}, "truncate: must be one of"),
    ({"max_length": float("inf")}, "max length must be a whole number"),
])
def test_probe_checks_its_config_like_every_run(ctx, kwargs, message):
    from backend.services import verbalizer

    chosen = data.pick(ctx, data.default_selection(), [0, 1])
    args = {"max_length": 64, "truncate": "tail", **kwargs}
    res = verbalizer.probe(ctx, "{text_a} It was {mask}", "negative: bad\npositive: good", chosen,
                           ["negative", "positive"], args["max_length"], args["truncate"], 5)
    assert message in res["error"]["message"]


def test_probe_never_reads_a_data_source(ctx, monkeypatch):
    """Its rows come in memory: building its config must not try to read (or fetch) a source named
    'probe:...' to guess columns (that went to the hub and waited through its retries, ~23 s a probe)."""
    from backend.services import verbalizer

    chosen = data.pick(ctx, data.default_selection(), [0, 1])
    read = []
    monkeypatch.setattr(data, "loaded", lambda *a, **k: read.append(a) or (_ for _ in ()).throw(AssertionError))
    res = verbalizer.probe(ctx, "{text_a} It was {mask}", "negative: bad\npositive: good", chosen,
                           ["negative", "positive"], 64, "tail", 5)
    assert "error" not in res and len(res["examples"]) == 2 and read == []


def test_top_k_above_the_vocabulary_is_a_config_error_naming_both(ctx):
    from backend.errors import ConfigError
    from backend.evaluate import evaluate as engine_evaluate
    from backend.pipeline import build_prompt_model, settings_for

    cfg = _cfg(ctx)
    loaded = ctx.model.get()
    exs = data.examples(ctx, data.default_selection())[:2]
    pm, _, _ = build_prompt_model(loaded, cfg, ["negative", "positive"], exs)
    vocab = loaded.model.get_output_embeddings().weight.shape[0]
    settings = settings_for(cfg, loaded.kind)
    assert len(engine_evaluate(pm, loaded.tokenizer, exs, settings=settings, top_k=vocab)
               .predictions[0]["top_k"]) == vocab
    with pytest.raises(ConfigError) as err:
        engine_evaluate(pm, loaded.tokenizer, exs, settings=settings, top_k=vocab + 1)
    assert "eval.top_k" in err.value.message and f"{vocab:,}" in err.value.message


@pytest.mark.parametrize("config", [5, {"model": "x"}, ["{}"], None])
def test_rerun_of_a_config_that_is_not_text_says_so(ctx, config):
    """The Runs tab's /rerun sends the config box as text; an API caller may send anything."""
    from backend.services import training

    res = training.submit_json(ctx, config)
    assert res["error"]["field"] == "config" and "must be JSON text" in res["error"]["message"]


def test_label_words_typed_in_the_studio_never_read_a_server_file(ctx, tmp_path):
    """``{"label_words": "/path/x.csv"}`` in the label-word editor used to list that file's lines in the
    coverage table and store them with a save."""
    from backend.services import verbalizer, versions

    secret = tmp_path / "secret.csv"
    secret.write_text("hunter2\nroot\n")
    for typed in (f'{{"label_words": "{secret}"}}', f'"{secret}"', f'{{"label_words": "{"a" * 300}.txt"}}'):
        for res in (verbalizer.coverage(ctx, typed, "{text_a} It was {mask}"),
                    versions.save(ctx, "verbalizer", "v", typed, "")):
            assert "error" in res and "hunter2" not in str(res), res
            assert "file" in res["error"]["message"] or not typed.startswith("{")


def test_suggested_label_words_are_never_mined_from_rows_the_evaluate_tab_scores(ctx):
    """They come from the probed rows' gold labels: mined from dev rows, then scored on them, the words make
    an optimistic number. The demo's split is what the Evaluate tab scores; a dev fraction leaves a train part."""
    from backend.data.fingerprint import input_key
    from backend.services import verbalizer

    args = ("{text_a} It was {mask}", "negative: bad\npositive: good")
    sel = data.default_selection()
    res = verbalizer.probe(ctx, *args, data.pick(ctx, sel, [0, 1, 2]), ["negative", "positive"], 64, "tail", 5,
                           selection=sel)
    assert (res["mined_from"], res["left_out"], res["suggestions"]) == (0, 3, {})
    split = dict(sel, dev_fraction=0.5)
    dev = {input_key(e) for e in data.train_dev(ctx, split)[1]}
    picked = data.pick(ctx, split, list(range(8)))
    res = verbalizer.probe(ctx, *args, picked, ["negative", "positive"], 64, "tail", 5, selection=split)
    in_dev = sum(input_key(ex) in dev for _, ex in picked)
    assert 0 < in_dev < 8 and (res["mined_from"], res["left_out"]) == (8 - in_dev, in_dev) and res["suggestions"]


# ------------------------------------------------------------- scoring rows that chose a checkpoint or a configuration

WORDS = ["great fun", "awful mess", "lovely film", "boring junk", "fine acting", "dull plot", "sharp script",
         "weak ending"]


def _texts(tag: str, n: int) -> list[dict]:
    return [{"text_a": f"a {WORDS[i % 8]}, {tag} {i}", "label": ("positive", "negative")[i % 2]} for i in range(n)]


@pytest.fixture(scope="module")
def chosen(tmp_path_factory, smol_tok):
    """A studio whose data folder holds disjoint train / dev / test splits and a ``mixed`` split that repeats
    two dev inputs (one under the other label); a run that kept the best of two dev evaluations (on the first
    6 dev rows, its ``eval_limit``) and a sweep's configuration trained on all data (one evaluation at most)."""
    import json

    from backend.jobs import submit
    from backend.jobs.child import train_recorded
    from tests.tiny import tiny_model

    tmp = tmp_path_factory.mktemp("chosen")
    ctx = make_context(tmp / "studio", tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    folder = ctx.data_dir / "reviews"
    folder.mkdir()
    dev = _texts("dev", 8)
    mixed = [dev[0], dict(dev[1], label="positive" if dev[1]["label"] == "negative" else "negative"),
             *_texts("mixed", 4)]
    for split, rows in (("train", _texts("train", 12)), ("dev", dev), ("test", _texts("test", 6)), ("mixed", mixed)):
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ids = {}
    for name, train, tags in (("best", {"eval_every": 1, "eval_limit": 6}, []),
                              ("swept", {}, ["from-sweep:grid"])):
        cfg = runconfig.build(ctx, template="{text_a} It was {mask}", label_words="negative: bad\npositive: good",
                              selection={"source": str(folder), "split": "dev", "columns": {}}, train_split="train",
                              max_length=64, method="prompt-tuning", options={"num_tokens": 2}, tags=tags,
                              train={"steps": 2, "batch_size": 4, "output_dir": str(tmp / name), **train})
        ids[name] = submit(ctx.store, cfg, status="running")
        assert train_recorded(ctx.store, ids[name], cfg, out_dir=tmp / name, loaded=ctx.model.get()).status == "succeeded"
    assert ctx.store.get_run(ids["best"]).metrics["final/chosen_among"] == 2
    assert (ctx.store.get_run(ids["swept"]).metrics.get("final/chosen_among") or 0) <= 1
    yield ctx, ids
    ctx.close()


def test_scoring_a_run_again_on_the_dev_rows_that_chose_its_checkpoint_says_so(chosen):
    """The default split is the dev split: its first 6 rows (the dev evaluations' ``eval_limit``) chose the
    checkpoint, so 6 of the 8 scored rows are no held-out figure; the caveat names the run and the count."""
    ctx, ids = chosen
    res = evaluate.trained_run(ctx, ids["best"])
    assert "error" not in res, res
    info = ctx.store.get_run(res["run_id"])
    assert info.metrics["eval/selected_on_scored_rows"] == 6 and info.metrics["eval/n"] == 8
    said = runs.detail(ctx, res["run_id"])["caveats"]
    assert said == res["caveats"] == [
        f"6 of its 8 scored rows are dev rows that chose a checkpoint of run #{ids['best']}: this score is "
        "optimistic; score it on rows it never saw (a test split) for a fair figure."]
    from studio.views.evaluation import metrics_card

    assert "6 of its 8 scored rows are dev rows" in metrics_card(res)    # the Evaluate tab shows it by the number


def test_rows_are_compared_by_input_and_a_separate_test_split_has_no_caveat(chosen):
    ctx, ids = chosen
    test = evaluate.trained_run(ctx, ids["best"], "test")
    assert ctx.store.get_run(test["run_id"]).metrics["eval/selected_on_scored_rows"] == 0    # checked: none
    assert test["caveats"] == [] and runs.detail(ctx, test["run_id"])["caveats"] == []
    mixed = evaluate.trained_run(ctx, ids["best"], "mixed")   # another file, two dev inputs (one relabelled)
    assert ctx.store.get_run(mixed["run_id"]).metrics["eval/selected_on_scored_rows"] == 2
    assert mixed["caveats"][0].startswith(f"2 of its 6 scored rows are dev rows that chose a checkpoint of "
                                          f"run #{ids['best']}")


def test_a_sweeps_choice_is_carried_to_an_evaluation_on_its_dev_rows(chosen):
    ctx, ids = chosen
    res = evaluate.trained_run(ctx, ids["swept"])
    assert ctx.store.get_run(res["run_id"]).metrics["eval/sweep_selected_on_scored_rows"] == 8
    assert runs.detail(ctx, res["run_id"])["caveats"] == [
        f"8 of its 8 scored rows are the dev rows a sweep chose run #{ids['swept']}'s configuration by: this score "
        "is optimistic; score it on a split the sweep never saw for a fair figure."]
    assert evaluate.trained_run(ctx, ids["swept"], "test")["caveats"] == []


def test_dev_rows_that_read_differently_than_recorded_leave_the_overlap_unknown_not_zero(chosen):
    """Its dev file changed since: the rows that chose the checkpoint cannot be read again, so "no overlap"
    would be a guess; the evaluation says it could not check."""
    from storage.models import DatasetSnapshot

    ctx, ids = chosen
    snap_id = ctx.store.get_run(ids["best"]).dataset_snapshot_id
    with ctx.store.write() as s:
        snap = s.get(DatasetSnapshot, snap_id)
        kept = dict(snap.row_counts)
        snap.row_counts = dict(kept, eval_rows=[[0, 2]])
    try:
        res = evaluate.trained_run(ctx, ids["best"], "test")
    finally:
        with ctx.store.write() as s:
            s.get(DatasetSnapshot, snap_id).row_counts = kept
    metrics = ctx.store.get_run(res["run_id"]).metrics
    assert metrics["eval/selection_unchecked"] == 1 and "eval/selected_on_scored_rows" not in metrics
    assert res["caveats"] == [f"The dev rows on which run #{ids['best']} chose a checkpoint or configuration read "
                              "differently now than when recorded: whether this score is on them cannot be checked, "
                              "so it may be optimistic."]
