"""Decide whether a checkpoint is a masked, causal or seq2seq LM, from its config alone.

The kind picks the encoding profile (where the mask goes, how labels are scored) and the Auto class used
to load the weights. It is read from the config rather than from a list of model names we know, so any
architecture transformers supports works: ``is_encoder_decoder`` first, then the head named in
``architectures``, then which of transformers' own LM registries lists the ``model_type``.
"""
from __future__ import annotations

from typing import Any

from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from backend.choices import KINDS, Kind
from backend.errors import ModelError


AUTO_CLASSES: dict[str, Any] = {
    "masked": AutoModelForMaskedLM,
    "causal": AutoModelForCausalLM,
    "seq2seq": AutoModelForSeq2SeqLM,
}

# Suffixes of head classes in ``config.architectures`` (e.g. BertForMaskedLM, GPT2LMHeadModel). Seq2seq
# needs no suffix: ``is_encoder_decoder`` says it, and decoder-only *ForConditionalGeneration are multimodal.
_HEAD_SUFFIXES: tuple[tuple[str, Kind], ...] = (
    ("ForMaskedLM", "masked"),
    ("ForCausalLM", "causal"),
    ("LMHeadModel", "causal"),
)


def _from_architectures(config: Any) -> Kind | None:
    for arch in getattr(config, "architectures", None) or []:
        for suffix, kind in _HEAD_SUFFIXES:
            if arch.endswith(suffix):
                return kind
    return None


def _from_model_type(config: Any) -> Kind | None:
    model_type = getattr(config, "model_type", None)
    masked = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if masked and causal:  # encoders with an optional decoder mode (BERT, RoBERTa, ...)
        return "causal" if getattr(config, "is_decoder", False) else "masked"
    if masked:
        return "masked"
    if causal:
        return "causal"
    if model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    return None


def model_kind(config: Any) -> Kind:
    """``"masked"``, ``"causal"`` or ``"seq2seq"`` for a transformers config; ModelError if none fits."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    kind = _from_architectures(config) or _from_model_type(config)
    if kind is None:
        raise ModelError(
            f"cannot use this model as a language model: model_type={getattr(config, 'model_type', None)!r}, "
            f"architectures={getattr(config, 'architectures', None)!r} is not a masked, causal or "
            "seq2seq LM known to transformers")
    return kind
