"""How CPU training and evaluation hand their activation buffers back: kept for the next step (fast) or
returned to the OS (lean). glibc only; elsewhere both are a no-op.

A training step allocates and frees ~1 GB of activation buffers (SmolLM2-135M, 250 tokens). glibc serves
large allocations with mmap, but its threshold is dynamic: every mmapped block that is freed raises the
threshold to that block's size, so after the first step every buffer comes from the heap, which then
fragments across steps (batches differ in length) and settles ~85 MB (0.16x the fp32 weights) above what a
step holds.

- **lean** fixes the threshold at ``MMAP_THRESHOLD``: each buffer is its own mapping, unmapped when freed.
  Resident memory stays at what the step holds, but every page is faulted in again on the next step:
  ~250k page faults a step, 20-40% of a step's time on this VM.
- **fast** keeps the buffers in the heap and does not trim it inside the block: no page faults after the
  first step, for the fragmentation above; the free heap goes back to the OS when the block ends.
- **auto** (the default) is fast when the machine has ``FAST_HEADROOM`` times the model's weights
  available, else lean: the extra ~0.2x of the weights matters only where memory is short.

The training loop, zero-shot evaluation and comparison jobs run in the mode ``train.cpu_memory`` resolves
to (``mode_for``, ``cpu_buffers``). bench/results/training_cpu_memory.md measures the step time of both,
training_rss.md their peak memory.
"""
from __future__ import annotations

import contextlib
import ctypes
import platform
from pathlib import Path
from typing import Any, Iterator

from backend.choices import CPU_MEMORY_MODES

M_TRIM_THRESHOLD = -1             # mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024       # bytes; activation buffers of a small batch are ~0.3-2 MB
DEFAULT_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024   # glibc's ceiling for the dynamic threshold on 64-bit
NEVER_TRIM = 2 ** 31 - 1           # mallopt takes a C int
# What glibc's dynamic rule converges to once large tensors have been freed: trim at twice the threshold.
AFTER_TRIM_THRESHOLD = 2 * DEFAULT_MMAP_THRESHOLD_MAX
FAST_HEADROOM = 3                 # auto: fast when MemAvailable >= this x the model's weight bytes


def _libc_function(name: str) -> ctypes._CFuncPtr | None:   # type: ignore[name-defined]
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _mallopt(param: int, nbytes: int) -> bool:
    """Set one of glibc's malloc thresholds (which also stops its dynamic adjustment of both); False where
    unsupported."""
    fn = _libc_function("mallopt")
    return bool(fn and fn(param, int(nbytes)) == 1)


def _malloc_trim() -> None:
    fn = _libc_function("malloc_trim")
    if fn is not None:
        fn(0)


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the kernel says can be allocated without swapping (MemAvailable); None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_memory_mode(choice: str, model_bytes: int, available: int | None = None) -> str:
    """``lean`` or ``fast`` for a ``train.cpu_memory`` choice; auto decides by the memory available now."""
    if choice not in CPU_MEMORY_MODES:
        raise ValueError(f"cpu memory mode {choice!r}: one of {', '.join(CPU_MEMORY_MODES)}")
    if choice != "auto":
        return choice
    available = available_memory() if available is None else available
    return "fast" if available is not None and available >= FAST_HEADROOM * model_bytes else "lean"


@contextlib.contextmanager
def buffers_returned_to_os(nbytes: int = MMAP_THRESHOLD) -> Iterator[bool]:
    """Within the block, buffers of ``nbytes`` and more are mmapped (freed straight back to the OS).

    Afterwards the threshold is left at glibc's dynamic ceiling, which is where the dynamic threshold
    settles in a process that has freed large tensors anyway.
    """
    applied = _mallopt(M_MMAP_THRESHOLD, nbytes)
    try:
        yield applied
    finally:
        if applied:
            _mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MAX)


@contextlib.contextmanager
def buffers_kept() -> Iterator[bool]:
    """Within the block, buffers below glibc's dynamic ceiling come from the heap and the heap is never
    trimmed (a step frees all it allocated, which would otherwise go back at the heap's top); afterwards
    the trim threshold is glibc's own rule again and what the block left free goes back to the OS."""
    applied = _mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MAX) and _mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield applied
    finally:
        if applied:
            _mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
            _malloc_trim()


def weight_bytes(model: Any) -> int:
    """Bytes of a torch module's parameters (shared ones once): the scale auto's memory check is read against."""
    return sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())


def mode_for(model: Any, device_type: str, choice: str = "auto") -> str | None:
    """The mode to run ``model`` in on ``device_type``: lean or fast on CPU, None elsewhere (no setting)."""
    return cpu_memory_mode(choice, weight_bytes(model)) if device_type == "cpu" else None


def cpu_buffers(mode: str | None) -> contextlib.AbstractContextManager[bool]:
    """The block for a resolved mode (``mode_for``); nothing for None."""
    if mode is None:
        return contextlib.nullcontext(False)
    return buffers_kept() if mode == "fast" else buffers_returned_to_os()
