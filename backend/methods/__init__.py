"""Tuning methods: one module per method, and the registry from ``method.name`` to it."""
from __future__ import annotations

from backend.errors import ConfigError
from backend.methods.adapter import Adapter
from backend.methods.base import Method, MethodContext, parameter_counts
from backend.methods.bitfit import BitFit
from backend.methods.full import Full
from backend.methods.ia3 import IA3
from backend.methods.lora import LoRA
from backend.methods.prefix import PrefixTuning
from backend.methods.ptuning import PTuning
from backend.methods.soft import PromptTuning, SoftPrompt, ZeroShot

REGISTRY: dict[str, type[Method]] = {m.name: m for m in (
    ZeroShot, SoftPrompt, PromptTuning, PTuning, PrefixTuning, LoRA, IA3, Adapter, BitFit, Full)}


def get_method(name: str) -> Method:
    """The method registered under ``name`` (ConfigError listing the choices otherwise)."""
    if name not in REGISTRY:
        raise ConfigError(f"method.name: unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]()


__all__ = ["REGISTRY", "Method", "MethodContext", "get_method", "parameter_counts"]
