"""What a tuning method is: everything it says about itself, in one class per method.

Why everything lives on the class (PEFT's ``tuners/<method>`` layout): config parsing, the CLI's method
names, the studio's picker and option widgets, the seeds sweep, serving and saved artifacts all ask the
registry (``backend.methods.REGISTRY``) instead of keeping their own lists of method names, so adding a
method is one module and one registry line, and no list can be forgotten. (One was: a method missing from
the sweep's "modifies the base" list silently shared a modified base model across seeds.) The answers a
method does not give are the safe ones: it rewrites the base (``modifies_base``) and is served on its own
copy of it (``serving = "own-copy"``).

This module and every method module import nothing heavy when loaded: parsing a RunConfig reads the
registry without torch or PEFT (seconds), which ``prepare`` and friends import when they run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from backend.choices import KINDS
from backend.errors import ConfigError
from backend.schema import Option, check, unknown_key

if TYPE_CHECKING:
    import torch
    from torch import nn

    from backend.prompt_model import PromptModel

__all__ = ["COMMON_OPTIONS", "HEADS", "SERVING", "Method", "MethodContext", "freeze", "parameter_counts"]

HEADS = ("words", "soft")
# How a trained run is served next to other runs on one loaded base model (backend.serving).
SERVING = {
    "shared": "adds only its own tensors around the frozen base, so it runs on the shared base as is",
    "peft-host": "becomes a named adapter of one PEFT host model on the shared base (from its adapter/ folder)",
    "hooks": "hooks its blocks (PromptModel children with an 'active' switch) onto the shared base, on for its "
             "requests",
    "biases": "keeps its trained base biases aside and swaps them into the shared base for its requests",
    "own-copy": "rewrites base weights, so it gets a private copy of the base",
}
# Bounds shared by several methods' options.
TOKENS = {"min": 1, "max": 512}
HIDDEN = {"min": 2, "max": 65_536}


def modules_option(doc: str, label: str = "Target modules") -> Option:
    """PEFT target module names (or one regex), as PEFT's configs take them."""
    return Option(list[str] | str | None, None, max_len=200, extra={"max_items": 200}, label=label,
                  advanced=True, doc=doc + " (names such as q_proj, v_proj, or one regex)")


# Options every method accepts besides its own (a soft template combines with any delta).
COMMON_OPTIONS: dict[str, Option] = {
    "head": Option(str, "words", choices=HEADS, label="Verbalizer head",
                   doc="words: the label words' rows of the LM head; soft: trainable class vectors started "
                       "from them (WARP), worth trying when no label words fit the task well"),
    "train_soft": Option(bool, True, label="Train the template's {soft} tokens", advanced=True,
                         doc="on: a template's own {soft} tokens train with the method; off keeps them as "
                             "initialised"),
    "checkpointing": Option(bool, False, label="Gradient checkpointing", advanced=True,
                            doc="recompute activations in backward: ~3x less memory, ~30% slower; turn on "
                                "when training runs out of memory"),
}


@dataclass
class MethodContext:
    """What ``prepare`` may need besides the model: the tokenizer, a seed and real text from the data."""

    tokenizer: Any
    seed: int = 0
    sample_texts: Sequence[str] = ()
    state: dict[str, Any] = field(default_factory=dict)   # filled by prepare (e.g. {"peft": True})


class Method:
    """Base class: a subclass declares what it is (the class variables) and overrides ``prepare``."""

    name: ClassVar[str] = ""                  # method.name in a RunConfig
    label: ClassVar[str] = ""                 # what the studio's method picker shows
    description: ClassVar[str] = ""           # one line: what trains
    default_lr: ClassVar[float] = 1e-3        # train.lr when the config gives none
    options: ClassVar[dict[str, Option]] = {}  # its own options (COMMON_OPTIONS come with every method)
    kinds: ClassVar[tuple[str, ...]] = KINDS   # model kinds it applies to
    trains: ClassVar[bool] = True             # False: nothing to train (zero-shot), not in the picker
    trains_soft_tokens: ClassVar[bool] = False   # its own parameters are soft tokens (train.lr is theirs)
    # prepare changes the PLM in place (PEFT wrapping, hooks, unfrozen weights): the seeds sweep gives
    # each seed a fresh copy of the base. A wrong False shares a modified base across seeds.
    modifies_base: ClassVar[bool] = True
    uses_peft: ClassVar[bool] = False         # its weights are also saved in PEFT's format (adapter/)
    serving: ClassVar[str] = "own-copy"       # a key of SERVING

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A wrong declaration fails when the module is imported, not when a run is served."""
        super().__init_subclass__(**kwargs)
        if cls.serving not in SERVING:
            raise TypeError(f"{cls.__name__}.serving must be one of {', '.join(SERVING)}, got {cls.serving!r}")
        if cls.serving == "peft-host" and not cls.uses_peft:
            raise TypeError(f"{cls.__name__}: serving 'peft-host' loads a PEFT adapter folder; set uses_peft")

    @classmethod
    def schema(cls) -> dict[str, Option]:
        """The method's own options followed by the common ones."""
        return {**cls.options, **COMMON_OPTIONS}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Everything a form or a catalogue shows about the method, as plain JSON."""
        return {"name": cls.name, "label": cls.label or cls.name, "description": cls.description,
                "default_lr": cls.default_lr, "kinds": list(cls.kinds), "trains": cls.trains,
                "options": [_describe_option(k, o, k in COMMON_OPTIONS) for k, o in cls.schema().items()]}

    def parse_options(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in; unknown keys, wrong types and out-of-range values are ConfigErrors naming
        ``method.<key>`` (RunConfig parsing runs this, so a run that cannot start is never queued)."""
        options = self.schema()
        out = {k: opt.default for k, opt in options.items()}
        for key, value in (raw or {}).items():
            if key not in options:
                raise ConfigError("method." + unknown_key(key, options, f"unknown option for {self.name}"))
            opt = options[key]
            out[key] = check(value, opt.type, f"method.{key}", opt.bounds())
        self.check_options(out)
        return out

    def check_options(self, opts: dict[str, Any]) -> None:
        """Rules between this method's options (ConfigError naming ``method.<key>``); none by default."""

    def reload_options(self, opts: dict[str, Any]) -> dict[str, Any]:
        """The options a trained run is rebuilt with before its saved tensors are loaded (an
        initialisation the trained values replace can be skipped here)."""
        return dict(opts)

    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(f"method {self.name!r} does not apply to {kind} models "
                              f"(it works with {', '.join(self.kinds)} models)", field="method")

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        """The template the model is built from (prompt tuning prepends its soft tokens here)."""
        return text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        """Make the method's parameters trainable (everything else is already frozen)."""

    def batch_loss(self, pm: PromptModel, logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of one chunk, summed over its rows (the loop divides by the batch size):
        cross-entropy of the class log-probs ``logp`` (B, C); a method with its own objective overrides it."""
        import torch

        return torch.nn.functional.nll_loss(logp.float(), labels, reduction="sum")


def _describe_option(key: str, opt: Option, common: bool) -> dict[str, Any]:
    bounds = {k: (list(v) if k == "choices" else v) for k, v in opt.bounds().items()
              if k in ("min", "max", "gt", "lt", "choices")}
    return {"key": key, "type": opt.kind, "default": opt.default, "label": opt.label or key, "help": opt.doc,
            "advanced": opt.advanced, "common": common, **bounds}


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
