"""The memory/speed paths must not change results: the lean attention and MLP give what transformers'
own modules give, packed rows give what padded rows give (scores and gradients), and the heap setting
really hands freed buffers back."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import backend.prompt_model as prompt_model
from backend.batching import EncodeSettings, collate, encode_examples, pack_rows
from backend.errors import ConfigError
from backend.methods.build import build_tuned_model, enable_checkpointing
from backend.models.lean import (LEAN_SDPA, LeanGatedMLP, lean_sdpa_forward, make_lean, row_attention, rows_sdpa,
                                 use_lean_attention, use_lean_mlp)
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.verbalizer import parse_verbalizer
from tests.tiny import tiny_model

VERB = parse_verbalizer({"negative": ["bad", "awful"], "positive": ["good"]})
EXAMPLES = [Example(text_a="a fine movie with a long tail of words that goes on and on", label="positive"),
            Example(text_a="terrible stuff", label="negative"),
            Example(text_a="not my cup of tea at all", label="negative"),
            Example(text_a="fun", label="positive")]
LABELS = torch.tensor([1, 0, 0, 1])


# ------------------------------------------------------------------------------------------ pack_rows

def test_pack_rows_balances_bins_and_keeps_every_row_once():
    lengths = [30, 5, 22, 9, 17, 40, 3, 12]
    packs = pack_rows(lengths, capacity=50)
    assert sorted(r for p in packs for r in p) == list(range(len(lengths)))
    assert all(p == sorted(p) for p in packs)
    loads = [sum(lengths[r] for r in p) for p in packs]
    assert len(packs) == 3 and max(loads) - min(loads) <= 5      # 138 tokens in 3 nearly equal bins
    assert pack_rows(lengths, capacity=50) == packs                # deterministic
    assert pack_rows(lengths, capacity=1000) == [list(range(8))]   # all fit: one pack
    assert pack_rows([7], capacity=3) == [[0]]                     # a row longer than the capacity


# ------------------------------------------------------------------------------------------ lean model

def _llama(pad_id: int, vocab: int = 300, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, pad_token_id=pad_id, bos_token_id=None, eos_token_id=None)).eval()


def _logits_and_grads(model: torch.nn.Module, ids: torch.Tensor, att: torch.Tensor):
    model.zero_grad(set_to_none=True)
    model.requires_grad_(True)
    logits = model(input_ids=ids, attention_mask=att).logits
    (logits * att[..., None]).square().mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_lean_model_gives_the_stock_outputs_and_gradients():
    stock = _llama(pad_id=0)
    lean = copy.deepcopy(stock)
    make_lean(lean)
    assert lean.config._attn_implementation == LEAN_SDPA
    assert sum(isinstance(m, LeanGatedMLP) for m in lean.modules()) == 2
    assert list(lean.state_dict()) == list(stock.state_dict())        # same names: PEFT targets, checkpoints
    ids = torch.randint(1, 300, (3, 11), generator=torch.Generator().manual_seed(1))
    att = torch.ones_like(ids)
    att[1, 7:] = 0                                                     # padding: the masked SDPA path
    att[2, 3:] = 0
    want, want_grads = _logits_and_grads(stock, ids, att)
    got, got_grads = _logits_and_grads(lean, ids, att)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, atol=1e-6, rtol=1e-4, msg=name)
    with torch.inference_mode():                                      # evaluation's in-place SiLU product
        torch.testing.assert_close(lean(input_ids=ids, attention_mask=att).logits,
                                   stock(input_ids=ids, attention_mask=att).logits, atol=1e-5, rtol=1e-4)


def test_lean_paths_leave_other_models_alone(bert_tok):
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=4))
    assert use_lean_attention(gpt2) and use_lean_mlp(gpt2) == 0          # rows back to back; no gated MLP
    bert = tiny_model("masked", bert_tok).model
    assert bert.config._attn_implementation != LEAN_SDPA                # attention both ways: nothing to gain
    mha = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                       num_key_value_heads=4, intermediate_size=64))
    assert use_lean_attention(mha) and use_lean_mlp(mha) == 1           # every head has its own keys; rows
    opt = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "opt", vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, ffn_dim=64,
        word_embed_proj_dim=32), attn_implementation="sdpa")
    assert not use_lean_attention(opt)                                  # not known to take row position ids
    eager = AutoModelForCausalLM.from_config(mha.config, attn_implementation="eager")
    assert not use_lean_attention(eager)


# ------------------------------------------------------------------------------------------ packing

def _gpt2(tok):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                                       eos_token_id=None, pad_token_id=tok.pad_token_id)).eval()
    make_lean(model)     # as the loader builds it
    return model


def _run(plm, tok, template, method, *, pack: bool, share: bool = True, checkpointing: bool = False):
    tuned = build_tuned_model(copy.deepcopy(plm), tok, "causal", template, VERB, method)
    if checkpointing:
        enable_checkpointing(tuned.pm)
    pm = tuned.pm.train()
    pm.pack, pm.share_prefix = pack, share
    batch = collate(encode_examples(pm.template, EXAMPLES, tok, EncodeSettings(profile="causal")),
                    describe_tokenizer(tok).pad_id)
    packs = pm.packing(batch, pm.shared_prefix_length(batch))
    logp = pm(batch)
    grads = {}
    if method != "zero-shot":
        torch.nn.functional.nll_loss(logp, LABELS).backward()
        grads = {n: p.grad.clone() for n, p in tuned.trainable()}
    return logp.detach(), grads, packs


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], atol=1e-5, rtol=1e-3, msg=name)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "llama-masked-packs"])
@pytest.mark.parametrize("method", ["zero-shot", "prompt-tuning", "p-tuning", "lora", "soft-prompt",
                                    "prefix-tuning"])
@pytest.mark.parametrize("share", [True, False])
def test_packed_rows_match_padded_rows(smol_tok, arch, method, share):
    plm = _gpt2(smol_tok) if arch == "gpt2" else tiny_model("causal", smol_tok).model
    if arch == "llama-masked-packs":
        plm.set_attn_implementation("sdpa")           # transformers' own attention: packs under a 4D mask
    # text after the mask is cut from packed rows; a soft token in the middle for soft-prompt
    template = ("Review follows. {text_a} " + ('{"soft": "so"} ' if method == "soft-prompt" else "")
                + "Overall it was{mask} indeed.")
    padded = _run(plm, smol_tok, template, method, pack=False, share=share)
    packed = _run(plm, smol_tok, template, method, pack=True, share=share)
    assert padded[2] is None and packed[2] == [[0, 1, 2, 3]]
    # our attention: one sequence, attended row by row; transformers' own: a pack under a block mask
    assert (plm.config._attn_implementation == LEAN_SDPA) == (arch != "llama-masked-packs")
    _assert_same(packed, padded)


@pytest.mark.parametrize("method", ["lora", "prompt-tuning"])
def test_packed_rows_match_padded_rows_under_checkpointing(smol_tok, method):
    """Checkpointed layers recompute their forward in the backward pass, with the row layout they were
    given (it travels as a keyword through transformers' checkpointing)."""
    plm = tiny_model("causal", smol_tok).model
    template = "Review follows. {text_a} Overall it was{mask} indeed."
    padded = _run(plm, smol_tok, template, method, pack=False)
    packed = _run(plm, smol_tok, template, method, pack=True, checkpointing=True)
    assert packed[2] == [[0, 1, 2, 3]]
    _assert_same(packed, padded)


def test_prefix_tuning_refuses_checkpointing(smol_tok):
    """transformers' checkpointed layers drop past keys/values: the prefix would train unseen."""
    with pytest.raises(ConfigError, match="method.checkpointing: prefix tuning cannot run with gradient"):
        build_tuned_model(tiny_model("causal", smol_tok).model, smol_tok, "causal", "{text_a} It was{mask}", VERB,
                          "prefix-tuning", {"checkpointing": True})


@pytest.mark.parametrize("masked", [True, False])
def test_bf16_training_attention_on_cpu_goes_through_matmuls(masked, monkeypatch):
    """Padded rows (a padding mask, or none: causal) under bf16 autocast with gradients: the matmul path,
    which gives what SDPA gives in float32 (within bf16's precision) and passes gradients back."""
    import types

    import backend.models.lean as lean

    calls = []
    real_math = lean._math_attention
    monkeypatch.setattr(lean, "_math_attention", lambda *a: calls.append(1) or real_math(*a))
    torch.manual_seed(0)
    rows, heads, kv, width, dim = 3, 4, 2, 6, 8
    q32 = torch.randn(rows, heads, width, dim)
    k, v = torch.randn(rows, kv, width, dim), torch.randn(rows, kv, width, dim)
    lengths = torch.tensor([6, 2, 4])
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = (causal[None] & (torch.arange(width)[None, None, :] < lengths[:, None, None]))[:, None] if masked else None
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    q = q32.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = lean_sdpa_forward(module, q, k, v, mask)
    assert calls == [1] and out.shape == (rows, width, heads, dim)
    reference = torch.nn.functional.scaled_dot_product_attention(
        q32, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=causal if mask is None else mask)
    for r, n in enumerate(lengths.tolist() if masked else [width] * rows):   # padding queries are never read
        torch.testing.assert_close(out[r, :n].float(), reference.transpose(1, 2)[r, :n], atol=3e-2, rtol=3e-2)
    out.float().sum().backward()
    assert q.grad is not None and bool(torch.isfinite(q.grad).all())
    with torch.no_grad():                                        # no backward pass: the flash kernel, as before
        lean_sdpa_forward(module, q32, k, v, mask)
    assert calls == [1]
    monkeypatch.setattr(lean, "MATH_ATTENTION_MAX_SCORES", rows * heads * width * width - 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):            # too large to keep whole: the flash kernel
        lean_sdpa_forward(module, q32.clone().requires_grad_(), k, v, mask)
    assert calls == [1]


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "bf16-autocast"])
@pytest.mark.parametrize("prefix", [0, 3])
def test_row_attention_is_each_row_attending_alone(prefix, precision, monkeypatch):
    """Rows of 4, 1 and 3 tokens back to back after a prefix: each row's output is that row's own causal
    attention over the prefix and its tokens (grouped heads: 4 query heads, 2 key/value heads). In bf16
    on a CPU, training takes the matmul path (the flash kernel's bf16 backward is ~4x slower there)."""
    import backend.models.lean as lean

    math_calls = []
    real_math = lean._math_attention
    monkeypatch.setattr(lean, "_math_attention", lambda *a: math_calls.append(1) or real_math(*a))
    torch.manual_seed(0)
    lengths, heads, kv, dim = [4, 1, 3], 4, 2, 8
    total = sum(lengths)
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    q32 = torch.randn(1, heads, total, dim)
    k, v = torch.randn(1, kv, prefix + total, dim), torch.randn(1, kv, prefix + total, dim)
    q = q32.to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
        out = rows_sdpa(q, k.to(dtype), v.to(dtype), row_attention(lengths, prefix))
    assert len(math_calls) == (precision != "float32")
    assert out.shape == (1, total, heads, dim)
    tol = {} if precision == "float32" else {"atol": 3e-2, "rtol": 3e-2}
    start = 0
    for n in lengths:
        keys = torch.cat([k[:, :, :prefix], k[:, :, prefix + start:prefix + start + n]], dim=2)
        values = torch.cat([v[:, :, :prefix], v[:, :, prefix + start:prefix + start + n]], dim=2)
        allowed = torch.ones(n, prefix + n, dtype=torch.bool).tril(prefix)
        alone = torch.nn.functional.scaled_dot_product_attention(
            q32[:, :, start:start + n], keys.repeat_interleave(2, 1), values.repeat_interleave(2, 1), attn_mask=allowed)
        torch.testing.assert_close(out[:, start:start + n].float(), alone.transpose(1, 2), **tol)
        start += n
    out.sum().backward()                       # gradients flow back through the re-laying
    assert q.grad is not None and bool(q.grad.abs().sum() > 0)


def test_several_packs_match_padded_rows(smol_tok, monkeypatch):
    plm = tiny_model("causal", smol_tok).model
    plm.set_attn_implementation("sdpa")      # packs under a block-diagonal mask: transformers' own attention
    template = "Review follows. {text_a} Overall it was{mask}"
    padded = _run(plm, smol_tok, template, "prompt-tuning", pack=False)
    monkeypatch.setattr(prompt_model, "PACK_CAPACITY", 8)
    packed = _run(plm, smol_tok, template, "prompt-tuning", pack=True)
    assert packed[2] is not None and len(packed[2]) > 1                 # packs of unequal lengths, padded
    _assert_same(packed, padded)


def test_no_packing_where_it_does_not_pay_or_apply(smol_tok, bert_tok):
    plm = tiny_model("causal", smol_tok).model
    tuned = build_tuned_model(plm, smol_tok, "causal", "{text_a} It was{mask}", VERB, "zero-shot")
    pad = describe_tokenizer(smol_tok).pad_id
    same = collate(encode_examples(tuned.pm.template, [EXAMPLES[0]] * 3, smol_tok,
                                   EncodeSettings(profile="causal")), pad)
    assert tuned.pm.packing(same, 0) is None                          # equal rows: no padding to save
    ia3 = build_tuned_model(copy.deepcopy(plm), smol_tok, "causal", "{text_a} It was{mask}", VERB, "ia3")
    mixed = collate(encode_examples(ia3.pm.template, EXAMPLES, smol_tok, EncodeSettings(profile="causal")), pad)
    assert ia3.pm.packing(mixed, 0) is not None
    ia3.pm.plm.config._attn_implementation = "flash_attention_2"      # takes no 4D mask
    assert ia3.pm.packing(mixed, 0) is None
    lm = tiny_model("masked", bert_tok)
    masked = build_tuned_model(lm.model, bert_tok, "masked", "{text_a} It was {mask}.", VERB, "zero-shot")
    batch = collate(encode_examples(masked.pm.template, EXAMPLES, bert_tok, EncodeSettings(profile="masked")),
                    describe_tokenizer(bert_tok).pad_id)
    assert masked.pm.packing(batch, 0) is None                        # attention goes both ways


@pytest.mark.parametrize("attention", ["sdpa", "eager"])      # boolean mask / additive mask
@pytest.mark.parametrize("model_type", sorted(prompt_model.PACKABLE_MODEL_TYPES))
def test_every_packable_architecture_packs_exactly(smol_tok, model_type, attention):
    """The allow-list is only as good as this test: each listed architecture, packed == padded."""
    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, head_dim=16)
    if model_type == "gpt2":
        sizes = dict(n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg = AutoConfig.for_model(model_type, vocab_size=len(smol_tok), pad_token_id=smol_tok.pad_token_id,
                               bos_token_id=None, eos_token_id=None, **sizes)
    torch.manual_seed(0)
    plm = AutoModelForCausalLM.from_config(cfg, attn_implementation=attention).eval()
    make_lean(plm)
    assert (plm.config._attn_implementation == LEAN_SDPA) == (attention == "sdpa")   # rows vs masked packs
    template = "Review follows. {text_a} Overall it was{mask}"
    packed = _run(plm, smol_tok, template, "prompt-tuning", pack=True)
    assert packed[2] is not None
    _assert_same(packed, _run(plm, smol_tok, template, "prompt-tuning", pack=False))




@pytest.mark.parametrize("window, packs", [(8, False), (4096, True)])
def test_rows_longer_than_a_sliding_window_stay_padded(smol_tok, window, packs):
    """Mistral attends within a sliding window; packed rows would see further back, so rows longer than the
    window run padded, where transformers applies it."""
    cfg = AutoConfig.for_model("mistral", vocab_size=len(smol_tok), hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, head_dim=16,
                               pad_token_id=smol_tok.pad_token_id, bos_token_id=None, eos_token_id=None,
                               sliding_window=window)
    torch.manual_seed(0)
    plm = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").eval()
    make_lean(plm)
    template = "Review follows. {text_a} Overall it was{mask}"
    packed = _run(plm, smol_tok, template, "lora", pack=True)
    assert (packed[2] is not None) == packs
    _assert_same(packed, _run(plm, smol_tok, template, "lora", pack=False))
