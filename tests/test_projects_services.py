"""Projects through the studio's services: a session scoped to a project sees only that project's versions,
runs and settings; the one seed drives the data and training parts of the config."""
from __future__ import annotations

import pytest

from backend.services import data, evaluate, project, runconfig, runs, versions
from backend.services.testing import make_context


@pytest.fixture
def ctx(tmp_path, smol_tok):
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    return ctx


def _zero_shot(ctx, template: str) -> int:
    cfg = runconfig.build(ctx, template=template, label_words="negative: bad\npositive: good",
                          selection=data.default_selection(), max_length=64, eval_limit=8)
    res = evaluate.zero_shot(ctx, cfg)
    assert "error" not in res, res
    return res["run_id"]


def test_two_projects_never_mix_runs_versions_or_picker_lists(ctx):
    alpha, demo = ctx.scoped("alpha"), ctx
    assert project.create(ctx, "alpha") == {"project": "alpha"}
    versions.save(alpha, "template", "mine", "{text_a} alpha {mask}", "first")
    versions.save(demo, "template", "mine", "{text_a} demo {mask}", "first")
    assert versions.get(alpha, "template", "mine")["content"] == "{text_a} alpha {mask}"
    assert versions.get(demo, "template", "mine")["content"] == "{text_a} demo {mask}"
    assert versions.history(alpha, "template", "mine")["names"] == ["mine"]
    assert "demo" in versions.history(demo, "template", "mine")["names"]     # the demo's own prompt

    ra, rd = _zero_shot(alpha, "{text_a} It was {mask}"), _zero_shot(demo, "{text_a} Verdict: {mask}")
    assert [r["id"] for r in runs.table(alpha)["runs"]] == [ra]
    assert [r["id"] for r in runs.table(demo)["runs"]] == [rd]
    assert [runs.run_id_of(c) for c in runs.choices(alpha)] == [ra]
    # each run's config, project and versions are its own project's
    for rid, name in ((ra, "alpha"), (rd, "demo")):
        info = ctx.store.get_run(rid)
        assert info.project == name and info.config["project"] == name
        assert ctx.store.get_version_by_id(info.template_version_id).project == name
    # the start screen: each project with its own best run
    rows = {p["name"]: p for p in project.catalogue(ctx)["projects"]}
    assert rows["alpha"]["runs"] == 1 and rows["alpha"]["best"]["run_id"] == ra
    assert rows["demo"]["best"]["run_id"] == rd


def test_opening_a_project_gives_its_own_editors_and_data(ctx):
    project.create(ctx, "topics")
    topics = ctx.scoped("topics")
    first = project.opening(topics)
    assert first["project"] == "topics" and first["name"] == "topics"
    assert first["template"] == project.demo_config()["template"]    # an unsaved draft to start from
    assert ctx.store.list_names("template", project="topics") == []  # nothing saved by opening
    sel = dict(data.default_selection(), source="builtin:nli-mini", split="train", seed=7)
    assert project.save_selection(topics, sel)["saved"]
    versions.save(topics, "template", "topics", "{text_a} Topic: {mask}", "")
    again = project.opening(topics)
    assert again["template"] == "{text_a} Topic: {mask}" and again["seed"] == 7
    assert again["selection"]["source"] == "builtin:nli-mini"
    assert project.opening(ctx)["selection"]["source"] == data.default_selection()["source"]   # demo unchanged


def test_a_saved_revert_is_what_the_project_opens_with(ctx):
    """Saving an earlier version's text again stores nothing new; the project used to reopen on the newest
    version anyway, as if the revert had never been saved."""
    project.create(ctx, "t")
    t = ctx.scoped("t")
    one, two = "{text_a} One {mask}", "{text_a} Two {mask}"
    versions.save(t, "template", "t", one, "")
    versions.save(t, "template", "t", two, "")
    assert project.opening(t)["template"] == two
    back = versions.save(t, "template", "t", one, "")
    assert not back["created"] and back["now_current"] and back["version"]["version"] == 1
    assert project.opening(t)["template"] == one
    three = versions.save(t, "template", "t", "{text_a} Three {mask}", "")   # edited from the revert
    assert three["version"]["parent"] == 1 and not three["now_current"]
    assert project.opening(t)["template"] == "{text_a} Three {mask}"
    assert versions.save(t, "verbalizer", "t", "negative: bad\npositive: good", "")["created"]
    versions.save(t, "verbalizer", "t", "negative: awful\npositive: great", "")
    versions.save(t, "verbalizer", "t", "negative: bad\npositive: good", "")
    assert project.opening(t)["label_words"] == "negative: bad\npositive: good"


def test_one_seed_drives_sampling_split_and_training(ctx):
    sel = dict(data.default_selection(), seed=7, shots=4)
    cfg = runconfig.build(ctx, template="{text_a} It was {mask}", label_words="negative: bad\npositive: good",
                          selection=sel, method="prompt-tuning", train={"steps": 2})
    assert cfg.data.seed == cfg.train.seed == 7
    default = runconfig.build(ctx, template="{text_a} It was {mask}", label_words="negative: bad\npositive: good",
                              selection=data.default_selection(), method="prompt-tuning")
    assert default.data.seed == default.train.seed


def test_a_bad_project_name_is_a_clear_error(ctx):
    res = project.create(ctx, "../../etc")
    assert "error" in res and "'/' is not allowed" in res["error"]["message"]
    with pytest.raises(Exception, match="project name"):
        ctx.scoped("a/b")


def test_a_run_of_another_project_is_not_reachable_by_its_id(ctx):
    """The pickers list only the project's runs; an id typed or sent over the API must not reach across."""
    from backend.services import playground, training, workbench

    alpha = ctx.scoped("alpha")
    project.create(ctx, "alpha")
    ra, rd = _zero_shot(alpha, "{text_a} It was {mask}"), _zero_shot(ctx, "{text_a} Verdict: {mask}")
    assert runs.detail(alpha, ra)["run"]["id"] == ra and evaluate.run_result(alpha, ra)["run_id"] == ra
    refusals = {
        "detail": runs.detail(ctx, ra), "result": evaluate.run_result(ctx, ra),
        "cells": evaluate.cell_examples(ctx, ra, "negative", "positive"), "config": runs.config_of(ctx, ra),
        "bundle": runs.export_bundle(ctx, ra), "compare": runs.compare(ctx, [ra, rd]),
        "flips": workbench.flips(ctx, ra, rd), "progress": training.progress(ctx, ra),
        "cancel": training.cancel(ctx, ra), "serve": playground.predict(ctx, "a fine film", [ra]),
        "inspect": workbench.inspect_soft(ctx, [ra]),
    }
    for name, res in refusals.items():
        assert f"run #{ra} is in project 'alpha', not in 'demo'" in res.get("error", {}).get("message", ""), \
            (name, res)
    assert ctx.store.get_run(ra).cancel_requested is False     # refused before anything was done
    assert "error" not in runs.compare(ctx, [rd, rd])


@pytest.mark.parametrize("bad", [{"shots": "x"}, {"shots": float("nan")}, {"limit": -5}, {"shots": 2.7},
                                 {"seed": 10 ** 30}, {"dev_fraction": 1.5}])
def test_a_selection_with_numbers_that_cannot_be_used_is_not_saved(ctx, bad):
    """Kept, a bad value broke every later opening of the project."""
    before = project.opening(ctx)["selection"]
    res = project.save_selection(ctx, dict(data.default_selection(), **bad))
    key = next(iter(bad))
    assert "saved" not in res and key.split("_")[-1] in res["error"]["message"]
    assert project.opening(ctx)["selection"] == before
