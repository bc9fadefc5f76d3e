"""Template parser: OpenPrompt defaults, the short form, soft-token numbering and every error's span."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from backend.errors import TemplateError
from backend.prompts.example import Example
from backend.prompts.template import compile_template, parse_template
from backend.prompts.wrap import wrap


def test_short_form_means_the_same_segments():
    long = parse_template('{"placeholder":"text_a"} {"placeholder":"text_b"} Topic: {"meta":"title"} {"mask"}')
    short = parse_template("{text_a} {text_b} Topic: {meta:title} {mask}")
    assert long.to_openprompt() == short.to_openprompt()


def test_defaults_placeholders_shortenable_meta_not_mask_carries_loss():
    tpl = compile_template('{text_a} {meta:t} {mask} {"meta":"d","shortenable":True}')
    w = wrap(tpl, Example(text_a="x", meta={"t": "T", "d": "D"}))
    assert [p.shortenable_ids for p in w.pieces] == [1, 0, 0, 1]
    assert [p.loss_ids for p in w.pieces] == [0, 0, 1, 0]


def test_soft_short_form_and_shared_ids():
    tpl = compile_template('{soft} {soft:It was} {"soft": None, "soft_id": 7} {"soft_id": 7} {mask}')
    ids = [p.soft_token_id for p in tpl.parts if p.kind == "soft"]
    assert ids == [1, 2, 3, 3]  # 'It was' stays one soft token without a tokenizer; soft_id 7 is shared
    assert tpl.num_soft_tokens == 3


def test_duplicate_same_works_where_openprompt_crashed():
    tpl = compile_template('{"soft": None, "duplicate": 3, "same": True} {text_a} {mask}')
    assert [p.soft_token_id for p in tpl.parts if p.kind == "soft"] == [1, 1, 1]
    tpl = compile_template('{"soft": None, "duplicate": 3} {text_a} {mask}')
    assert [p.soft_token_id for p in tpl.parts if p.kind == "soft"] == [1, 2, 3]


def test_the_soft_tokens_of_the_whole_template_are_capped():
    # each block's duplicate is capped at 1024, but 400 such blocks fit in a template's characters and used
    # to expand into 409,600 soft parts (1.6 s, 80 MB) before the model allocated an embedding row for each
    block = '{"soft": None, "duplicate": 1024}'
    compile_template(block * 4 + " {text_a} {mask}")                        # 4,096: the limit itself
    with pytest.raises(TemplateError, match="over 4,096 soft tokens") as info:
        compile_template(block * 400 + " {text_a} {mask}")
    assert info.value.span == (4 * len(block), 5 * len(block))              # the block that went over
    reused = '{"soft": None, "duplicate": 1024, "soft_id": 7}' + ' {"soft_id": 7}' * 1000 + " {mask}"
    with pytest.raises(TemplateError, match="over 4,096 soft tokens"):
        compile_template(reused)


def test_post_processing_is_a_named_whitelist():
    tpl = compile_template('{"placeholder":"text_a","post_processing":["strip","rstrip_punct"]} {mask}')
    assert wrap(tpl, Example(text_a="  Great film!! ")).pieces[0].text == "Great film"
    with pytest.raises(TemplateError, match="code is not allowed"):
        parse_template('{"placeholder":"text_a","post_processing": lambda x: x.strip()} {mask}')


@pytest.mark.parametrize("text, fragment, span", [
    ('{"placeholder":"text_a" It was {"mask"}', "never closed", (0, 39)),
    ('{"placeholder": } {mask}', "cannot read", (0, 17)),
    ('{text_a} It was {"mask"', "never closed", (16, 23)),
    ('{text_a} It was } {mask}', "without a matching", (16, 17)),
    ('{"placehoder":"text_a"} {mask}', "did you mean 'placeholder'", (0, 23)),
    ('{"placeholder":"text_c"} {mask}', "unknown placeholder 'text_c'", (0, 24)),
    ('{text_a} It was great.', "no {\"mask\"}", (0, 22)),
    ('{"soft": None, "soft_id": 0} {mask}', "soft_id must be an integer >= 1", (0, 28)),
    ('{txt_a} {mask}', "did you mean 'text_a'", (0, 7)),
    ('{} {mask}', "empty", (0, 2)),
    ('{"mask", "text": "x"} ', "cannot read", (0, 21)),
    ('{"text": "a", "meta": "b"} {mask}', "only one of", (0, 26)),
    ('{"placeholder": "text_a", "post_processing": "shout"} {mask}', "unknown post_processing", (0, 53)),
    ('{"mask", "shortenable": True}', "cannot read", (0, 29)),
])
def test_errors_name_the_problem_and_span(text, fragment, span):
    with pytest.raises(TemplateError) as err:
        parse_template(text)
    assert fragment in err.value.message
    assert err.value.span == span


def test_unknown_meta_field_at_wrap_names_the_fields():
    tpl = compile_template("{meta:title} {mask}")
    with pytest.raises(TemplateError, match="no meta field 'title'.*fields: body"):
        wrap(tpl, Example(meta={"body": "x"}))


def test_braces_inside_strings_are_text():
    tpl = compile_template('{"text": "a {b} c"} {text_a} {mask}')
    assert wrap(tpl, Example(text_a="x")).pieces[0].text == "a {b} c"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}"\': ,maskplceholdrtx_abNTFu0123[]()\\\n')), max_size=60))
def test_random_strings_raise_only_template_error(text):
    try:
        tpl = compile_template(text)
        wrap(tpl, Example(text_a="a", text_b="b", meta={}))
    except TemplateError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_unicode_raises_only_template_error(text):
    try:
        parse_template(text)
    except TemplateError:
        pass


def test_a_block_written_as_json_reads_and_unreadable_ones_say_why():
    """``true``/``null`` (JSON) used to be "cannot read this {...} block (ValueError)"."""
    json_form = parse_template('{"placeholder": "text_a", "shortenable": false} It was {"mask"}.')
    python_form = parse_template('{"placeholder": "text_a", "shortenable": False} It was {"mask"}.')
    assert json_form.segments == python_form.segments and json_form.segments[0].shortenable is False
    assert parse_template('{"soft": null} {text_a} {mask}').segments == \
        parse_template('{"soft": None} {text_a} {mask}').segments
    for text, why, span in (('{text_a} It was {{mask}}.', "doubled braces: write {mask}, not {{mask}}", (16, 24)),
                            ('{"placeholder": text_a} {mask}', "'text_a' is not in quotes", (0, 23))):
        with pytest.raises(TemplateError) as err:
            parse_template(text)
        assert why in err.value.message and "ValueError" not in err.value.message and err.value.span == span
