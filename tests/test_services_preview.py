"""Template preview service: tokens and segments per example, errors at their span, lint, lengths."""
from __future__ import annotations

import pytest

from backend.prompts.example import Example
from backend.services import preview
from backend.services.testing import make_context


@pytest.fixture
def ctx(tmp_path, smol_tok):
    from tests.tiny import tiny_model

    return make_context(tmp_path, tiny_model("causal", smol_tok))


def _ex(i: int, text: str, **meta) -> tuple[int, Example]:
    return i, Example(guid=i, text_a=text, label="positive", meta=meta)


def test_preview_gives_segments_and_token_chips(ctx):
    res = preview.preview(ctx, "{text_a} It was {mask}", [_ex(0, "Great fun.")], 64, "tail")
    assert "error" not in res
    ex = res["examples"][0]
    assert [p["kind"] for p in ex["pieces"]] == ["placeholder", "text", "mask"]
    assert ex["pieces"][2]["loss_ids"] == 1 and ex["pieces"][0]["shortenable_ids"] == 1
    tokens = ex["tokens"]
    assert tokens and all({"id", "text", "special", "mask", "soft", "truncated"} <= set(t) for t in tokens)
    # causal profile: the label is read after the last input token
    assert tokens[-1]["read"] is True and not any(t["mask"] for t in tokens)
    assert res["profile"] == "causal"


def test_template_error_carries_the_exact_span(ctx):
    text = "{text_a} It was {mask"
    res = preview.preview(ctx, text, [_ex(0, "x")])
    assert res["error"]["field"] == "template"
    start, end = res["error"]["span"]
    assert text[start:end].startswith("{mask")


def test_bad_max_length_is_reported_on_that_field(ctx):
    res = preview.preview(ctx, "{text_a} {mask}", [_ex(0, "x")], "lots")
    assert res["error"]["field"] == "max_length"
    # inf used to raise OverflowError; 2.7 was previewed at 2; 10**9 at a length no run may use
    for bad in (float("inf"), float("nan"), 2.7, 10 ** 9, 0, True):
        res = preview.preview(ctx, "{text_a} {mask}", [_ex(0, "x")], bad)
        assert res["error"]["field"] == "max_length" and "Error" not in res["error"]["message"], (bad, res)
    assert "error" not in preview.preview(ctx, "{text_a} {mask}", [_ex(0, "x")], 64.0)


def test_missing_meta_field_stays_on_its_example(ctx):
    res = preview.preview(ctx, "{meta:title} {text_a} It was {mask}",
                          [_ex(0, "a", title="T"), _ex(1, "b")], 64)
    ok, bad = res["examples"]
    assert ok["error"] is None and ok["tokens"]
    assert "title" in bad["error"]["message"] and bad["tokens"] is None


def test_truncated_tokens_are_marked(ctx):
    long = "word " * 200
    res = preview.preview(ctx, "{text_a} It was {mask}", [_ex(0, long)], 16, "tail")
    ex = res["examples"][0]
    assert ex["length"] == 16 and ex["n_truncated"] > 0
    assert any(t["truncated"] for t in ex["tokens"])


def test_without_a_model_the_segments_still_show(tmp_path):
    ctx = make_context(tmp_path)  # never finishes loading
    res = preview.preview(ctx, "{text_a} It was {mask}", [_ex(0, "x")])
    assert res["model"]["state"] == "loading"
    assert res["examples"][0]["pieces"] and res["examples"][0]["tokens"] is None


def test_lint_finds_unknown_fields_text_after_mask_and_blank_renders():
    from backend.prompts.template import parse_template

    exs = [Example(text_a="x", meta={"title": "t"}), Example(text_a="", meta={"title": ""})]
    text = "{meta:titel} {text_a} {text_b} It was {mask}. Right?"
    found = preview.lint(parse_template(text), exs, "causal")
    messages = " | ".join(f["message"] for f in found)
    assert "unknown field 'titel'" in messages
    assert "text_b" in messages
    assert "after the mask" in messages
    after = next(f for f in found if "after the mask" in f["message"])
    assert text[after["span"][0]:after["span"][1]].startswith(".")
    first = preview.lint(parse_template("{mask} is the answer to {text_a}"), exs, "causal")
    assert any(f["level"] == "error" and "mask comes first" in f["message"] for f in first)
    assert not preview.lint(parse_template("{text_a} It was {mask}"), exs[:1], "causal")
    two = "{text_a} It was {mask} and {mask}."
    [found] = preview.lint(parse_template(two), exs[:1], "masked")    # a masked model read the first silently
    assert "read at the first one only" in found["message"] and two[slice(*found["span"])] == "{mask}"
    assert found["span"][0] == two.rindex("{mask}")


def test_lint_counts_blank_renders():
    from backend.prompts.template import parse_template

    exs = [Example(text_a="x"), Example(text_a="  ")]
    found = preview.lint(parse_template("{text_a} It was {mask}"), exs, "masked")
    assert any("1 of 2 examples render with every field empty" in f["message"] for f in found)


def test_length_stats_counts_truncated_and_lost(ctx):
    exs = [Example(text_a="short"), Example(text_a="long " * 100)]
    res = preview.length_stats(ctx, "{text_a} It was {mask}", exs, 20, "tail")
    assert res["n"] == 2 and res["truncated"] == 1 and res["lost"] == 0
    assert res["full_lengths"][1] > 20 >= max(res["lengths"])
    # fixed text longer than max_length: the example cannot be encoded, so its mask would be lost
    fixed = "{text_a} " + "very long fixed text " * 10 + "{mask}"
    lost = preview.length_stats(ctx, fixed, exs, 20, "tail")
    assert lost["lost"] == 2 and lost["lost_rows"][0]["row"] == 0


def test_length_stats_reuses_tokenized_texts(ctx):
    exs = [Example(text_a=f"review number {i}") for i in range(50)]
    preview.length_stats(ctx, "{text_a} It was {mask}", exs, 64)
    calls = []
    inner = ctx.model.tokenizer.inner
    ctx.model.tokenizer.inner = lambda *a, **k: calls.append(a) or inner(*a, **k)
    try:
        preview.length_stats(ctx, "{text_a} So it was {mask}", exs, 64)
    finally:
        ctx.model.tokenizer.inner = inner
    assert len(calls) == 1  # only the template's new text is tokenized, in one batch call


def test_the_cli_preview_is_the_studios_preview(ctx, capsys):
    """``python -m backend preview`` and the studio call one preview function: same tokens, same profile
    (the model's kind), and the studio's lint on every line, next to the keys scripts already read."""
    import json

    from backend.cli import main

    text, example = "{text_a} It was {mask}, I think.", "A fine film."
    assert main(["preview", "--template", text, "--example", json.dumps({"text_a": example})]) == 0
    line = json.loads(capsys.readouterr().out)
    studio = preview.preview(ctx, text, [_ex(0, example)], 256, "tail")
    assert {"guid", "parsed", "wrapped", "encoded"} <= set(line)
    assert line["encoded"]["profile"] == studio["profile"] == "causal"
    assert line["encoded"]["tokens"] == studio["examples"][0]["tokens"]
    assert line["lint"] == studio["lint"] and "after the mask is dropped" in line["lint"][0]["message"]
