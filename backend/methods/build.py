"""From (model, template, verbalizer, method) to a PromptModel ready to train or to load weights into.

The same function builds the model for training, for reloading a trained run and for serving, so a
saved state dict always finds the same parameter names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from backend.methods import get_method
from backend.methods.base import Method, MethodContext, freeze, parameter_counts
from backend.methods.heads import attach_soft_verbalizer
from backend.prompt_model import PromptModel
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import Verbalizer, compile_verbalizer


@dataclass
class TunedModel:
    pm: PromptModel
    method: Method
    options: dict[str, Any]
    template_text: str          # the template actually compiled (prompt tuning's soft prefix included)
    verbalizer: Verbalizer

    def counts(self) -> dict[str, float]:
        return parameter_counts(self.pm)

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.pm.named_parameters() if p.requires_grad]


def enable_checkpointing(pm: PromptModel) -> None:
    """Gradient checkpointing on the transformers model (non-reentrant: gradients still reach the soft
    rows fed as ``inputs_embeds`` while every PLM weight stays frozen)."""
    from backend.methods.peft_util import base_model

    model = base_model(pm)
    if not getattr(model, "supports_gradient_checkpointing", False):
        from backend.errors import ConfigError

        raise ConfigError(f"{type(model).__name__} does not support gradient checkpointing", field="method")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def build_tuned_model(plm: nn.Module, tokenizer: Any, kind: str, template: str, verbalizer: Verbalizer,
                      method_name: str, options: dict[str, Any] | None = None, *, seed: int = 0,
                      sample_texts: Sequence[str] = ()) -> TunedModel:
    """Compile the (method-adjusted) template, build the PromptModel, freeze it, apply the method.

    ``plm`` is modified in place by PEFT / adapter methods: pass a fresh model per tuned model.
    """
    from backend.pipeline import mask_prefix

    method = get_method(method_name)
    opts = method.parse_options(options)
    method.check_kind(kind)
    text = method.template_text(template, opts)
    compiled_template = compile_template(text, tokenizer)
    compiled = compile_verbalizer(verbalizer, tokenizer, prefix=mask_prefix(compiled_template))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pm = PromptModel(plm, kind, compiled_template, compiled, seed=seed)
        freeze(pm)
        method.prepare(pm, opts, MethodContext(tokenizer=tokenizer, seed=seed, sample_texts=sample_texts))
        if method.trains:
            if opts["train_soft"] and pm.soft_embedding is not None:
                pm.soft_embedding.requires_grad_(True)
            if opts["head"] == "soft":
                attach_soft_verbalizer(pm)
            if opts["checkpointing"]:
                enable_checkpointing(pm)
    return TunedModel(pm=pm, method=method, options=opts, template_text=text, verbalizer=verbalizer)
