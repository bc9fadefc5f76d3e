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


def test_comparison_is_a_recorded_group_equal_to_single_evaluations(ctx):
    sel = data.default_selection()
    res = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=sel, max_length=64,
                            baseline=0, limit=20)
    assert "error" not in res, res
    assert len(res["rows"]) == 4 and res["n"] == 20 and res["forwards"] == 2
    group = ctx.store.list_runs(tag=res["group"])
    assert sorted(r.id for r in group) == sorted(row["run_id"] for row in res["rows"])
    for row, (t, w) in zip(res["rows"], [(t, w) for t in TEMPLATES for w in WORDS]):
        single = evaluate.zero_shot(ctx, runconfig.build(ctx, template=t, label_words=w, selection=sel,
                                                          max_length=64, eval_limit=20))
        assert row["uncalibrated"]["accuracy"] == pytest.approx(single["metrics"]["accuracy"])
        lo, hi = row["uncalibrated"]["accuracy_ci"]
        assert lo <= row["uncalibrated"]["accuracy"] <= hi
    assert res["rows"][0]["uncalibrated"]["vs_baseline"] is None


def test_flips_between_two_runs_and_refusals(ctx):
    sel = data.default_selection()
    res = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS[:1], selection=sel, max_length=64, limit=20)
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
