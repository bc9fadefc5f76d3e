"""Soft-prompt ensembles (Lester et al.): one batch over the rows replicated per prompt gives each prompt
exactly its own scores, the combinations do what they say, the ensemble is recorded as a run that the
Playground serves with the probabilities it recorded, and members that differ in more than their soft
prompt are refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.services import data, evaluate, playground, project, runconfig, workbench
from backend.services.testing import make_context
from backend.workbench.softensemble import combine

WORDS = "negative: bad\npositive: good"


def test_mean_and_majority():
    p = np.log(np.array([[[0.9, 0.1], [0.4, 0.6]],
                         [[0.6, 0.4], [0.45, 0.55]],
                         [[0.2, 0.8], [0.7, 0.3]]]))
    np.testing.assert_allclose(np.exp(combine(p, "mean")), np.exp(p).mean(0), rtol=1e-5)
    votes = np.exp(combine(p, "majority"))
    assert votes[0] == pytest.approx([2 / 3, 1 / 3], abs=1e-4) and votes[1] == pytest.approx([1 / 3, 2 / 3], abs=1e-4)
    tie = np.exp(combine(np.log(np.array([[[0.9, 0.1]], [[0.4, 0.6]]])), "majority"))
    assert tie[0].argmax() == 0          # one vote each: the class with more mean probability wins


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smol_tok):
    from backend.jobs import submit
    from backend.jobs.child import train_recorded
    from tests.tiny import tiny_model

    tmp = tmp_path_factory.mktemp("softens")
    ctx = make_context(tmp / "studio", tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    ids = []
    # the fourth member trained on a 2-per-class sample of the training rows instead of them all
    for seed, template, shots in ((1, "{text_a} It was {mask}", None), (2, "{text_a} It was {mask}", None),
                                  (3, "{text_a} So: {mask}", None), (4, "{text_a} It was {mask}", 2)):
        out = tmp / f"run-{seed}"
        cfg = runconfig.build(ctx, template=template, label_words=WORDS, selection=data.default_selection(),
                              max_length=64, method="prompt-tuning", options={"num_tokens": 3, "init": "vocab"},
                              train={"steps": 3, "batch_size": 4, "lr": 0.3, "seed": seed, "eval_limit": 8,
                                     "output_dir": str(out)})
        cfg.data.limit = 12
        cfg.data.shots, cfg.data.seed = shots, seed
        run_id = submit(ctx.store, cfg, status="running")
        assert train_recorded(ctx.store, run_id, cfg, out_dir=out, loaded=ctx.model.get()).status == "succeeded"
        ids.append(run_id)
    return ctx, ids


def _train_rows(ctx, run_id) -> set:
    """The training rows a run's dataset snapshot names (row numbers; ranges expanded)."""
    info = ctx.store.get_run(run_id)
    rows = ctx.store.get_dataset_snapshot(info.dataset_snapshot_id).row_counts["train_rows"]
    return {n for first, last in rows for n in range(first, last + 1)}


def _done(job: dict) -> dict:
    """An ensemble answered in-process (no job runner): finished; its result names the job's own run."""
    assert "error" not in job, job
    assert job["status"] == "succeeded" and job["done"] and job["rows_scored"] == job["rows_total"] > 0, job
    assert job["result"]["run_id"] == job["job"]
    return job["result"]


def test_the_ensemble_records_every_row_its_members_trained_on(trained):
    ctx, ids = trained
    sampled, whole = _train_rows(ctx, ids[3]), _train_rows(ctx, ids[0])
    assert sampled and sampled < whole           # the members trained on different rows
    res = _done(workbench.soft_ensemble(ctx, [ids[3], ids[0]], "mean"))
    assert _train_rows(ctx, res["run_id"]) == whole | sampled
    # scored again on the Evaluate tab: its config is its first member's (the 2-shot one), but what it
    # learned from, checked against the rows scored and recorded, is every member's
    from backend.services import evaluate

    scored = evaluate.trained_run(ctx, res["run_id"], limit=4)
    assert "error" not in scored, scored
    assert _train_rows(ctx, scored["run_id"]) == whole | sampled


def test_one_batch_gives_every_prompt_its_own_scores_and_the_run_serves(trained):
    ctx, ids = trained
    job = workbench.soft_ensemble(ctx, ids[:2], "mean")
    res = _done(job)
    assert job["rows_total"] == 2 * 12 and workbench.soft_ensemble_job(ctx, job["job"])["result"] == res
    assert workbench.latest_soft_ensemble(ctx) == job["job"]
    assert res["prompts"] == 2 and res["n"] == 12 and [m["run_id"] for m in res["members"]] == ids[:2]
    info = ctx.store.get_run(res["run_id"])
    assert info.method == "soft-ensemble" and info.parent_run_id == ids[0] and info.dataset_snapshot_id
    rows = evaluate.eval_examples(ctx, RunConfig.from_dict(info.config))
    rs = playground.server_for(ctx)
    with rs.lock:
        singles = []
        for rid in ids[:2]:
            playground.attach(ctx, rs, rid)
            singles.append(rs.server.scores(str(rid), rows).exp().numpy())
        playground.attach(ctx, rs, info.id)
        served = rs.server.scores(str(info.id), rows).exp().numpy()
        member = rs.server.runs[str(info.id)].ensemble.member_scores(rows, rs.server.tokenizer,
                                                                      _settings(info), rs.server.info)
    for k, single in enumerate(singles):      # the replicated batch scores each prompt as it scores alone
        np.testing.assert_allclose(np.exp(member[k]), single, atol=1e-4)
        assert res["members"][k]["accuracy"] == pytest.approx(
            float((single.argmax(-1) == np.array([0 if r.label == "negative" else 1 for r in rows])).mean()))
    np.testing.assert_allclose(served, np.mean(singles, axis=0), atol=1e-4)
    recorded = ctx.store.get_predictions(info.id)
    np.testing.assert_allclose([[p["probs"]["negative"], p["probs"]["positive"]] for p in recorded], served, atol=1e-4)
    out = playground.predict(ctx, "a wonderful film", [info.id])
    assert out["results"][0]["method"] == "soft-ensemble"


def _settings(info):
    from backend.batching import EncodeSettings

    return EncodeSettings(profile="causal", max_length=info.config["max_length"], truncate=info.config["truncate"])


def test_members_that_differ_in_more_than_their_soft_prompt_are_refused(trained):
    ctx, ids = trained
    res = workbench.soft_ensemble(ctx, [ids[0], ids[2]], "majority")
    assert f"run {ids[2]} differs from run {ids[0]} in its template text" in res["error"]["message"]
    assert "at least two" in workbench.soft_ensemble(ctx, [ids[0]])["error"]["message"]
    assert "combine by" in workbench.soft_ensemble(ctx, ids[:2], "median")["error"]["message"]
    zero = evaluate.zero_shot(ctx, runconfig.build(ctx, template="{text_a} {mask}", label_words=WORDS,
                                                   selection=data.default_selection(), eval_limit=4))["run_id"]
    assert "no trained artifacts" in workbench.soft_ensemble(ctx, [ids[0], zero])["error"]["message"]


def test_an_ensemble_job_cancelled_between_batches_is_never_served(trained):
    from backend.services.runs import is_trained
    from backend.workbench.softensemble_job import run_soft_ensemble_job

    ctx, ids = trained
    ctx.jobs = object()          # a runner that never runs anything: the job stays queued
    try:
        job = workbench.soft_ensemble(ctx, ids[:2], "majority")
    finally:
        ctx.jobs = None
    assert job["status"] == "queued" and not job["done"] and job["result"] is None
    info = ctx.store.get_run(job["job"])
    assert info.method == "soft-ensemble" and info.parent_run_id == ids[0] and is_trained(info.method)
    assert info.tags.count("soft-ensemble") == 1
    assert run_soft_ensemble_job(ctx.store, job["job"], loaded=ctx.model.get(), should_stop=lambda: True) == "cancelled"
    again = workbench.soft_ensemble_job(ctx, job["job"])
    assert again["status"] == "cancelled" and again["result"] is None
    assert job["job"] not in [int(label.split()[0].lstrip("#")) for label in playground.runs(ctx)]   # not served
    assert "Cancel requested for soft-prompt ensemble" in workbench.cancel_soft_ensemble(ctx, job["job"])["message"]
    assert "not a soft-prompt ensemble" in workbench.soft_ensemble_job(ctx, ids[0])["error"]["message"]


def test_the_job_copies_its_members_inside_the_store_and_removes_the_copies(trained, monkeypatch):
    from pathlib import Path

    from backend import serving

    ctx, ids = trained
    copied = []
    real = serving.materialize_run
    monkeypatch.setattr(serving, "materialize_run", lambda store, rid, dest: copied.append(Path(dest)) or real(store, rid, dest))
    res = _done(workbench.soft_ensemble(ctx, ids[:2], "mean"))
    from backend.jobs.paths import run_dir

    inside = [d for d in copied if d.is_relative_to(run_dir(ctx.store, res["run_id"]))]
    assert len(inside) == 2 and not inside[0].exists()         # the job's own copies, gone once it ended
    first_output = Path(ctx.store.get_run(ids[0]).config["train"]["output_dir"])
    assert not list(first_output.glob(f"run-{res['run_id']}*"))   # nothing written into a member's folder


def test_the_studio_queues_the_ensemble_and_reads_it_back(trained):
    """Through the studio's HTTP API: the ensemble card, its job number; its status read back from storage."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from tests.client_helpers import api_client

    from studio.app import build_app, launch

    ctx, ids = trained
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    try:
        c = api_client(demo.local_url)
        card, job, _timer = c.predict(f"#{ids[0]}, {ids[1]}", "mean", api_name="/soft_prompt_ensemble")
        assert f"recorded as run <b>#{int(job)}</b>" in card and "2 prompts (mean)" in card, card
        again, job_again, _ = c.predict(job, api_name="/soft_ensemble_status")
        assert again == card and job_again == job
        assert "give run ids like" in c.predict("12, x", "mean", api_name="/soft_prompt_ensemble")[0]
        assert "no soft-prompt ensemble to cancel" in c.predict(None, api_name="/soft_ensemble_cancel")
    finally:
        demo.close()


def test_members_trained_on_another_revision_of_the_base_are_refused():
    from backend.workbench.softensemble import check_members

    meta = {"method": "prompt-tuning", "options": {}, "template_text": "t", "verbalizer": "v", "classes": ["a"],
            "kind": "causal", "config": {"model": "m"}}
    check_members([dict(meta, run_id=1, model_revision="a" * 64), dict(meta, run_id=2, model_revision="a" * 64)])
    with pytest.raises(ConfigError, match="run 2 was trained on another revision of the base model"):
        check_members([dict(meta, run_id=1, model_revision="a" * 64), dict(meta, run_id=2, model_revision="b" * 64)])


def test_an_ensemble_scored_on_the_dev_rows_that_chose_its_members_checkpoints_says_so(trained, tmp_path):
    """Members that kept the best of several dev evaluations (on the first 8 dev rows, their ``eval_limit``)
    chose their checkpoints on rows the ensemble is then scored on (its first member's 12 dev rows): the
    ensemble run, and an evaluation of it on those rows, count them and carry the caveat; members that chose
    nothing leave the ensemble without one."""
    from backend.jobs import submit
    from backend.jobs.child import train_recorded
    from backend.services import runs

    ctx, ids = trained
    picky = []
    for seed in (5, 6):
        out = tmp_path / f"picky-{seed}"
        cfg = runconfig.build(ctx, template="{text_a} It was {mask}", label_words=WORDS, selection=data.default_selection(),
                              max_length=64, method="prompt-tuning", options={"num_tokens": 3, "init": "vocab"},
                              train={"steps": 3, "batch_size": 4, "lr": 0.3, "seed": seed, "eval_every": 1,
                                     "eval_limit": 8, "output_dir": str(out)})
        cfg.data.limit = 12
        run_id = submit(ctx.store, cfg, status="running")
        assert train_recorded(ctx.store, run_id, cfg, out_dir=out, loaded=ctx.model.get()).status == "succeeded"
        assert ctx.store.get_run(run_id).metrics["final/chosen_among"] == 3
        picky.append(run_id)
    res = _done(workbench.soft_ensemble(ctx, picky, "mean"))
    info = ctx.store.get_run(res["run_id"])
    assert info.metrics["eval/selected_on_scored_rows"] == 8 and info.metrics["eval/n"] == 12
    assert runs.caveats(info) == ["8 of its 12 scored rows are dev rows that chose a checkpoint of one of its members: "
                                  "this score is optimistic; score it on rows it never saw (a test split) for a fair "
                                  "figure."]
    again = evaluate.trained_run(ctx, res["run_id"], limit=4)
    assert again["caveats"][0].startswith(f"4 of its 4 scored rows are dev rows that chose a checkpoint of run #{info.id}")
    plain = _done(workbench.soft_ensemble(ctx, ids[:2], "mean"))
    assert runs.caveats(ctx.store.get_run(plain["run_id"])) == []
