"""Hand freed activation buffers back to the OS during CPU training (glibc only; elsewhere a no-op).

glibc serves large allocations with mmap, but its threshold is dynamic: every mmapped block that is freed
raises the threshold to that block's size, so after the first training step every activation buffer comes
from the heap. The heap then fragments across steps and does not shrink: on SmolLM2 prompt tuning the
process settles ~85 MB (0.16x the fp32 weights) above what a step actually holds. A fixed threshold keeps
buffers of ``MMAP_THRESHOLD`` bytes and more on mmap, returned to the OS when freed, for a few page faults
when the next step allocates them again (bench/results/training_rss.md and training_speed.md measure both).
"""
from __future__ import annotations

import contextlib
import ctypes
import platform
from typing import Iterator

M_MMAP_THRESHOLD = -3             # mallopt parameter number (malloc.h)
MMAP_THRESHOLD = 256 * 1024       # bytes; activation buffers of a small batch are ~0.3-2 MB
DEFAULT_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024   # glibc's ceiling for the dynamic threshold on 64-bit


def _mallopt() -> ctypes._CFuncPtr | None:   # type: ignore[name-defined]
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def set_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold (which also stops its dynamic adjustment); False where unsupported."""
    fn = _mallopt()
    return bool(fn and fn(M_MMAP_THRESHOLD, int(nbytes)) == 1)


@contextlib.contextmanager
def buffers_returned_to_os(nbytes: int = MMAP_THRESHOLD) -> Iterator[bool]:
    """Within the block, buffers of ``nbytes`` and more are mmapped (freed straight back to the OS).

    Afterwards the threshold is left at glibc's dynamic ceiling, which is where the dynamic threshold
    settles in a process that has freed large tensors anyway.
    """
    applied = set_mmap_threshold(nbytes)
    try:
        yield applied
    finally:
        if applied:
            set_mmap_threshold(DEFAULT_MMAP_THRESHOLD_MAX)
