"""Kind detection from configs: BERT, Llama, T5, GPT-2 and the ambiguous cases."""
from __future__ import annotations

import pytest
from transformers import AutoConfig, BertConfig, GPT2Config, LlamaConfig, T5Config

from backend.errors import ModelError
from backend.models import model_kind


@pytest.mark.parametrize("config,kind", [
    (BertConfig(), "masked"),
    (LlamaConfig(), "causal"),
    (T5Config(), "seq2seq"),
    (GPT2Config(), "causal"),
    (AutoConfig.for_model("roberta"), "masked"),
    (AutoConfig.for_model("bart"), "seq2seq"),
    (AutoConfig.for_model("qwen2"), "causal"),
])
def test_kind_from_model_type(config, kind):
    assert model_kind(config) == kind


def test_architectures_name_the_head():
    assert model_kind(BertConfig(architectures=["BertLMHeadModel"])) == "causal"
    assert model_kind(BertConfig(architectures=["BertForMaskedLM"])) == "masked"
    assert model_kind(GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal"


def test_bert_as_decoder_is_causal():
    assert model_kind(BertConfig(is_decoder=True)) == "causal"


def test_encoder_decoder_flag_wins_over_architectures():
    assert model_kind(T5Config(architectures=["T5ForConditionalGeneration"])) == "seq2seq"


def test_base_model_architecture_falls_back_to_model_type():
    # MiniLM's config says BertModel; kind is still masked, the missing head is caught at load time
    assert model_kind(BertConfig(architectures=["BertModel"])) == "masked"


def test_non_language_model_is_refused():
    with pytest.raises(ModelError, match="model_type='resnet'"):
        model_kind(AutoConfig.for_model("resnet"))
