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
from backend.prompt_model import PromptModel

# Options every method accepts besides its own (a soft template combines with any delta).
COMMON_OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "train_soft": (bool, True),        # train the template's {"soft"} tokens (when it has any)
    "head": (str, "words"),            # "words": label-word rows of the LM head; "soft": WARP class vectors
    "checkpointing": (bool, False),    # recompute activations in backward: ~3x less memory, ~30% slower
}
HEADS = ("words", "soft")


@dataclass
class MethodContext:
    """What ``prepare`` may need besides the model: the tokenizer, a seed and real text from the data."""

    tokenizer: Any
    seed: int = 0
    sample_texts: Sequence[str] = ()
    state: dict[str, Any] = field(default_factory=dict)   # filled by prepare (e.g. {"peft": True})


class Method:
    """Base class: subclasses set ``name``, ``default_lr``, ``options`` and override ``prepare``."""

    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 1e-3
    options: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {}
    kinds: ClassVar[tuple[str, ...]] = ("masked", "causal", "seq2seq")
    trains: ClassVar[bool] = True
    uses_peft: ClassVar[bool] = False
    trains_soft_tokens: ClassVar[bool] = False   # the method's own parameters are soft tokens (train.lr is theirs)

    def parse_options(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in; unknown keys and wrong types are ConfigErrors naming ``method.<key>``."""
        schema = {**COMMON_OPTIONS, **self.options}
        out = {k: default for k, (_tp, default) in schema.items()}
        for key, value in (raw or {}).items():
            if key not in schema:
                import difflib

                close = difflib.get_close_matches(key, schema, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else f" (options of {self.name}: " \
                    f"{', '.join(sorted(schema))})"
                raise ConfigError(f"method.{key}: unknown option{hint}")
            tp = schema[key][0]
            if value is not None and not _is_type(value, tp):
                raise ConfigError(f"method.{key}: expected {_tp_name(tp)}, got {value!r}")
            out[key] = float(value) if tp is float and value is not None else value
        if out["head"] not in HEADS:
            raise ConfigError(f"method.head: must be one of {', '.join(HEADS)}, not {out['head']!r}")
        self.validate(out)
        return out

    def validate(self, opts: dict[str, Any]) -> None:
        """Method-specific checks on parsed options (ranges, enumerations)."""

    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(f"method {self.name!r} does not apply to {kind} models "
                              f"(it works with {', '.join(self.kinds)} models)", field="method")

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        """The template the model is built from (prompt tuning prepends its soft tokens here)."""
        return text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        """Make the method's parameters trainable (everything else is already frozen)."""


def _is_type(value: Any, tp: type | tuple[type, ...]) -> bool:
    types = tp if isinstance(tp, tuple) else (tp,)
    if isinstance(value, bool) and bool not in types:
        return False
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _tp_name(tp: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "an object"}
    types = tp if isinstance(tp, tuple) else (tp,)
    return " or ".join(names.get(t, t.__name__) for t in types)


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
