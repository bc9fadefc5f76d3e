"""Encoding profiles, truncation rules and token views on real tokenizers."""
from __future__ import annotations

import pytest

from backend.errors import EncodingError
from backend.prompts.encode import encode, token_views, truncate_parts
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.wrap import wrap
from tests.tiny import t5_like_tokenizer

LONG = "the film was badly made and the plot made no sense at all " * 6


def _enc(tok, template, ex, **kw):
    return encode(wrap(compile_template(template, tok), ex), tok, **kw)


def test_masked_profile_puts_mask_in_place(bert_tok):
    enc = _enc(bert_tok, "{text_a} It was {mask}.", Example(text_a="Good."), profile="masked")
    toks = bert_tok.convert_ids_to_tokens(list(enc.input_ids))
    assert toks[enc.mask_positions[0]] == "[MASK]"
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    assert enc.loss_ids[0] == -100 and enc.loss_ids[enc.mask_positions[0]] == 1


def test_causal_reads_after_last_token_and_drops_text_after_mask(smol_tok):
    enc = _enc(smol_tok, "{text_a} It was {mask}. Really.", Example(text_a="Good."), profile="causal")
    toks = smol_tok.convert_ids_to_tokens(list(enc.input_ids))
    assert toks[-1] == "Ġwas" and enc.mask_positions == (len(toks) - 1,)
    assert enc.warnings and "dropped" in enc.warnings[0]
    assert "Really" not in "".join(toks)


def test_causal_template_starting_with_mask_is_an_error(smol_tok):
    with pytest.raises(EncodingError, match="starts with the mask"):
        _enc(smol_tok, "{mask} : {text_a}", Example(text_a="x"), profile="causal")


def test_seq2seq_uses_sentinel_and_decoder_prefix():
    tok = t5_like_tokenizer()
    enc = _enc(tok, "{text_a} It was {mask}.", Example(text_a="Good."), profile="seq2seq")
    sentinel = tok.convert_tokens_to_ids("<extra_id_0>")
    assert sentinel in enc.input_ids
    assert enc.decoder_input_ids == (tok.pad_token_id, sentinel)
    assert enc.mask_positions == (1,)


@pytest.mark.parametrize("method", ["tail", "head", "balanced"])
@pytest.mark.parametrize("profile", ["masked", "causal"])
def test_truncation_never_cuts_mask_or_soft_and_fits(bert_tok, smol_tok, method, profile):
    tok = bert_tok if profile == "masked" else smol_tok
    tpl = '{soft:Review} {text_a} {soft} and {text_b} It was {mask}'
    enc = _enc(tok, tpl, Example(text_a=LONG, text_b=LONG), profile=profile, max_length=40, truncate=method)
    assert enc.length <= 40
    assert enc.n_truncated > 0
    assert sum(1 for s in enc.soft_token_ids if s) == 2
    assert enc.mask_positions


def test_truncation_error_when_fixed_parts_too_long(bert_tok):
    with pytest.raises(EncodingError, match="fixed parts need"):
        _enc(bert_tok, "A very long fixed instruction that goes on and on {text_a} {mask}", Example(text_a="x"),
             profile="masked", max_length=8)


def test_truncate_parts_matches_openprompt_rules():
    parts = [[1, 2, 3, 4], [9], [5, 6]]
    short = [True, False, True]
    assert truncate_parts(parts, short, 3, "tail") == [[1, 2, 3], [9], []]
    assert truncate_parts(parts, short, 3, "head") == [[1], [9], [5, 6]]
    assert truncate_parts(parts, short, 3, "balanced") == [[1, 2], [9], [5]]


def test_token_views_show_truncated_tokens_in_place(bert_tok):
    enc = _enc(bert_tok, "{text_a} It was {mask}", Example(text_a=LONG), profile="masked", max_length=20)
    views = token_views(enc, bert_tok)
    cut = [v for v in views if v.truncated]
    assert len(cut) == enc.n_truncated
    first_cut = views.index(cut[0])
    assert views[first_cut - 1].piece == cut[0].piece and not views[first_cut - 1].truncated
    assert sum(1 for v in views if not v.truncated) == enc.length


def test_encode_cache_hits_only_identical_inputs(bert_tok):
    from backend.batching import EncodeCache, EncodeSettings, encode_examples

    cache = EncodeCache()
    exs = [Example(text_a="good"), Example(text_a="bad"), Example(text_a="good")]
    st = EncodeSettings(profile="masked", max_length=32)
    a = encode_examples(compile_template("{text_a} It was {mask}", bert_tok), exs, bert_tok, st, cache=cache)
    assert (cache.misses, cache.hits) == (2, 1) and a[0] == a[2]
    b = encode_examples(compile_template("{text_a} It is {mask}", bert_tok), exs[:1], bert_tok, st, cache=cache)
    assert cache.misses == 3 and b[0].input_ids != a[0].input_ids
    c = encode_examples(compile_template("{text_a} It was {mask}", bert_tok), exs[:1], bert_tok,
                        EncodeSettings(profile="masked", max_length=5), cache=cache)
    assert cache.misses == 4 and c[0].length == 5 and c[0].n_truncated == 1


def test_the_tokenizer_cache_tokenizes_like_the_engine_and_is_shared(bert_tok):
    """One tokenizer cache: by default it gives what ``encode`` asks for (no special tokens), and
    ``encode_examples`` fills the cache it is given instead of wrapping it in a second one."""
    from backend.batching import EncodeSettings, encode_examples
    from backend.prompts.tokencache import MemoTokenizer

    memo = MemoTokenizer(bert_tok)
    assert memo("a fine film")["input_ids"] == bert_tok("a fine film", add_special_tokens=False)["input_ids"]
    assert memo("a fine film", add_special_tokens=True)["input_ids"] == bert_tok("a fine film")["input_ids"]
    template = compile_template("{text_a} It was {mask}.", bert_tok)
    encode_examples(template, [Example(text_a="an unseen review")], memo, EncodeSettings(profile="masked"))
    assert "an unseen review" in memo._memo
