"""A small, caller-owned LRU of loaded models.

Loading even the embedded model costs a second or two and hundreds of MB, so the studio keeps the last
one or two models alive between requests. The cache is an object the caller creates and owns (no module
globals), keyed by everything that changes the loaded result.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from backend.models.device import select_device
from backend.models.loader import LoadedModel, load_model
from backend.models.paths import default_cache_dir
from backend.models.resolve import DEFAULT_MODEL

_Key = tuple[str, str, str, str]


class ModelCache:
    """Keep up to ``maxsize`` loaded models; the least recently used is dropped first."""

    def __init__(self, maxsize: int = 1, loader: Callable[..., LoadedModel] = load_model) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._loader = loader
        self._items: OrderedDict[_Key, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # Gradio serves requests from several threads

    def get(self, spec: str = DEFAULT_MODEL, *, device: str | torch.device | None = None,
            dtype: str | torch.dtype | None = None, cache_dir: Path | None = None) -> LoadedModel:
        """The cached model for these arguments, loading (and evicting the oldest) on a miss."""
        dev, dt = select_device(device, dtype)
        cache = cache_dir if cache_dir is not None else default_cache_dir()
        key = (spec.strip(), str(dev), str(dt), str(cache))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            while len(self._items) >= self.maxsize:  # free memory before loading the next one
                self._items.popitem(last=False)
            loaded = self._loader(spec, device=dev, dtype=dt, cache_dir=cache)
            self._items[key] = loaded
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
