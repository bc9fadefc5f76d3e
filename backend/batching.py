"""Encode many examples once and batch them with dynamic padding in length-sorted buckets.

Why: padding every example to max_length (OpenPrompt's habit) wastes most of the compute on short
inputs; sorting by length before batching keeps padding to a few tokens per batch.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch

from backend.prompts.demos import Demo
from backend.prompts.encode import Encoded, TokenizerInfo, describe_tokenizer, encode
from backend.prompts.example import Example
from backend.prompts.template import Template
from backend.prompts.tokencache import MemoTokenizer
from backend.prompts.wrap import wrap


@dataclass(frozen=True)
class EncodeSettings:
    profile: str = "masked"
    max_length: int = 256
    truncate: str = "tail"


class EncodeCache:
    """Encodings keyed by the content hash of (wrapped pieces, settings, tokenizer): each distinct input
    is tokenized once however often it is seen (training epochs, dataset-wide previews).

    The key covers everything the encoding depends on, so a changed template or tokenizer can never
    hit a stale entry. Caller-owned and size-bounded (least recently used entries are evicted).
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._items: OrderedDict[str, Encoded] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(wrapped: Any, settings: EncodeSettings, tokenizer: Any) -> str:
        h = hashlib.sha1()
        h.update(repr((settings, getattr(tokenizer, "name_or_path", ""), len(tokenizer))).encode())
        for p in wrapped.pieces:
            h.update(repr((p.text, p.loss_ids, p.shortenable_ids, p.soft_token_ids, p.demo)).encode())
        return h.hexdigest()

    def get_or_encode(self, wrapped: Any, tokenizer: Any, settings: EncodeSettings,
                      info: TokenizerInfo) -> Encoded:
        k = self.key(wrapped, settings, tokenizer)
        hit = self._items.get(k)
        if hit is not None:
            self.hits += 1
            self._items.move_to_end(k)
            return hit
        self.misses += 1
        enc = encode(wrapped, tokenizer, profile=settings.profile, max_length=settings.max_length,
                     truncate=settings.truncate, info=info)
        self._items[k] = enc
        if len(self._items) > self._max:
            self._items.popitem(last=False)
        return enc


def encode_examples(template: Template, examples: Sequence[Example], tokenizer: Any,
                    settings: EncodeSettings, info: TokenizerInfo | None = None,
                    cache: EncodeCache | None = None, demos: Sequence[Sequence[Demo]] | None = None
                    ) -> list[Encoded]:
    """Wrap and encode every example; ``demos[i]``: the demonstrations chosen for ``examples[i]``."""
    info = info or describe_tokenizer(tokenizer)
    tok = MemoTokenizer.of(tokenizer)   # the studio's cache when it passes one, so its memo fills
    wrapped = [wrap(template, ex, demos[i] if demos else ()) for i, ex in enumerate(examples)]
    if cache is not None:
        return [cache.get_or_encode(w, tok, settings, info) for w in wrapped]
    return [encode(w, tok, profile=settings.profile, max_length=settings.max_length,
                   truncate=settings.truncate, info=info) for w in wrapped]


def length_sorted_batches(lengths: Sequence[int], batch_size: int, *, shuffle_seed: int | None = None
                          ) -> list[list[int]]:
    """Index batches of similar length; with a seed, the batch order is shuffled (for training)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle_seed is not None:
        g = torch.Generator().manual_seed(shuffle_seed)
        perm = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in perm]
    return batches


def split_by_tokens(rows: Sequence[int], lengths: Sequence[int], budget: int | None, *,
                    packed: bool = False) -> list[list[int]]:
    """Consecutive chunks of ``rows`` whose size stays within ``budget`` tokens; every chunk has at least
    one row. ``budget`` None or 0: one chunk. The size of a chunk is what the model runs: rows x longest
    row when rows are padded, the sum of the rows' lengths when the model packs them (``packed``).

    Training accumulates the chunks' gradients into one optimizer step, so the step is the same while the
    activations kept for the backward pass shrink with the chunk (see TrainOptions.micro_batch_tokens).
    """
    if not budget:
        return [list(rows)]
    chunks: list[list[int]] = []
    current: list[int] = []
    width = total = 0
    for r in rows:
        w, t = max(width, lengths[r]), total + lengths[r]
        if current and (t if packed else w * (len(current) + 1)) > budget:
            chunks.append(current)
            current, w, t = [], lengths[r], lengths[r]
        current.append(r)
        width, total = w, t
    if current:
        chunks.append(current)
    return chunks


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Row indices in as few bins as hold ``sum(lengths)`` at ``capacity`` tokens each, balanced.

    Longest row first into the least-filled bin (deterministic: ties go to the lower row / bin), so the
    bins end up about equally long: they are padded to the longest bin when run as one batch. Rows within
    a bin stay in row order. Runs a batch's rows back to back instead of padding each to the longest row.
    """
    n_bins = max(1, min(len(lengths), -(-sum(lengths) // max(1, capacity))))
    bins: list[list[int]] = [[] for _ in range(n_bins)]
    load = [0] * n_bins
    for r in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        b = min(range(n_bins), key=lambda j: (load[j], j))
        bins[b].append(r)
        load[b] += lengths[r]
    return [sorted(b) for b in bins if b]


def packed_layout(ends: list[int], shared: int, bins: list[list[int]]) -> dict[str, torch.Tensor]:
    """Where each packed position comes from (row, column), its segment (row, -1 for padding), and
    where each row's last token lands (pack, offset)."""
    width = max(sum(ends[r] - shared for r in b) for b in bins)
    rows = torch.zeros((len(bins), width), dtype=torch.long)
    cols = torch.zeros((len(bins), width), dtype=torch.long)
    seg = torch.full((len(bins), width), -1, dtype=torch.long)
    read = torch.zeros((len(ends), 2), dtype=torch.long)
    for p, members in enumerate(bins):
        offset = 0
        for r in members:
            n = ends[r] - shared
            rows[p, offset:offset + n] = r
            cols[p, offset:offset + n] = torch.arange(shared, ends[r])
            seg[p, offset:offset + n] = r
            read[r] = torch.tensor([p, offset + n - 1])
            offset += n
    return {"rows": rows, "cols": cols, "seg": seg, "read": read}


def packed_mask(seg: torch.Tensor, shared: int, dtype: torch.dtype | None) -> torch.Tensor:
    """4D mask (packs, 1, width, shared + width): a token sees the shared prefix and the earlier tokens of
    its own row; padding sees only itself (a query with nothing to attend to would give NaN). Boolean
    (True = attend) for ``dtype`` None, as SDPA takes under any autocast dtype, else additive in ``dtype``
    for eager attention."""
    width = seg.shape[1]
    pos = torch.arange(width, device=seg.device)
    real = seg >= 0
    within = (seg[:, :, None] == seg[:, None, :]) & (pos[:, None] >= pos[None, :]) & real[:, :, None]
    within |= (~real)[:, :, None] & (pos[:, None] == pos[None, :])
    allowed = torch.cat([real[:, :, None].expand(-1, -1, shared), within], dim=-1) if shared else within
    if dtype is None:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seg.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def collate(encoded: Iterable[Encoded], pad_id: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Right-pad a list of encodings to the longest one; returns model-ready tensors."""
    encs = list(encoded)
    width = max(e.length for e in encs)
    n = len(encs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    att = torch.zeros((n, width), dtype=torch.long)
    soft = torch.zeros((n, width), dtype=torch.long)
    mask_pos = torch.zeros((n,), dtype=torch.long)
    for i, e in enumerate(encs):
        ln = e.length
        ids[i, :ln] = torch.tensor(e.input_ids, dtype=torch.long)
        att[i, :ln] = 1
        if any(e.soft_token_ids):
            soft[i, :ln] = torch.tensor(e.soft_token_ids, dtype=torch.long)
        mask_pos[i] = e.mask_positions[0]
    batch = {"input_ids": ids, "attention_mask": att, "soft_token_ids": soft, "mask_pos": mask_pos}
    if encs[0].decoder_input_ids is not None:
        batch["decoder_input_ids"] = torch.tensor([list(e.decoder_input_ids) for e in encs], dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}
