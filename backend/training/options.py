"""Resolved training options: the config's TrainOptions with the method's defaults filled in.

Defaults are the published starting points, checked on SST-2 with SmolLM2 (bench/bench_training.py):
soft prompts / P-tuning 3e-3, prompt tuning 3e-2, prefix 5e-3, LoRA 5e-4, IA3 3e-3, adapters / BitFit 1e-3, full 2e-5.
Beside a delta trained at a much lower rate (LoRA + soft tokens), soft tokens and the soft verbalizer get
at least the soft-prompt rate, because they do not learn at LoRA's; when the method *is* a soft-token
method, ``train.lr`` is their rate as given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from backend.errors import ConfigError
from backend.methods import get_method
from backend.methods.soft import SoftPrompt

DEFAULT_STEPS = 100
SOFT_PREFIXES = ("soft_embedding.", "soft_verbalizer.")


@dataclass(frozen=True)
class Resolved:
    total_steps: int
    lr: float
    soft_lr: float
    batch_size: int
    grad_accum: int
    micro_batch_tokens: int            # 0: no split
    cpu_memory: str                    # auto / lean / fast (backend/cpu_memory.py)
    warmup_steps: int
    eval_every: int | None
    checkpoint_every: int
    patience: int | None
    metric: str
    max_grad_norm: float
    weight_decay: float


# Activations kept for the backward pass grow with the tokens a chunk runs: rows x longest row when padded,
# the rows' own tokens when packed (about 0.7 MB per token for SmolLM2-135M). 512 leaves the usual few-shot batches whole (splitting small batches costs 15-25% step time
# on CPU) and stops a batch of long texts from taking gigabytes; set it lower to trade time for memory.
CPU_MICRO_BATCH_TOKENS = 512


def resolve(train: object, method_name: str, n_train: int, device_type: str = "cpu") -> Resolved:
    """``train`` is backend.config.TrainOptions; ``n_train`` the number of training examples."""
    bs = int(getattr(train, "batch_size", 8))
    accum = int(getattr(train, "grad_accum", 1) or 1)
    if bs < 1 or accum < 1:
        raise ConfigError("train.batch_size and train.grad_accum must be at least 1")
    per_epoch = max(1, math.ceil(math.ceil(n_train / bs) / accum))
    steps, epochs = getattr(train, "steps", None), getattr(train, "epochs", None)
    if steps is not None and steps < 1:
        raise ConfigError("train.steps: must be at least 1")
    total = steps if steps is not None else (math.ceil(epochs * per_epoch) if epochs else DEFAULT_STEPS)
    lr = getattr(train, "lr", None) or get_method(method_name).default_lr
    if lr <= 0:
        raise ConfigError("train.lr: must be positive")
    micro = getattr(train, "micro_batch_tokens", None)
    if micro is None:
        micro = CPU_MICRO_BATCH_TOKENS if device_type == "cpu" else 0
    if micro < 0:
        raise ConfigError("train.micro_batch_tokens: must be 0 (no split) or a positive number of tokens")
    eval_every = getattr(train, "eval_every", None)
    ckpt_every = eval_every or max(1, total // 10)
    soft_lr = float(lr) if get_method(method_name).trains_soft_tokens else max(float(lr), SoftPrompt.default_lr)
    return Resolved(total_steps=max(1, int(total)), lr=float(lr), soft_lr=soft_lr,
                    batch_size=bs, grad_accum=accum, micro_batch_tokens=int(micro),
                    cpu_memory=str(getattr(train, "cpu_memory", "auto")),
                    warmup_steps=int(round(float(getattr(train, "warmup_ratio", 0.06)) * total)),
                    eval_every=eval_every, checkpoint_every=ckpt_every,
                    patience=getattr(train, "early_stopping", None), metric=getattr(train, "metric", "accuracy"),
                    max_grad_norm=float(getattr(train, "max_grad_norm", 1.0) or 0.0),
                    weight_decay=float(getattr(train, "weight_decay", 0.0)))
