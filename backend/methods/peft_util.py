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
        raise ConfigError(f"PEFT cannot apply {config.peft_type.value} to this model: {exc}",
                          field="method") from None
    pm.plm = peft_model
    return peft_model


def is_peft(pm: PromptModel) -> bool:
    return isinstance(pm.plm, PeftModel)


def base_model(pm: PromptModel) -> Any:
    """The transformers model under any PEFT wrapping."""
    return pm.plm.get_base_model() if is_peft(pm) else pm.plm
