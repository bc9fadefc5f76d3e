"""KPT offline: neighbours come from the model's own embeddings, a word goes to its closest class,
seeds survive refinement, and the low-prior words are the ones dropped."""
from __future__ import annotations

import torch

from backend.batching import EncodeSettings
from backend.pipeline import build_verbalizer
from backend.prompts.example import Example
from backend.workbench.kpt import expand_words, knowledgeable_verbalizer
from tests.tiny import tiny_model


def _id(tok, word: str) -> int:
    (i,) = tok(" " + word, add_special_tokens=False)["input_ids"]
    return i


def test_neighbours_are_embedding_neighbours_and_each_word_has_one_class(smol_tok):
    torch.manual_seed(0)
    emb = torch.randn(len(smol_tok), 16)
    pos, neg = torch.randn(16), torch.randn(16)
    for w in ("good", "great", "superb"):
        emb[_id(smol_tok, w)] = pos + 0.01 * torch.randn(16)
    for w in ("bad", "awful"):
        emb[_id(smol_tok, w)] = neg + 0.01 * torch.randn(16)
    emb[_id(smol_tok, "fine")] = 0.6 * pos + 0.4 * neg          # closer to the positive seeds
    out = expand_words(smol_tok, emb, {"pos": ["good"], "neg": ["bad"]}, " ", neighbours=4,
                       extra={"neg": ["dreadful"]})
    pos_words, neg_words = [w for w, _ in out["pos"]], [w for w, _ in out["neg"]]
    assert pos_words[0] == "good" and {"great", "superb", "fine"} <= set(pos_words)
    assert neg_words[:2] == ["bad", "dreadful"] and "awful" in neg_words
    assert not set(pos_words) & set(neg_words)


def test_refined_verbalizer_keeps_seeds_and_drops_the_rarest(smol_tok):
    torch.manual_seed(0)
    lm = tiny_model("causal", smol_tok)
    rows = [Example(guid=i, text_a=t) for i, t in enumerate(["a fine film", "dull", "loved it", "meh"])]
    res = knowledgeable_verbalizer(lm, "{text_a} It was {mask}.", {"neg": ["bad"], "pos": ["good"]}, rows,
                                   settings=EncodeSettings(profile="causal", max_length=32), neighbours=8)
    words = res.verbalizer["label_words"]
    assert words["neg"][0] == "bad" and words["pos"][0] == "good"
    for cls, seed in (("neg", "bad"), ("pos", "good")):
        prior = dict(res.priors[cls])
        assert res.dropped[cls], "refinement dropped nothing"
        kept_rest = [prior[w] for w in words[cls] if w != seed]
        assert max(prior[w] for w in res.dropped[cls]) <= min(kept_rest)   # the rarest go
    verb = build_verbalizer(res.verbalizer, ["neg", "pos"])
    assert verb.aggregate == "mean" and len(verb.words[0]) > 1
