"""The shape every tuning method shares: options, default learning rate, where it applies, and
``prepare`` (make a PromptModel trainable the method's way).

Why one small class per method (PEFT's ``tuners/<method>`` layout): adding a method touches one module
and the registry, and the training loop never branches on method names — it trains whatever
``requires_grad`` parameters ``prepare`` left, and saves them through ``backend.training.artifacts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from torch import nn

from backend.errors import ConfigError
from backend.method_options import COMMON_OPTIONS, HEADS, parse_method_options
from backend.prompt_model import PromptModel
from backend.schema import Option

__all__ = ["COMMON_OPTIONS", "HEADS", "Method", "MethodContext", "freeze", "parameter_counts"]


@dataclass
class MethodContext:
    """What ``prepare`` may need besides the model: the tokenizer, a seed and real text from the data."""

    tokenizer: Any
    seed: int = 0
    sample_texts: Sequence[str] = ()
    state: dict[str, Any] = field(default_factory=dict)   # filled by prepare (e.g. {"peft": True})


class Method:
    """Base class: subclasses set ``name``, ``default_lr``, ``options`` and override ``prepare``.

    ``options`` is the method's entry of ``backend.method_options.METHOD_OPTIONS`` (declared there so a
    config is checked without importing torch); ``parse_options`` checks against exactly that.
    """

    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 1e-3
    options: ClassVar[dict[str, Option]] = {}
    kinds: ClassVar[tuple[str, ...]] = ("masked", "causal", "seq2seq")
    trains: ClassVar[bool] = True
    uses_peft: ClassVar[bool] = False
    trains_soft_tokens: ClassVar[bool] = False   # the method's own parameters are soft tokens (train.lr is theirs)

    def parse_options(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in; unknown keys, wrong types and out-of-range values are ConfigErrors naming
        ``method.<key>`` (the same check RunConfig parsing runs)."""
        return parse_method_options(self.name, raw)

    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(f"method {self.name!r} does not apply to {kind} models "
                              f"(it works with {', '.join(self.kinds)} models)", field="method")

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        """The template the model is built from (prompt tuning prepends its soft tokens here)."""
        return text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        """Make the method's parameters trainable (everything else is already frozen)."""


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def parameter_counts(module: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts (shared/tied tensors counted once) and the percentage."""
    seen: set[int] = set()
    total = trainable = 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / total if total else 0.0}
