"""Versions service: validated saves, unchanged content, history, diffs, aliases, label-word text."""
from __future__ import annotations

import pytest

from backend.errors import VerbalizerError
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


TRICKY_VERBALIZERS = [   # (spec, classes): each must come back from the editor text unchanged
    ({"aggregate": "mean", "multi_token": "mean", "label_words": {"neg": ["bad", "awful"], "pos": ["good"]}},
     ["neg", "pos"]),
    ({"multi_token": "exact", "label_words": {"neg": ["bad"], "pos": ["good"]}}, ["neg", "pos"]),
    ({"low": ["1 star"], "high": ["1,000 stars", "5"]}, ["low", "high"]),
    ({"#1": ["first"], "other": ["second"]}, ["#1", "other"]),
    ({"time:evening": ["late"], "time": ["early"]}, ["time:evening", "time"]),
    ({"a": [" padded ", "tail "], "b": ["  lead"]}, ["a", "b"]),
    ({"": ["nameless"], "named": ["x"]}, ["", "named"]),
    ({"a": ["<!>word"], "b": ["two\nlines", "car\rriage", "line\u2028sep"]}, ["a", "b"]),
    ({" spaced ": ["x"], "b": ["y"]}, [" spaced ", "b"]),
    ({"{brace": ["x"], "b": ["y"]}, ["{brace", "b"]),
    ({"négatif": ["mauvais", "très mauvais"], "正面": ["好", "很好"], "emoji": ["👍"]},
     ["négatif", "正面", "emoji"]),
    ({"many": [f"w{i}" for i in range(40)], "few": ["z"]}, ["many", "few"]),
    ({"negative": ["bad", "awful"], "positive": ["good", "great"]}, ["negative", "positive"]),
    ({"no": ["nope"], "yes": ["yes", "yeah"], "maybe": ["perhaps"]}, None),
]


SIMPLE_VERBALIZERS = [   # (spec, the editor's text)
    ({"negative": ["bad", "awful"], "positive": ["good", "great"]}, "negative: bad, awful\npositive: good, great"),
    ({"no": ["nope"], "yes": ["yes", "yeah"]}, "no: nope\nyes: yes, yeah"),
    ({"négatif": ["très mauvais"], "正面": ["好"]}, "négatif: très mauvais\n正面: 好"),
    ({"label_words": {"a": ["x"], "b": ["y"]}, "multi_token": "first", "aggregate": "logsumexp"}, "a: x\nb: y"),
]


def test_label_words_text_round_trips_exactly():
    """What the editor shows, saved again unedited, is the same verbalizer (settings, commas, '#', ':' ...),
    and a simple verbalizer is still shown as the friendly ``class: word, word`` lines."""
    failures = []
    for spec, classes in TRICKY_VERBALIZERS:
        canonical = versions.canonical_verbalizer(spec, classes)
        shown = versions.label_words_text(canonical)
        for names in (classes, None):
            try:
                back = versions.canonical_verbalizer(versions.parse_label_words(shown), names)
            except VerbalizerError as exc:
                back = f"VerbalizerError: {exc.message}"
            if back != canonical:
                failures.append(f"{spec!r} shown as {shown!r} reads back as {back!r}")
    assert failures == []
    for spec, expected in SIMPLE_VERBALIZERS:
        assert versions.label_words_text(versions.canonical_verbalizer(spec, None)) == expected



def test_settings_survive_reopening_and_saving_again(ctx):
    text = '{"aggregate": "mean", "multi_token": "mean", "label_words": {"neg": ["bad", "awful"], "pos": ["good"]}}'
    first = versions.save(ctx, "verbalizer", "v", text, "with settings", classes=["neg", "pos"])
    shown = versions.label_words_text(first["content"])
    assert '"aggregate": "mean"' in shown and "\n" in shown        # readable JSON, settings included
    again = versions.save(ctx, "verbalizer", "v", shown, "unedited", classes=["neg", "pos"])
    assert not again["created"] and again["version"]["version"] == 1


@pytest.mark.parametrize("ref, message", [
    (float("nan"), "whole number, not nan"), (float("inf"), "whole number, not inf"),
    (float("-inf"), "whole number, not -inf"), (2.7, "whole number, not 2.7"),
    ("99999999999999999999", "has no version 99999999999999999999"),
    ("9" * 5000, "has no version 99999999999999999999… (5000 digits)"),
    (1e30, "has no version 10000000000000000198… (31 digits)"), (2.0 ** 63, "has no version 9223372036854775808"),
    ("²", "has no alias '²'"),
])
def test_odd_version_references_are_clean_messages(ctx, ref, message):
    versions.save(ctx, "template", "t", "{text_a} It was {mask}.")
    versions.save(ctx, "template", "t", "{text_a} All in all, {mask}.")
    got = versions.get(ctx, "template", "t", ref)
    assert message in got["error"]["message"] and got["error"]["field"] == "versions"
    assert message in versions.diff(ctx, "template", "t", "1", ref)["error"]["message"]
    aliased = versions.set_alias(ctx, "template", "t", "prod", ref)
    assert message in aliased["error"]["message"] and aliased["error"]["field"] == "alias"
    assert versions.get(ctx, "template", "t", 2.0)["version"]["version"] == 2     # a whole float still works
    assert versions.history(ctx, "template", "t")["versions"][0]["aliases"] == []  # no alias was set
