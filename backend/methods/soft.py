"""Soft tokens: zero-shot (nothing trains), soft-prompt (the template's own {"soft"} tokens) and prompt
tuning (Lester et al.: N soft tokens prepended to the template).

Prompt tuning is built as soft tokens *in the template* rather than PEFT's prompt tuning, so encoding,
truncation and the mask position stay exactly the template engine's. Initialisation is always from real
vocabulary rows (label words, text, or sampled vocabulary), never N(0, 1): PEFT's own benchmark shows
random-normal prompts fail to learn (5.7% vs 34.3%).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.errors import ConfigError
from backend.methods.base import TOKENS, Method, MethodContext
from backend.schema import Option

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel

SOFT_INITS = ("labels", "text", "vocab")


def num_tokens_option(default: int) -> Option:
    return Option(int, default, **TOKENS, label="Soft tokens",
                  doc="how many trainable tokens; more can fit a harder task but learn slower from few examples")


def init_option(default: str) -> Option:
    # PEFT's own benchmark: random-normal prompts fail to learn (5.7% vs 34.3%)
    return Option(str, default, choices=SOFT_INITS, extra={"why": "soft tokens start from vocabulary rows, never "
                                                                   "random normal"},
                  label="Start the soft tokens from",
                  doc="labels: the label words' embeddings; text: the tokens of init_text; vocab: sampled "
                      "vocabulary rows")


INIT_TEXT = Option(str | None, None, max_len=10_000, label="Initialisation text", advanced=True,
                   doc="text whose tokens initialise the soft rows (with init 'text'): a task description helps")


def check_soft_init(opts: dict[str, Any]) -> None:
    """``init: text`` needs the text (prompt tuning, P-tuning)."""
    if opts.get("init") == "text" and not (opts.get("init_text") or "").strip():
        raise ConfigError("method.init_text: needed when init is 'text'")


class ZeroShot(Method):
    name = "zero-shot"
    label = "Zero-shot (nothing trains)"
    description = "scores the template and label words with the frozen model"
    trains = False
    modifies_base = False
    serving = "shared"


class SoftPrompt(Method):
    """Only the template's soft tokens train; the template must have some."""

    name = "soft-prompt"
    label = "Soft tokens written in the template ({soft})"
    description = "only the template's own {soft} tokens train"
    trains_soft_tokens = True
    default_lr = 3e-3
    modifies_base = False
    serving = "shared"

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
    import torch

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
    label = "Soft prompt (prompt tuning: soft tokens before the input)"
    description = "N trainable soft tokens put before the template; the model stays frozen"
    trains_soft_tokens = True
    default_lr = 3e-2
    modifies_base = False
    serving = "shared"
    options = {"num_tokens": num_tokens_option(20), "init": init_option("labels"), "init_text": INIT_TEXT}

    def check_options(self, opts: dict[str, Any]) -> None:
        check_soft_init(opts)

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        return soft_prefix(opts["num_tokens"]) + text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        ids = list(range(1, opts["num_tokens"] + 1))
        init_rows(pm, ids, opts["init"], opts["init_text"], ctx.tokenizer)
