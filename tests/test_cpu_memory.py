"""CPU activation buffers: returned to the OS (lean) or kept for the next step (fast), and the
automatic choice between them (backend/cpu_memory.py)."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from backend.training import MemorySink, run_training
from backend.cpu_memory import FAST_HEADROOM, available_memory, cpu_memory_mode
from tests.tiny import tiny_model
from tests.training_helpers import DATA, train_config

ROOT = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc only")

# backend.cpu_memory needs ctypes and backend.choices only: a fresh process imports it alone
_LOAD_HEAP = """
import resource, sys, torch
from backend import cpu_memory as heap
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
"""

_PINNED_HEAP = _LOAD_HEAP + """
def run():
    torch.ones(1 << 20)                        # a 4 MiB buffer freed: glibc's dynamic threshold rises past 1 MiB
    before = rss()
    big, pins = [], []
    for _ in range(200):
        big.append(torch.ones(256 * 1024))     # 1 MiB, touched
        pins.append(torch.ones(16 * 1024))     # 64 KiB, long-lived: pins the heap above each big buffer
    grown = rss() - before
    del big
    print(grown >> 20, (rss() - before) >> 20)
if sys.argv[1] == "on":
    with heap.buffers_returned_to_os():
        run()
else:
    run()
"""

# A training step's pattern: buffers of a few sizes allocated, touched, freed; the fourth step's faults (the
# heap settles over the first steps).
_STEPS = _LOAD_HEAP + """
def step(sizes):
    held = [torch.ones(n) for n in sizes]      # touched, as activations are
    del held
with heap.cpu_buffers(sys.argv[1]):
    sizes = [256 * 1024, 384 * 1024, 148 * 1024, 512 * 1024] * 20     # 0.6-2 MiB buffers, ~100 MiB a step
    for _ in range(3):
        step(sizes)
    before = faults()
    step(sizes)
    print(faults() - before)
"""


def _run(script: str, *args: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return [int(v) for v in out.stdout.split()]


@glibc_only
def test_freed_buffers_go_back_to_the_os():
    """Small long-lived tensors between big freed ones keep glibc's heap from shrinking; with the setting
    the big buffers never enter the heap."""
    grown, kept = _run(_PINNED_HEAP, "off")
    assert grown > 150 and kept > 150, (grown, kept)       # the failure mode being fixed
    grown, kept = _run(_PINNED_HEAP, "on")
    assert grown > 150 and kept < 30, (grown, kept)


@glibc_only
def test_fast_mode_reuses_buffers_without_page_faults():
    """Lean hands each buffer back and faults every page in again on the next step (~26k pages here);
    fast serves the next step from the heap it kept."""
    (lean,) = _run(_STEPS, "lean")
    (fast,) = _run(_STEPS, "fast")
    assert lean > 20_000, lean
    assert fast < 0.05 * lean, (fast, lean)


def test_auto_is_fast_only_with_room_to_spare():
    weights = 500 * 2 ** 20
    assert cpu_memory_mode("auto", weights, available=FAST_HEADROOM * weights) == "fast"
    assert cpu_memory_mode("auto", weights, available=FAST_HEADROOM * weights - 1) == "lean"
    assert cpu_memory_mode("lean", weights, available=100 * weights) == "lean"
    assert cpu_memory_mode("fast", weights, available=0) == "fast"
    with pytest.raises(ValueError, match="auto, lean, fast"):
        cpu_memory_mode("quick", weights, available=0)


def test_auto_without_a_memory_figure_is_lean(tmp_path, monkeypatch):
    import backend.cpu_memory as heap

    monkeypatch.setattr(heap, "available_memory", lambda: None)
    assert cpu_memory_mode("auto", 1) == "lean"


def test_available_memory_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   12345 kB\n")
    assert available_memory(meminfo) == 12345 * 1024
    meminfo.write_text("MemTotal: 1 kB\n")
    assert available_memory(meminfo) is None
    assert available_memory(tmp_path / "absent") is None


@pytest.mark.parametrize("choice,kept", [("lean", 0.0), ("fast", 1.0)])
def test_a_run_records_which_mode_it_trained_in(smol_tok, tmp_path, choice, kept):
    sink = MemorySink()
    run_training(train_config("causal", {"name": "lora"}, tmp_path, steps=1, cpu_memory=choice), sink=sink,
                 loaded=tiny_model("causal", smol_tok), data=DATA)
    assert sink.values("train/cpu_buffers_kept") == [kept]


def test_an_unknown_mode_is_refused_at_the_config(tmp_path):
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match="cpu_memory"):
        train_config("causal", {"name": "lora"}, tmp_path, cpu_memory="quick")


@pytest.mark.parametrize("choice", ["lean", "fast"])
def test_a_zero_shot_evaluation_runs_in_the_configured_mode(smol_tok, tmp_path, monkeypatch, choice):
    import contextlib
    import json

    import backend.pipeline as pipeline
    from backend.config import RunConfig

    seen = []

    @contextlib.contextmanager
    def recorded(mode):
        seen.append(mode)
        with pipeline_buffers(mode):
            yield True

    pipeline_buffers = pipeline.cpu_buffers
    monkeypatch.setattr(pipeline, "cpu_buffers", recorded)
    dev = tmp_path / "dev.jsonl"
    dev.write_text("\n".join(json.dumps({"text_a": f"review {i}", "label": "positive" if i % 2 else "negative"})
                             for i in range(4)) + "\n")
    cfg = RunConfig.from_dict({"model": "tiny-causal", "data": {"eval": str(dev)}, "template": "{text_a} It was {mask}",
                               "verbalizer": {"negative": ["bad"], "positive": ["good"]},
                               "train": {"cpu_memory": choice}})
    result, _ = pipeline.run_zero_shot(cfg, loaded=tiny_model("causal", smol_tok))
    assert seen == [choice] and len(result.predictions) == 4
