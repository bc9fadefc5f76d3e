"""The shared-prefix path (causal LMs run the batch's common leading tokens once) must give the same
class scores and the same gradients as running every row in full."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from backend.batching import EncodeSettings, collate, encode_examples
from backend.methods.build import build_tuned_model
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.verbalizer import parse_verbalizer
from tests.tiny import tiny_model

VERB = parse_verbalizer({"negative": ["bad"], "positive": ["good"]})
EXAMPLES = [Example(text_a="a fine movie with a long tail of words", label="positive"),
            Example(text_a="terrible stuff", label="negative"),
            Example(text_a="not my cup of tea at all", label="negative")]
TEMPLATE = "Review of a film follows here. {text_a} Overall it was{mask}"


def _gpt2(tok):
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,   # train() must be exact
                                      bos_token_id=None, eos_token_id=None, pad_token_id=tok.pad_token_id)).eval()


def _scores_and_grads(plm, tok, method, share, checkpointing=False):
    tuned = build_tuned_model(copy.deepcopy(plm), tok, "causal", TEMPLATE, VERB, method,
                              {"checkpointing": checkpointing} if checkpointing else None)
    pm = tuned.pm.train()
    pm.share_prefix = share
    encs = encode_examples(pm.template, EXAMPLES, tok, EncodeSettings(profile="causal"))
    batch = collate(encs, describe_tokenizer(tok).pad_id)
    shared = pm.shared_prefix_length(batch)
    logp = pm(batch)
    torch.nn.functional.nll_loss(logp, torch.tensor([1, 0, 0])).backward()
    grads = {n: p.grad.clone() for n, p in tuned.trainable()}
    return logp.detach(), grads, shared


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["prompt-tuning", "lora", "p-tuning"])
def test_shared_prefix_matches_full_rows(smol_tok, arch, method):
    plm = tiny_model("causal", smol_tok).model if arch == "llama" else _gpt2(smol_tok)
    full, full_grads, none = _scores_and_grads(plm, smol_tok, method, share=False)
    fast, fast_grads, shared = _scores_and_grads(plm, smol_tok, method, share=True)
    # the fixed words ("Review of a film follows here."), after prompt tuning's / P-tuning's soft tokens
    assert none == 0 and shared == 7 + {"lora": 0, "prompt-tuning": 20, "p-tuning": 8}[method]
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)
    assert fast_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=1e-5, rtol=1e-3, msg=name)


def test_no_sharing_where_it_cannot_apply(smol_tok, bert_tok):
    plm = tiny_model("causal", smol_tok).model
    # Activation checkpointing drops the cache in transformers: the full path is used.
    _, _, shared = _scores_and_grads(plm, smol_tok, "prompt-tuning", share=True, checkpointing=True)
    assert shared == 0
    # PEFT's prefix tuning already puts its virtual tokens in front.
    _, _, shared = _scores_and_grads(plm, smol_tok, "prefix-tuning", share=True)
    assert shared == 0
    # Masked LMs attend both ways: the prefix depends on the rest.
    lm = tiny_model("masked", bert_tok)
    tuned = build_tuned_model(lm.model, bert_tok, "masked", "Review. {text_a} It was {mask}.", VERB, "zero-shot")
    encs = encode_examples(tuned.pm.template, EXAMPLES, bert_tok, EncodeSettings(profile="masked"))
    assert tuned.pm.shared_prefix_length(collate(encs, describe_tokenizer(bert_tok).pad_id)) == 0


def test_single_row_and_identical_rows(smol_tok):
    plm = tiny_model("causal", smol_tok).model
    tuned = build_tuned_model(plm, smol_tok, "causal", TEMPLATE, VERB, "zero-shot")
    pm = tuned.pm
    encs = encode_examples(pm.template, [EXAMPLES[0]] * 3, smol_tok, EncodeSettings(profile="causal"))
    batch = collate(encs, describe_tokenizer(smol_tok).pad_id)
    shared = pm.shared_prefix_length(batch)
    assert 0 < shared <= int(batch["mask_pos"].min())   # every row keeps at least its mask position
    with torch.no_grad():
        fast = pm(batch)
        pm.share_prefix = False
        full = pm(batch)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)
    assert pm.shared_prefix_length(collate(encs[:1], describe_tokenizer(smol_tok).pad_id)) == 0
