"""Versions service: validated saves, unchanged content, history, diffs, aliases, label-word text."""
from __future__ import annotations

import pytest

from backend.services import project, versions
from backend.services.testing import make_context


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


def test_save_history_diff_alias(ctx):
    one = versions.save(ctx, "template", "t", "{text_a} It was {mask}.", "first")
    assert one["created"] and one["version"]["version"] == 1
    same = versions.save(ctx, "template", "t", "{text_a} It was {mask}.", "again")
    assert not same["created"] and same["version"]["version"] == 1
    two = versions.save(ctx, "template", "t", "{text_a} All in all, {mask}.", "second")
    assert two["version"]["version"] == 2
    hist = versions.history(ctx, "template", "t")["versions"]
    assert [v["version"] for v in hist] == [2, 1] and hist[0]["message"] == "second"
    d = versions.diff(ctx, "template", "t", "1", "2")["diff"]
    assert "-{text_a} It was {mask}." in d and "+{text_a} All in all, {mask}." in d
    aliased = versions.set_alias(ctx, "template", "t", "prod", "1")
    assert aliased["version"]["aliases"] == ["prod"]
    assert versions.get(ctx, "template", "t", "prod")["content"] == "{text_a} It was {mask}."
    assert versions.get(ctx, "template", "t", "")["version"]["version"] == 2


def test_broken_template_is_not_saved(ctx):
    res = versions.save(ctx, "template", "t", "{text_a} It was {mask", "")
    assert res["error"]["field"] == "template" and res["error"]["span"]
    assert versions.history(ctx, "template", "t")["versions"] == []


def test_user_errors_name_their_field(ctx):
    assert versions.save(ctx, "template", " ", "{mask}")["error"]["field"] == "name"
    assert versions.set_alias(ctx, "template", "t", "", "1")["error"]["field"] == "alias"
    versions.save(ctx, "template", "t", "{text_a} {mask}")
    bad = versions.set_alias(ctx, "template", "t", "best", "9")
    assert "no version 9" in bad["error"]["message"] and bad["error"]["field"] == "alias"


def test_verbalizer_versions_round_trip_through_editor_text(ctx):
    text = "negative: bad, awful\npositive: good, great"
    res = versions.save(ctx, "verbalizer", "v", text, "words", classes=["negative", "positive"])
    assert res["created"]
    assert versions.label_words_text(res["content"]) == text
    # the same words typed as JSON are the same content: no new version
    again = versions.save(ctx, "verbalizer", "v", '{"negative": ["bad", "awful"], "positive": ["good", "great"]}')
    assert not again["created"]
    wrong = versions.save(ctx, "verbalizer", "v", "neg: bad\npositive: good", classes=["negative", "positive"])
    assert wrong["error"]["field"] == "verbalizer"


@pytest.mark.parametrize("text, where", [
    ("", None), ("positive great", 1), ("positive:", 1), ("a: x\na: y", 2), ("{broken", 1)])
def test_label_word_text_errors(text, where):
    from backend.errors import VerbalizerError

    with pytest.raises(VerbalizerError) as err:
        versions.parse_label_words(text)
    assert err.value.row == where


def test_demo_project_bootstraps_once(ctx):
    first = project.bootstrap(ctx)
    assert "{mask}" in first["template"] and "positive" in first["label_words"]
    # the Evaluate tab starts with the demo's calibration, so the first evaluation matches the CLI's demo
    assert first["calibration"] == project.demo_config().get("eval", {}).get("calibration")
    versions.save(ctx, "template", ctx.project, "{text_a} Verdict: {mask}", "mine")
    again = project.bootstrap(ctx)
    assert again["template"] == "{text_a} Verdict: {mask}"  # the user's latest version, not the demo
    assert len(versions.history(ctx, "template", ctx.project)["versions"]) == 2
