"""The studio's prompt comparison: every combination scored on the same dev rows, recorded as a group,
equal to evaluating each on its own; flips between two runs; mistakes as messages."""
from __future__ import annotations

import pytest

from backend.services import data, evaluate, project, runconfig, workbench
from backend.services.testing import make_context

TEMPLATES = ["{text_a} It was {mask}", "Review: {text_a} Verdict: {mask}"]
WORDS = ["negative: bad\npositive: good", "negative: awful, bad\npositive: great"]


@pytest.fixture
def ctx(tmp_path, smol_tok):
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    return ctx


def _done(res):
    """A comparison answered in-process (no job runner): finished, with its table."""
    assert "error" not in res, res
    assert res["status"] == "succeeded" and res["done"] and res["fraction"] == 1.0, res
    return res["result"]


def test_comparison_is_a_job_whose_runs_are_a_recorded_group_equal_to_single_evaluations(ctx):
    sel = data.default_selection()
    job = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=sel, max_length=64,
                            baseline=0, limit=20)
    res = _done(job)
    assert len(res["rows"]) == 4 and res["n"] == 20 and res["forwards"] == 2
    info = ctx.store.get_run(job["job"])
    assert info.method == "comparison" and info.dataset_snapshot_id is not None   # the job has its lineage too
    assert job["rows_scored"] == job["rows_total"] > 0
    group = ctx.store.list_runs(tag=res["group"])
    assert sorted(r.id for r in group) == sorted(row["run_id"] for row in res["rows"])
    assert {r.parent_run_id for r in group} == {job["job"]} and res["group"] == f"compare:{job['job']}"
    for row, (t, w) in zip(res["rows"], [(t, w) for t in TEMPLATES for w in WORDS]):
        single = evaluate.zero_shot(ctx, runconfig.build(ctx, template=t, label_words=w, selection=sel,
                                                          max_length=64, eval_limit=20))
        assert row["uncalibrated"]["accuracy"] == pytest.approx(single["metrics"]["accuracy"])
        lo, hi = row["uncalibrated"]["accuracy_ci"]
        assert lo <= row["uncalibrated"]["accuracy"] <= hi
    assert res["rows"][0]["uncalibrated"]["vs_baseline"] is None
    assert res["label_words"] == {"V1": WORDS[0], "V2": WORDS[1]}   # the editor texts, for "use this row"
    assert workbench.latest_comparison(ctx) == job["job"]
    assert workbench.comparison(ctx, job["job"])["result"] == res      # what a refreshed page reads


def test_comparisons_and_searches_refuse_templates_that_would_show_demonstrations(ctx):
    # they score each template without demonstrations: recorded under a config that shows them, a re-run
    # would give another number
    from backend.services import templatesearch

    sel = data.default_selection()
    demo = "{demos:2} Review: {text_a} It was {mask}."
    before = len(ctx.store.list_runs(limit=None))
    for res in (workbench.compare(ctx, templates=[TEMPLATES[0], demo], label_words=WORDS[:1], selection=sel,
                                  limit=8),
                workbench.search_words(ctx, template=demo, selection=sel),
                templatesearch.search_templates(ctx, template=demo, label_words=WORDS[0], selection=sel, limit=8)):
        assert "without demonstrations" in res["error"]["message"] and "{demos}" in res["error"]["message"], res
    assert len(ctx.store.list_runs(limit=None)) == before                 # nothing queued nor recorded


def test_ensembles_are_fitted_on_training_rows_and_recorded_as_runs(ctx):
    from backend.recording import expand_rows
    from backend.workbench.record import read_ensemble

    sel = dict(data.default_selection(), shots=4)
    res = _done(workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS[:1], selection=sel, max_length=64,
                                  limit=12, ensembles=["uniform", "accuracy", "fitted"]))
    assert [e["kind"] for e in res["ensembles"]] == ["uniform", "accuracy", "fitted"]
    for e in res["ensembles"]:
        info = ctx.store.get_run(e["run_id"])
        assert info.method == "ensemble" and info.status == "succeeded" and res["group"] in info.tags
        spec = read_ensemble(ctx.store, info.id)
        assert spec["kind"] == e["kind"] and [m["run_id"] for m in spec["members"]] == [r["run_id"] for r in res["rows"]]
        assert all(m["template_version_id"] and m["verbalizer_version_id"] and m["prior"] for m in spec["members"])
        snap = ctx.store.get_dataset_snapshot(info.dataset_snapshot_id)
        assert snap.row_counts["train"] == spec["train_rows"] == 8     # 4 shots x 2 classes: the fitting rows
        assert snap.row_counts["eval"] == 12 and len(expand_rows(snap.row_counts["train_rows"])) == 8
        preds = ctx.store.get_predictions(info.id)
        assert len(preds) == 12 and e["accuracy"] == pytest.approx(
            sum(p["gold"] == p["predicted"] for p in preds) / 12)
    uniform = res["ensembles"][0]
    assert uniform["weights"] == [1.0, 1.0]
    bad = workbench.compare(ctx, templates=TEMPLATES[:1], label_words=WORDS[:1], selection=sel, ensembles=["uniform"])
    assert "at least two combinations" in bad["error"]["message"]
    assert "unknown ensemble" in workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=sel,
                                                   ensembles=["median"])["error"]["message"]


def test_a_cancelled_comparison_stops_and_says_so(ctx):
    from backend.workbench.job import run_comparison_job

    ctx.jobs = object()     # a runner that never runs anything: the job stays queued
    try:
        job = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=data.default_selection(),
                                max_length=64, limit=8)
    finally:
        ctx.jobs = None
    assert job["status"] == "queued" and not job["done"] and job["result"] is None
    assert run_comparison_job(ctx.store, job["job"], loaded=ctx.model.get(), should_stop=lambda: True) == "cancelled"
    again = workbench.comparison(ctx, job["job"])
    assert again["status"] == "cancelled" and again["done"] and not ctx.store.list_runs(tag=f"compare:{job['job']}")
    assert "not a comparison" in workbench.comparison(ctx, _zero_shot(ctx))["error"]["message"]
    assert "Cancel requested" in workbench.cancel_comparison(ctx, job["job"])["message"]


def _zero_shot(ctx) -> int:
    return evaluate.zero_shot(ctx, runconfig.build(ctx, template=TEMPLATES[0], label_words=WORDS[0],
                                                   selection=data.default_selection(), eval_limit=4))["run_id"]


def test_flips_between_two_runs_and_refusals(ctx):
    sel = data.default_selection()
    res = _done(workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS[:1], selection=sel, max_length=64,
                                  limit=20))
    a, b = (row["run_id"] for row in res["rows"])
    f = workbench.flips(ctx, a, b)
    assert f["n"] == 20 and f["counts"]["a_right"] == res["rows"][1]["uncalibrated"]["vs_baseline"]["only_b"]
    assert f["counts"]["b_right"] == res["rows"][1]["uncalibrated"]["vs_baseline"]["only_a"]
    other = evaluate.zero_shot(ctx, runconfig.build(ctx, template=TEMPLATES[0], label_words=WORDS[0],
                                                    selection=sel, max_length=64, eval_limit=10))
    assert "not scored on the same rows" in workbench.flips(ctx, a, other["run_id"])["error"]["message"]
    assert "at least one template" in workbench.compare(ctx, templates=[], label_words=WORDS,
                                                        selection=sel)["error"]["message"]
    assert "baseline" in workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=sel,
                                           baseline=9)["error"]["message"]
    bad = workbench.compare(ctx, templates=["{text_a} {mask"], label_words=WORDS, selection=sel)
    assert "error" in bad and "never closed" in bad["error"]["message"]


@pytest.mark.slow
def test_comparison_runs_in_the_job_runners_child_process(tmp_path, smol_tok):
    """The real path: queued, claimed by the worker, run in its own process (which loads the model from
    the config), progress and result read back from storage."""
    import time

    from backend.services.testing import on_disk, with_jobs
    from tests.tiny import tiny_model

    loaded = on_disk(tiny_model("causal", smol_tok), tmp_path / "model")
    ctx = with_jobs(make_context(tmp_path / "studio", loaded))
    ctx.model.spec = loaded.spec
    try:
        job = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS[:1], selection=data.default_selection(),
                                max_length=64, limit=10)
        assert job["status"] in ("queued", "running"), job
        deadline = time.monotonic() + 180
        while not job.get("done") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = workbench.comparison(ctx, job["job"])
        assert "error" not in job, job
        res = _done(job)
        info = ctx.store.get_run(job["job"])
        assert info.pid is not None and info.pid != __import__("os").getpid()   # it ran elsewhere
        assert len(res["rows"]) == 2 and all(ctx.store.get_run(r["run_id"]).parent_run_id == info.id
                                             for r in res["rows"])
    finally:
        ctx.close()


def test_soft_prompt_inspector_shows_two_runs_side_by_side_with_their_drift(ctx, tmp_path):
    from backend.jobs import submit
    from backend.jobs.child import train_recorded

    ids = []
    for lr in (0.01, 0.5):
        out = tmp_path / f"run-{lr}"
        cfg = runconfig.build(ctx, template="{text_a} It was {mask}", label_words=WORDS[0], max_length=64,
                              selection=data.default_selection(), method="prompt-tuning",
                              options={"num_tokens": 2, "init": "vocab"},
                              train={"steps": 4, "batch_size": 4, "lr": lr, "eval_every": 2, "eval_limit": 8,
                                     "output_dir": str(out)})
        run_id = submit(ctx.store, cfg, status="running")
        assert train_recorded(ctx.store, run_id, cfg, out_dir=out, loaded=ctx.model.get()).status == "succeeded"
        ids.append(run_id)
    res = workbench.inspect_soft(ctx, ids, 3)
    assert "error" not in res, res
    slow, fast = res["runs"]
    assert [r["run_id"] for r in res["runs"]] == ids and slow["soft_tokens"] == fast["soft_tokens"] == 2
    assert [s["step"] for s in slow["trajectory"]] == [0, 2, 4]            # the start and every evaluation
    assert fast["trajectory"][-1]["mean_relative_change"] > slow["trajectory"][-1]["mean_relative_change"] > 0
    assert all(len(t["nearest"]) == 3 for t in fast["tokens"])
    zero = _zero_shot(ctx)
    assert "no trained artifacts" in workbench.inspect_soft(ctx, [zero])["error"]["message"]
    assert "one or two" in workbench.inspect_soft(ctx, [])["error"]["message"]
    assert "one or two" in workbench.inspect_soft(ctx, ids + [zero])["error"]["message"]
