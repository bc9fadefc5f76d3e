"""Tuning methods: one module per method, and the registry from ``method.name`` to it.

The registry is the one list of methods: config parsing, the CLI, the studio's picker, the sweep, serving
and artifacts all ask it (and the class it names) rather than keeping their own. Adding a method: its
module (a ``Method`` subclass, see ``backend/methods/base.py``), its import and its entry below, in the
order the studio's picker shows them. Importing this package loads no torch (parsing a config reads it).
"""
from __future__ import annotations

from backend.errors import ConfigError
from backend.methods.adapter import Adapter
from backend.methods.base import Method, MethodContext, parameter_counts
from backend.methods.bitfit import BitFit
from backend.methods.full import Full
from backend.methods.ia3 import IA3
from backend.methods.lora import LoRA
from backend.methods.prefix import PrefixTuning
from backend.methods.protoverb import ProtoVerb
from backend.methods.ptuning import PTuning
from backend.methods.soft import PromptTuning, SoftPrompt, ZeroShot
from backend.textcheck import brief

REGISTRY: dict[str, type[Method]] = {m.name: m for m in (
    ZeroShot,
    PromptTuning,
    SoftPrompt,
    PTuning,
    PrefixTuning,
    LoRA,
    Adapter,
    BitFit,
    IA3,
    Full,
    ProtoVerb,
)}


def get_method(name: str) -> Method:
    """The method registered under ``name`` (ConfigError listing the choices otherwise)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ConfigError(f"method.name: unknown method {brief(name)}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]()


__all__ = ["REGISTRY", "Method", "MethodContext", "get_method", "parameter_counts"]
