"""In-context demonstrations in the pure engine: the template block, wrap (demos before the input, label
words where the mask is, exactly one mask), encode (demos dropped whole, last first, before the input is
cut) and the selection (random: seeded per input; similar: the nearest rows by embedding)."""
from __future__ import annotations

import numpy as np
import pytest

from backend.errors import ConfigError, TemplateError
from backend.prompts.demos import Demo, DemoChooser, build_pool, input_key, select_demos
from backend.prompts.encode import encode, token_views
from backend.prompts.example import Example
from backend.prompts.parse import parse_template
from backend.prompts.template import compile_template
from backend.prompts.wrap import MASK_TEXT, wrap

CLASSES = ["negative", "positive"]
WORDS = ["bad", "good"]
POOL = [Example(guid=f"t{i}", text_a=t, label=lab) for i, (t, lab) in enumerate([
    ("a dull film", "negative"), ("a lovely film", "positive"), ("boring plot", "negative"),
    ("great acting", "positive"), ("awful pacing", "negative"), ("fine fun", "positive")])]
TEMPLATE = '{"demos": 1} {text_a} It was {mask}.'


def _demos() -> list[Demo]:
    return [Demo(POOL[1], "good", 1), Demo(POOL[0], "bad", 0)]


# ------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, k, sep", [
    ('{"demos": 2} {text_a} {mask}', 2, "\n"), ("{demos} {text_a} {mask}", 1, "\n"),
    ("{demos:3}{text_a} {mask}", 3, "\n"), ('{"demos"} {text_a} {mask}', 1, "\n"),
    ('{"demos": 0, "separator": " | "} {text_a} {mask}', 0, " | ")])
def test_the_demos_block_parses(text, k, sep):
    block = parse_template(text).demos
    assert block is not None and block.value == k and block.separator == sep


@pytest.mark.parametrize("text, needle", [
    ('{"demos": 17} {text_a} {mask}', "0 to 16"), ('{"demos": -1} {text_a} {mask}', "0 to 16"),
    ('{"demos": True} {text_a} {mask}', "0 to 16"), ('{"demos": "two"} {text_a} {mask}', "0 to 16"),
    ("{demos:x} {text_a} {mask}", "whole number"), ("{demos:99999999} {text_a} {mask}", "whole number"),
    ('{"demos": 1, "separator": 5} {text_a} {mask}', "separator must be a string"),
    ('{text_a} {"mask": None, "separator": " "}', "separator applies only"),
    ("{demos} {demos} {text_a} {mask}", "at most one demonstrations block"),
    ("{demos} {text_a} {mask} {mask}", "exactly one mask"),
    ('{"demos": 1, "shortenable": True} {text_a} {mask}', "never be shortened")])
def test_bad_demos_blocks_are_template_errors_with_their_span(text, needle):
    with pytest.raises(TemplateError) as err:
        parse_template(text)
    assert needle in err.value.message
    start, end = err.value.span
    assert "demos" in text[start:end] or "separator" in text[start:end]


# ---------------------------------------------------------------------------------------------- wrap

def test_demos_come_before_the_input_with_label_words_in_place_of_the_mask():
    w = wrap(TEMPLATE, Example(text_a="so so"), _demos())
    text = "".join(p.text or "" for p in w.pieces)
    assert text == " a lovely film It was good.\n a dull film It was bad.\n so so It was<mask>."
    assert [p.loss_ids for p in w.pieces].count(1) == 1             # exactly one mask: the input's
    assert all(p.loss_ids == 0 and p.text != MASK_TEXT and p.shortenable_ids == 0 for p in w.pieces if p.demo >= 0)
    assert [p.demo for p in w.pieces if p.kind == "label"] == [0, 1]
    first_input = next(i for i, p in enumerate(w.pieces) if p.demo < 0)
    assert all(p.demo >= 0 for p in w.pieces[:first_input])


def test_label_word_spacing_follows_the_verbalizer_rule():
    w = wrap("{demos}Review: {text_a}\nSentiment:\n{mask}", Example(text_a="x"), _demos()[:1])
    assert [p.text for p in w.pieces if p.kind == "label"] == ["good"]     # text before the mask ends in \n


def test_no_demos_renders_the_block_as_nothing():
    plain = wrap("{text_a} It was {mask}.", Example(text_a="so so"))
    empty = wrap("{demos}{text_a} It was {mask}.", Example(text_a="so so"))
    assert [p.text for p in empty.pieces] == [p.text for p in plain.pieces]


def test_demos_without_a_block_are_refused():
    with pytest.raises(TemplateError, match="no demos block"):
        wrap("{text_a} It was {mask}.", Example(text_a="x"), _demos())


# -------------------------------------------------------------------------------------------- encode

@pytest.mark.parametrize("profile", ["masked", "causal"])
def test_truncation_drops_whole_demos_from_the_end_before_the_input(profile, bert_tok, smol_tok):
    tok = bert_tok if profile == "masked" else smol_tok
    tpl = compile_template(TEMPLATE, tok)
    ex = Example(text_a="the input itself is a rather long sentence about a film")
    w = wrap(tpl, ex, _demos())
    full = encode(w, tok, profile=profile, max_length=512)
    alone = encode(wrap(tpl, ex), tok, profile=profile, max_length=512)
    assert full.dropped_demos == () and full.length > alone.length
    demo1 = [i for i, d in enumerate(full.piece_demo) if d == 1]
    size1 = sum(1 for pi in full.piece_index if pi in demo1)
    one_dropped = encode(w, tok, profile=profile, max_length=full.length - 1)
    assert one_dropped.dropped_demos == (1,) and one_dropped.dropped == ()     # the input is intact
    assert one_dropped.length == full.length - size1
    assert len(one_dropped.demo_dropped) == size1
    both = encode(w, tok, profile=profile, max_length=alone.length)
    assert both.dropped_demos == (0, 1) and both.dropped == () and both.input_ids == alone.input_ids
    cut = encode(w, tok, profile=profile, max_length=alone.length - 2)
    assert cut.dropped_demos == (0, 1) and cut.n_truncated == 2        # only then is the input cut
    views = token_views(cut, tok)
    gone = [v for v in views if v.truncated and v.demo >= 0]
    assert len(gone) == full.length - alone.length and {v.demo for v in gone} == {0, 1}
    assert all(not v.truncated for v in views if v.mask or v.read)
    shown = token_views(full, tok)
    assert {v.demo for v in shown} == {-1, 0, 1} and sum(v.mask or v.read for v in shown) == 1


# ----------------------------------------------------------------------------------------- selection

def test_random_selection_is_seeded_per_input_and_takes_k_per_class():
    pool = build_pool(POOL, CLASSES, WORDS)
    queries = [Example(text_a="q one"), Example(text_a="q two")]
    a = select_demos(pool, queries, 2, "random", seed=1)
    assert a == select_demos(pool, queries, 2, "random", seed=1)
    assert a[1:] == select_demos(pool, queries[1:], 2, "random", seed=1)     # order of inputs does not matter
    for ds in a:
        assert sorted(d.word for d in ds) == ["bad", "bad", "good", "good"]
        assert all(d.word == WORDS[CLASSES.index(d.example.label)] and POOL[d.row] == d.example for d in ds)
    seeds = {tuple(d.row for d in select_demos(pool, queries, 1, "random", seed=s)[0]) for s in range(20)}
    assert len(seeds) > 1


def test_a_class_with_fewer_rows_than_k_gives_what_it_has():
    pool = build_pool(POOL[:3], CLASSES, WORDS)
    (ds,) = select_demos(pool, [Example(text_a="q")], 5, "random")
    assert sorted(d.row for d in ds) == [0, 1, 2]


def _stub_embed(texts: list[str]) -> np.ndarray:
    """A tiny deterministic embedding: a bag of letters, normalised."""
    out = np.zeros((len(texts), 26), dtype=np.float32)
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_similar_selection_picks_the_nearest_row_of_each_class():
    pool = build_pool(POOL, CLASSES, WORDS, embed=_stub_embed)
    q = Example(text_a="boring plots")
    (ds,) = select_demos(pool, [q], 1, "similar")
    sims = _stub_embed([q.text_a]) @ _stub_embed([e.text_a for e in POOL]).T
    best = {c: max((r for r, e in enumerate(POOL) if e.label == c), key=lambda r: sims[0, r]) for c in CLASSES}
    assert {d.row for d in ds} == set(best.values())
    assert ds[0].row == best["negative"]            # most similar first (dropped last)


def test_similar_needs_an_embedder():
    with pytest.raises(ConfigError, match="sentence embedder"):
        select_demos(build_pool(POOL, CLASSES, WORDS), [Example(text_a="q")], 1, "similar")
    with pytest.raises(ConfigError, match="random, similar"):
        select_demos(build_pool(POOL, CLASSES, WORDS), [Example(text_a="q")], 1, "nearest")


def test_an_input_is_never_its_own_demonstration():
    pool = build_pool(POOL, CLASSES, WORDS, embed=_stub_embed)
    for sel in ("random", "similar"):
        for q in POOL:
            for ds in select_demos(pool, [Example(text_a=q.text_a, label="whatever")], 3, sel):
                assert all(input_key(d.example) != input_key(q) for d in ds)


def test_the_pool_leaves_out_rows_identical_to_an_evaluation_row():
    dev = [Example(text_a="great acting", label="negative"), Example(text_a="new row", label="positive")]
    chooser = DemoChooser(build_pool(POOL, CLASSES, WORDS, exclude=dev), k=3)
    assert chooser.describe()["excluded_rows"] == [3] and chooser.pool.usable == 5
    for ds in chooser([Example(text_a=f"q{i}") for i in range(10)]):
        assert 3 not in {d.row for d in ds}
