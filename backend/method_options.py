"""Every tuning method's options: name, type, default and range, declared as data.

Why here and not only in ``backend/methods/<method>.py``: the options are checked when a RunConfig is
parsed (studio, CLI, re-run, queue), so a run that cannot start is never queued and the error names
``method.<option>`` at once — and parsing a config must not import torch and PEFT (seconds, and the CLI
reports a bad config without them). Each method class points at its entry (``options =
METHOD_OPTIONS["lora"]``) and ``Method.parse_options`` uses the same ``parse_method_options``, so there is
one declaration per option. Adding a method: one entry here, its module, the registry.
"""
from __future__ import annotations

from typing import Any

from backend.errors import ConfigError
from backend.schema import Option, check, unknown_key

HEADS = ("words", "soft")
SOFT_INITS = ("labels", "text", "vocab")
# PEFT's own benchmark: random-normal prompts fail to learn (5.7% vs 34.3%)
_SOFT_INIT = {"choices": SOFT_INITS, "extra": {"why": "soft tokens start from vocabulary rows, never random normal"}}
TOKENS = {"min": 1, "max": 512}
HIDDEN = {"min": 2, "max": 65_536}
MODULES = list[str] | str | None                 # PEFT target module names (or one regex)
_MODULE_BOUNDS = {"max_len": 200, "extra": {"max_items": 200}}
_INIT_TEXT = Option(str | None, None, max_len=10_000, doc="text whose tokens initialise the soft rows")

# Options every method accepts besides its own (a soft template combines with any delta).
COMMON_OPTIONS: dict[str, Option] = {
    "train_soft": Option(bool, True, doc="train the template's {soft} tokens (when it has any)"),
    "head": Option(str, "words", choices=HEADS,
                   doc="words: label-word rows of the LM head; soft: WARP class vectors"),
    "checkpointing": Option(bool, False, doc="recompute activations in backward: ~3x less memory, ~30% slower"),
}

METHOD_OPTIONS: dict[str, dict[str, Option]] = {
    "zero-shot": {},
    "soft-prompt": {},
    "prompt-tuning": {
        "num_tokens": Option(int, 20, **TOKENS),
        "init": Option(str, "labels", **_SOFT_INIT),
        "init_text": _INIT_TEXT,
    },
    "p-tuning": {
        "encoder": Option(str, "lstm", choices=("lstm", "mlp")),
        "hidden_size": Option(int | None, None, **HIDDEN, doc="None: the model's hidden size; even for lstm"),
        "residual": Option(bool, True),
        "num_tokens": Option(int, 8, **TOKENS),
        "init": Option(str, "vocab", **_SOFT_INIT),
        "init_text": _INIT_TEXT,
    },
    "prefix-tuning": {
        "num_tokens": Option(int, 16, **TOKENS),
        "projection": Option(bool, False),
        "projection_hidden": Option(int, 512, **HIDDEN),
        "init": Option(str, "activations", choices=("activations", "random")),
        "init_text": _INIT_TEXT,
    },
    "lora": {
        "r": Option(int, 8, min=1, max=4096),
        "alpha": Option(float, 16, gt=0, max=1e6),
        "dropout": Option(float, 0.0, min=0, lt=1),
        "target_modules": Option(MODULES, None, **_MODULE_BOUNDS),
    },
    "ia3": {
        "target_modules": Option(MODULES, None, **_MODULE_BOUNDS),
        "feedforward_modules": Option(MODULES, None, **_MODULE_BOUNDS),
    },
    "adapter": {
        "style": Option(str, "pfeiffer", choices=("houlsby", "pfeiffer")),
        "bottleneck": Option(int, 64, min=1, max=65_536),
    },
    "bitfit": {},
    "full": {},
}


def schema(method: str) -> dict[str, Option]:
    """The method's own options followed by the common ones."""
    return {**METHOD_OPTIONS[method], **COMMON_OPTIONS}


def parse_method_options(method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """``raw`` checked against ``method``'s declared options, defaults filled in; ConfigError naming
    ``method.<option>`` otherwise."""
    if method not in METHOD_OPTIONS:
        raise ConfigError(f"method.name: unknown method {method!r}; choose one of {', '.join(METHOD_OPTIONS)}")
    options = schema(method)
    out = {k: opt.default for k, opt in options.items()}
    for key, value in (raw or {}).items():
        if key not in options:
            raise ConfigError("method." + unknown_key(key, options, f"unknown option for {method}"))
        opt = options[key]
        out[key] = check(value, opt.type, f"method.{key}", opt.bounds())
    _cross_checks(out)
    return out


def _cross_checks(opts: dict[str, Any]) -> None:
    """Rules between options of one method."""
    if opts.get("init") == "text" and not (opts.get("init_text") or "").strip():
        raise ConfigError("method.init_text: needed when init is 'text'")
    if opts.get("encoder") == "lstm" and opts.get("hidden_size") is not None and opts["hidden_size"] % 2:
        # a bidirectional LSTM of hidden_size // 2 per direction feeds an MLP expecting hidden_size
        raise ConfigError(f"method.hidden_size: must be even for the lstm encoder, got {opts['hidden_size']}")
