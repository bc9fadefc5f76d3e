"""Wrapping a PromptModel's PLM with a PEFT config (shared by LoRA, IA3 and prefix tuning).

The PeftModel replaces ``pm.plm``; PromptModel keeps calling ``plm(...)``, ``get_input_embeddings()`` and
``get_output_embeddings()``, which PeftModel forwards to the base model. Masked LMs use PEFT's
feature-extraction wrapper: it passes our keyword arguments through unchanged (and, for prefix tuning,
extends the attention mask itself).
"""
from __future__ import annotations

from typing import Any

from peft import PeftConfig, PeftModel, TaskType, get_peft_model

from backend.errors import ConfigError
from backend.models.quiet import quiet_hf
from backend.prompt_model import PromptModel

TASK_TYPES = {"causal": TaskType.CAUSAL_LM, "seq2seq": TaskType.SEQ_2_SEQ_LM,
              "masked": TaskType.FEATURE_EXTRACTION}


def wrap_with_peft(pm: PromptModel, config: PeftConfig) -> PeftModel:
    """Apply ``config`` to ``pm.plm`` (frozen base, trainable delta) and install the PeftModel on ``pm``."""
    config.task_type = TASK_TYPES[pm.kind]
    try:
        with quiet_hf():   # PEFT's own call of a deprecated transformers property warns otherwise
            peft_model = get_peft_model(pm.plm, config)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        hint = ""
        if "target_modules" in str(exc):
            names = sorted(linear_names(pm.plm))
            hint = (f"; set method.target_modules to some of its linear layers: {', '.join(names[:12])}"
                    + (", ..." if len(names) > 12 else ""))
        raise ConfigError(f"PEFT cannot apply {config.peft_type.value} to this model: {exc}{hint}",
                          field="method") from None
    pm.plm = peft_model
    return peft_model


# Projection names by which LoRA finds a model's attention queries and values when PEFT has no default for its
# type (SmolLM3, Phi-3, OLMo 2, Granite, ...: PEFT would refuse and ask for target_modules), most common first.
QUERY_VALUE_NAMES = (("q_proj", "v_proj"), ("query", "value"), ("qkv_proj",), ("query_key_value",), ("Wqkv",),
                     ("c_attn",))


def linear_names(model: Any) -> set[str]:
    """The last name part of every linear layer of ``model`` (what PEFT's target_modules match)."""
    from torch import nn

    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def knows_model_type(pm: PromptModel, mapping: dict[str, Any]) -> bool:
    """Whether PEFT has default target modules (``mapping``) for this model's type."""
    return getattr(getattr(base_model(pm), "config", None), "model_type", None) in mapping


def lora_targets(pm: PromptModel, chosen: Any) -> Any:
    """``chosen`` when given; None (PEFT's default) where PEFT knows the model type; else the attention's
    query and value projections found by name, as PEFT's default is for Llama."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if chosen or knows_model_type(pm, DEFAULTS):
        return chosen
    names = linear_names(base_model(pm))
    return next((list(group) for group in QUERY_VALUE_NAMES if set(group) <= names), None)


def ia3_targets(pm: PromptModel, targets: Any, feedforward: Any) -> tuple[Any, Any]:
    """IA3's (target, feed-forward) modules: as chosen; PEFT's default where it knows the model type; else
    keys, values and the MLP's down projection found by name, as PEFT's default is for Llama."""
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULTS

    if targets or feedforward or knows_model_type(pm, DEFAULTS):
        return targets, feedforward
    names = linear_names(base_model(pm))
    if {"k_proj", "v_proj", "down_proj"} <= names:
        return ["k_proj", "v_proj", "down_proj"], ["down_proj"]
    return targets, feedforward


def is_peft(pm: PromptModel) -> bool:
    return isinstance(pm.plm, PeftModel)


def base_model(pm: PromptModel) -> Any:
    """The transformers model under any PEFT wrapping."""
    return pm.plm.get_base_model() if is_peft(pm) else pm.plm
