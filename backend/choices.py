"""The names the config, the engine, the CLI and the studio all choose among, defined once.

A leaf module (it imports nothing) so that the config parser, argparse and the studio's dropdowns can
use them without loading torch or transformers, and so a new kind or truncation mode is added in one place.
"""
from __future__ import annotations

from typing import Literal, get_args

DEFAULT_MODEL = "smollm2-135m-instruct"    # the embedded model (a GGUF shipped in a wheel)

# What a model is, which decides how an example is encoded (backend.prompts.encode's profiles).
Kind = Literal["masked", "causal", "seq2seq"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# Where an example too long for max_length loses tokens: its end, its start, or evenly across fields.
TRUNCATE_METHODS = ("tail", "head", "balanced")

# How in-context demonstrations are chosen from the training rows (backend.prompts.demos).
DEMO_SELECTIONS = ("random", "similar")

# How CPU training hands freed activation buffers back (backend.cpu_memory): decided by the memory there
# is, kept for the next step, or returned to the OS.
CPU_MEMORY_MODES = ("auto", "lean", "fast")

# The dtype an evaluation loads its model in (``eval.dtype``; backend.models.device.eval_dtype): the device's
# default (GPU bf16/fp16, CPU fp32), or one asked for. bfloat16 on a CPU with AMX scores ~2.6x faster than
# fp32 (bench/results/engine.md gives the figure and how often predictions change).
EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")
