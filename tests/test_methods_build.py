"""Every method on every model kind it applies to: builds, trains only its own parameters, reports
counts, and fails with a clear error where it cannot apply."""
from __future__ import annotations

import pytest
import torch

from backend.batching import EncodeSettings, collate, encode_examples
from backend.errors import ConfigError
from backend.methods import REGISTRY, parameter_counts
from backend.methods.build import build_tuned_model
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.verbalizer import parse_verbalizer
from tests.tiny import tiny_model

VERB = parse_verbalizer({"negative": ["bad"], "positive": ["good"]})
EXAMPLES = [Example(text_a="a fine movie", label="positive"), Example(text_a="terrible stuff", label="negative")]
TEMPLATES = {"masked": "{text_a} {soft} It was {mask}.", "causal": "{text_a} {soft} It was {mask}",
             "seq2seq": "{text_a} {soft} It was {mask}."}
NO_BIAS = {("causal", "bitfit"), ("seq2seq", "bitfit")}


@pytest.fixture(scope="module")
def toks(bert_tok, smol_tok):
    from tests.tiny import t5_like_tokenizer

    return {"masked": bert_tok, "causal": smol_tok, "seq2seq": t5_like_tokenizer()}


def _batch(tuned, tok, kind):
    encs = encode_examples(tuned.pm.template, EXAMPLES, tok, EncodeSettings(profile=kind))
    return collate(encs, describe_tokenizer(tok).pad_id)


@pytest.mark.parametrize("kind", ["masked", "causal", "seq2seq"])
@pytest.mark.parametrize("name", list(REGISTRY))
def test_method_trains_only_its_parameters(toks, kind, name):
    tok = toks[kind]
    lm = tiny_model(kind, tok)
    if (kind, name) in NO_BIAS:
        with pytest.raises(ConfigError, match="bias"):
            build_tuned_model(lm.model, tok, kind, TEMPLATES[kind], VERB, name)
        return
    tuned = build_tuned_model(lm.model, tok, kind, TEMPLATES[kind], VERB, name, sample_texts=["hello there"])
    counts = tuned.counts()
    trainable = dict(tuned.trainable())
    assert counts["trainable"] == sum(p.numel() for p in trainable.values())
    if name == "zero-shot":
        assert counts["trainable"] == 0
        return
    assert 0 < counts["percent"] <= 100
    if name != "full":
        assert counts["percent"] < 50
    before = {n: p.detach().clone() for n, p in tuned.pm.named_parameters()}
    logp = tuned.pm(_batch(tuned, tok, kind))
    assert logp.shape == (2, 2)
    torch.nn.functional.nll_loss(logp, torch.tensor([1, 0])).backward()
    opt = torch.optim.SGD([p for p in trainable.values()], lr=1.0)
    opt.step()
    changed = {n for n, p in tuned.pm.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "no parameter moved"
    assert changed <= set(trainable), f"frozen parameters changed: {sorted(changed - set(trainable))[:3]}"
    # the template's soft tokens train beside any delta
    assert any(n.startswith("soft_embedding") for n in trainable)


def test_unknown_option_and_bad_values_are_config_errors(bert_tok):
    lm = tiny_model("masked", bert_tok)
    with pytest.raises(ConfigError, match=r"method\.rank: unknown option"):
        build_tuned_model(lm.model, bert_tok, "masked", TEMPLATES["masked"], VERB, "lora", {"rank": 4})
    with pytest.raises(ConfigError, match="never random normal"):
        build_tuned_model(lm.model, bert_tok, "masked", TEMPLATES["masked"], VERB, "prompt-tuning",
                          {"init": "normal"})
    with pytest.raises(ConfigError, match="has none"):
        build_tuned_model(lm.model, bert_tok, "masked", "{text_a} It was {mask}.", VERB, "soft-prompt")


def test_prompt_tuning_starts_from_label_word_and_vocabulary_rows(bert_tok):
    lm = tiny_model("masked", bert_tok)
    emb = lm.model.get_input_embeddings().weight.detach().clone()
    tuned = build_tuned_model(lm.model, bert_tok, "masked", "{text_a} It was {mask}.", VERB, "prompt-tuning",
                              {"num_tokens": 5})
    rows = tuned.pm.soft_embedding.weight.detach()[1:6]
    labels = tuned.pm.label_rows.tolist()
    assert torch.equal(rows[0], emb[labels[0]]) and torch.equal(rows[1], emb[labels[1]])
    for r in rows[2:]:   # the rest are real vocabulary rows, never N(0, 1)
        assert bool((emb == r).all(-1).any())
    assert tuned.pm.template.num_soft_tokens == 5
    text = build_tuned_model(tiny_model("masked", bert_tok).model, bert_tok, "masked", "{text_a} {mask}.", VERB,
                             "prompt-tuning", {"num_tokens": 3, "init": "text", "init_text": "movie review"})
    ids = bert_tok(" movie review", add_special_tokens=False)["input_ids"]
    assert torch.equal(text.pm.soft_embedding.weight[1].detach(), emb[ids[0]])
    assert torch.equal(text.pm.soft_embedding.weight[3].detach(), emb[ids[0]])   # tiled


def test_p_tuning_encoder_starts_at_its_initial_rows(bert_tok):
    lm = tiny_model("masked", bert_tok)
    tpl = '{text_a} {"soft": "it was"} {"soft"} {mask}.'
    plain = build_tuned_model(tiny_model("masked", bert_tok).model, bert_tok, "masked", tpl, VERB, "soft-prompt")
    tuned = build_tuned_model(lm.model, bert_tok, "masked", tpl, VERB, "p-tuning", {"encoder": "lstm"})
    assert torch.allclose(tuned.pm.soft_embedding.weight, plain.pm.soft_embedding.weight)
    assert any("lstm" in n for n, _ in tuned.trainable())
    mlp = build_tuned_model(tiny_model("masked", bert_tok).model, bert_tok, "masked", "{text_a} {mask}.", VERB,
                            "p-tuning", {"encoder": "mlp", "num_tokens": 4})
    assert mlp.pm.template.num_soft_tokens == 4


def test_prefix_from_activations_equals_prepending_the_text(smol_tok):
    """Causal: the initial prefix is exactly the model's cache for real text, so the prefixed model's
    class scores equal the plain model's with that text actually prepended."""
    lm = tiny_model("causal", smol_tok)
    ref = tiny_model("causal", smol_tok)
    text = "a quick test of the prefix"
    ids = smol_tok(" " + text, add_special_tokens=False)["input_ids"]
    n = len(ids)
    tuned = build_tuned_model(lm.model, smol_tok, "causal", "{text_a} It was {mask}", VERB, "prefix-tuning",
                              {"num_tokens": n, "init_text": text})
    x = smol_tok(" nice film It was", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        full = ref.model(input_ids=torch.tensor([ids + x])).logits[0, -1]
        pm = tuned.pm
        batch = {"input_ids": torch.tensor([x]), "attention_mask": torch.ones(1, len(x), dtype=torch.long),
                 "soft_token_ids": torch.zeros(1, len(x), dtype=torch.long), "mask_pos": torch.tensor([len(x) - 1])}
        hidden = pm.mask_hidden(batch)
        got = hidden @ ref.model.get_output_embeddings().weight.T
    assert torch.allclose(got[0], full, atol=1e-4)


def test_soft_verbalizer_starts_at_the_manual_verbalizer(bert_tok):
    tpl = "{text_a} It was {mask}."
    words = build_tuned_model(tiny_model("masked", bert_tok).model, bert_tok, "masked", tpl, VERB, "lora")
    soft = build_tuned_model(tiny_model("masked", bert_tok).model, bert_tok, "masked", tpl, VERB, "lora",
                             {"head": "soft"})
    assert any(n.startswith("soft_verbalizer") for n, _ in soft.trainable())
    b = _batch(words, bert_tok, "masked")
    words.pm.eval(), soft.pm.eval()
    with torch.no_grad():
        assert torch.allclose(words.pm(b), soft.pm(b), atol=1e-5)
        soft.pm.soft_verbalizer.bias.add_(torch.tensor([5.0, -5.0]))   # the head is what scores the words
        assert soft.pm(b)[:, 0].gt(words.pm(b)[:, 0]).all()
    assert "soft_verbalizer.weight" in soft.pm.state_dict() and "soft_verbalizer.weight" not in words.pm.state_dict()


def test_parameter_counts_count_tied_weights_once(smol_tok):
    lm = tiny_model("causal", smol_tok)
    total = sum(p.numel() for p in {id(p): p for p in lm.model.parameters()}.values())
    assert parameter_counts(lm.model)["total"] == total


def _config_model(model_type: str, tok, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, vocab_size=len(tok), hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, head_dim=16,
                               pad_token_id=tok.pad_token_id, bos_token_id=None, eos_token_id=None, **extra)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("model_type, lora_on", [("smollm3", {"q_proj", "v_proj"}), ("phi3", {"qkv_proj"}),
                                                 ("llama", {"q_proj", "v_proj"})])
def test_lora_and_ia3_find_their_targets_where_peft_has_no_default(smol_tok, model_type, lora_on):
    """PEFT knows no target modules for SmolLM3 or Phi-3 and refused LoRA there unless the user named them;
    the attention's query/value projections are found by name instead (PEFT's own default for Llama)."""
    tuned = build_tuned_model(_config_model(model_type, smol_tok), smol_tok, "causal", "{text_a} It was{mask}",
                              VERB, "lora")
    trained = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name, _ in tuned.trainable()}
    assert trained == lora_on
    if model_type != "phi3":                       # phi3 fuses keys and values into qkv_proj: named explicitly
        ia3 = build_tuned_model(_config_model(model_type, smol_tok), smol_tok, "causal", "{text_a} It was{mask}",
                                VERB, "ia3")
        assert {name.split(".ia3_l")[0].rsplit(".", 1)[-1] for name, _ in ia3.trainable()} == \
            {"k_proj", "v_proj", "down_proj"}


def test_peft_without_targets_names_the_layers_to_choose_from(smol_tok):
    with pytest.raises(ConfigError, match=r"set method.target_modules to some of its linear layers: .*qkv_proj"):
        build_tuned_model(_config_model("phi3", smol_tok), smol_tok, "causal", "{text_a} It was{mask}", VERB, "ia3")
