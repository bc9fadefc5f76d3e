"""Soft tokens: zero-shot (nothing trains), soft-prompt (the template's own {"soft"} tokens) and prompt
tuning (Lester et al.: N soft tokens prepended to the template).

Prompt tuning is built as soft tokens *in the template* rather than PEFT's prompt tuning, so encoding,
truncation and the mask position stay exactly the template engine's. Initialisation is always from real
vocabulary rows (label words, text, or sampled vocabulary), never N(0, 1): PEFT's own benchmark shows
random-normal prompts fail to learn (5.7% vs 34.3%).
"""
from __future__ import annotations

from typing import Any

import torch

from backend.errors import ConfigError
from backend.method_options import METHOD_OPTIONS
from backend.methods.base import Method, MethodContext
from backend.prompt_model import PromptModel

class ZeroShot(Method):
    name = "zero-shot"
    trains = False


class SoftPrompt(Method):
    """Only the template's soft tokens train; the template must have some."""

    name = "soft-prompt"
    trains_soft_tokens = True
    default_lr = 3e-3

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        if pm.soft_embedding is None:
            raise ConfigError("soft-prompt trains the template's soft tokens, but this template has none: "
                              "add {soft} (or {\"soft\": \"init text\"}) to it, or use prompt-tuning",
                              field="template")


def soft_prefix(n: int) -> str:
    """Template text for ``n`` fresh soft tokens (ids 1..n when put first in a template)."""
    return f'{{"soft": None, "duplicate": {n}}} '


def init_rows(pm: PromptModel, ids: list[int], init: str, text: str | None, tokenizer: Any) -> None:
    """Overwrite soft rows ``ids`` from label-word rows or from the tokens of ``text`` (tiled).

    "vocab" keeps PromptModel's own initialisation (sampled vocabulary rows).
    """
    if init == "vocab" or pm.soft_embedding is None or not ids:
        return
    if init == "labels":
        source = [int(t) for t in pm.label_rows.tolist()]
        source = source[:len(ids)]  # the rest keep their sampled vocabulary rows (Lester et al.)
    else:
        source = list(tokenizer(" " + (text or ""), add_special_tokens=False)["input_ids"])
        if not source:
            raise ConfigError("method.init_text: tokenizes to nothing", field="method")
        source = [source[i % len(source)] for i in range(len(ids))]
    emb = pm.plm.get_input_embeddings().weight
    with torch.no_grad():
        for sid, vid in zip(ids, source):
            pm.soft_embedding.weight[sid] = emb[vid].to(pm.soft_embedding.weight.dtype)


class PromptTuning(Method):
    """Lester et al. train prompts at a high rate (0.3 with Adafactor); with AdamW on SmolLM2, SST-2, 16 shots
    per class and 40 steps, 3e-2 beat 3e-3 on a held-out slice of the training set (bench/bench_training.py)."""

    name = "prompt-tuning"
    trains_soft_tokens = True
    default_lr = 3e-2
    options = METHOD_OPTIONS[name]

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        return soft_prefix(opts["num_tokens"]) + text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        ids = list(range(1, opts["num_tokens"] + 1))
        init_rows(pm, ids, opts["init"], opts["init_text"], ctx.tokenizer)
