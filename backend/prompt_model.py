"""PromptModel: a pretrained LM + the template's soft tokens + a verbalizer -> class scores.

Only what classification needs is computed: the LM head's input is captured at the mask position
(the head's own B x L x V product is skipped by a pre-hook that hands it an empty slice), and logits are
formed for the label-word rows of the output embedding only. Full-vocabulary logits at the mask are
computed only when top-k tokens are asked for.

Causal LMs also compute the batch's shared prefix once: a template's leading soft tokens and fixed text
(prompt tuning's 20 soft tokens, a chat template's system prompt) are the same tokens in every row, and
in a causal model their keys and values do not depend on what follows. They are run for one row, the
cache is repeated across the batch, and only the rest of each row goes through the model; gradients
still reach the soft tokens through the cached keys and values.

Causal rows are also packed instead of padded when padding would waste work: each row is cut after its
mask (later tokens cannot change the mask's hidden state) and the rows run back to back with their own
position ids, so no work or activation memory goes to padding (half of a padded few-shot SST-2 batch is
padding). On our attention function (models.lean) the whole batch is one sequence and attention alone
re-lays it as rows, each attending to its own tokens (RowAttention); on any other attention the rows go
in a few balanced packs under a block-diagonal causal mask, whose masked-out blocks attention still
computes. The shared prefix, or PEFT prefix tuning's trained keys/values, sits in front of every row.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from backend.batching import collate, pack_rows, packed_layout, packed_mask
from backend.models.lean import LEAN_SDPA, ROW_ATTENTION_TYPES, ROWS, row_attention
from backend.prompts.encode import Encoded
from backend.prompts.template import Template
from backend.prompts.verbalizer import CompiledVerbalizer


@contextlib.contextmanager
def capture_head_input(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Capture the hidden state fed to the output embedding and skip the vocabulary projection."""
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError("this model has no LM head (output embeddings)")
    box: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        box["hidden"] = hidden
        return (hidden[..., :0, :],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def _init_soft_rows(emb: nn.Embedding, template: Template, input_emb: torch.Tensor, seed: int) -> None:
    """Soft tokens start from real vocabulary rows (their init text, else random vocabulary rows).

    Never from N(0, 1): PEFT's own benchmark shows random-normal init fails to learn.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        vocab = input_emb.shape[0]
        # Skip the first rows, which hold special / byte tokens in most vocabularies.
        lo = min(1000, vocab // 4)
        for sid in range(1, template.num_soft_tokens + 1):
            row = template.soft_init.get(sid)
            if row is None:
                row = int(torch.randint(lo, vocab, (1,), generator=g))
            emb.weight[sid] = input_emb[row].to(emb.weight.dtype)


# Below this many shared tokens the extra one-row forward costs more than it saves.
MIN_SHARED_PREFIX = 4
# Rows are packed when padding would be at least this share of the padded batch's tokens.
PACK_MIN_SAVING = 0.15
# Tokens per packed sequence: attention within a pack grows with the square of its length.
PACK_CAPACITY = 256
# Rows run back to back and attended to one row at a time (our attention, models.lean.RowAttention) when
# padding would be at least this share of the padded batch's tokens: re-laying queries, keys and values
# as rows costs about this much of a layer.
ROWS_MIN_SAVING = 0.02
# Architectures whose rows may run packed (tested ones: they honour per-token position ids, and on other
# attention a ready 4D mask, as given), and the attention implementations that take such a mask
# (flash-attention kernels take none).
PACKABLE_MODEL_TYPES = ROW_ATTENTION_TYPES
SDPA_IMPLEMENTATIONS = frozenset({"sdpa", LEAN_SDPA})


def _is_prompt_learning(plm: nn.Module) -> bool:
    peft_cfg = getattr(plm, "active_peft_config", None)
    return peft_cfg is not None and bool(getattr(peft_cfg, "is_prompt_learning", False))


def _prefix_tokens(plm: nn.Module) -> int:
    """PEFT prefix tuning's virtual-token count (its keys/values sit in front of every row), else 0."""
    peft_cfg = getattr(plm, "active_peft_config", None)
    if peft_cfg is None or str(getattr(peft_cfg, "peft_type", "")).split(".")[-1] != "PREFIX_TUNING":
        return 0
    return int(peft_cfg.num_virtual_tokens)


def _sliding_window(config: Any) -> int | None:
    """The tokens a query may look back over when the model attends within a sliding window (Mistral), else None."""
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return None
    return int(window)


class PromptModel(nn.Module):
    """Wraps a transformers model; ``forward(batch)`` returns class log-probabilities (B, C)."""

    def __init__(self, plm: nn.Module, kind: str, template: Template, verbalizer: CompiledVerbalizer,
                 *, seed: int = 0, share_prefix: bool = True, pack: bool = True) -> None:
        super().__init__()
        self.plm = plm
        self.kind = kind
        self.share_prefix = share_prefix
        self.pack = pack
        # A trained verbalizer head (backend.methods.heads, WARP) replaces the LM head's label-word rows.
        self.register_module("soft_verbalizer", None)
        # A trained class head (ProtoVerb's prototypes, backend.methods.protoverb) turns the mask's hidden
        # state and the label words' class scores into the final class scores.
        self.register_module("class_head", None)
        self.template = template
        self.verbalizer = verbalizer
        input_emb = plm.get_input_embeddings().weight
        self.soft_embedding: nn.Embedding | None = None
        if template.num_soft_tokens:
            self.soft_embedding = nn.Embedding(template.num_soft_tokens + 1, input_emb.shape[1]).to(
                device=input_emb.device, dtype=input_emb.dtype)
            _init_soft_rows(self.soft_embedding, template, input_emb.detach(), seed)
        # On the model's device: every scoring loop sends its batches to ``label_rows.device`` (a PromptModel
        # outside training is never moved as a whole; accelerate moves it only for training).
        device = input_emb.device
        rows = verbalizer.first_token_ids
        self.register_buffer("label_rows", torch.tensor(rows, dtype=torch.long, device=device), persistent=False)
        index = {t: i for i, t in enumerate(rows)}
        n_cls = len(verbalizer.token_ids)
        n_words = max(len(ws) for ws in verbalizer.token_ids)
        n_sub = verbalizer.max_word_tokens
        sub = torch.zeros((n_cls, n_words, n_sub), dtype=torch.long)
        sub_mask = torch.zeros((n_cls, n_words, n_sub), dtype=torch.bool)
        word_mask = torch.zeros((n_cls, n_words), dtype=torch.bool)
        for c, words in enumerate(verbalizer.token_ids):
            for w, toks in enumerate(words):
                word_mask[c, w] = True
                for k, t in enumerate(toks):
                    sub[c, w, k] = index[t]
                    sub_mask[c, w, k] = True
        self.register_buffer("sub_index", sub.to(device), persistent=False)
        self.register_buffer("sub_mask", sub_mask.to(device), persistent=False)
        self.register_buffer("word_mask", word_mask.to(device), persistent=False)

    # ------------------------------------------------------------------ inputs

    def input_embeds(self, input_ids: torch.Tensor, soft_token_ids: torch.Tensor) -> torch.Tensor:
        embeds = self.plm.get_input_embeddings()(input_ids)
        if self.soft_embedding is not None and bool((soft_token_ids > 0).any()):
            soft = self.soft_embedding(soft_token_ids).to(embeds.dtype)
            embeds = torch.where((soft_token_ids > 0).unsqueeze(-1), soft, embeds)
        return embeds

    def _model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {"attention_mask": batch["attention_mask"]}
        if self.soft_embedding is not None:
            inputs["inputs_embeds"] = self.input_embeds(batch["input_ids"], batch["soft_token_ids"])
        else:
            inputs["input_ids"] = batch["input_ids"]
        if "decoder_input_ids" in batch:
            inputs["decoder_input_ids"] = batch["decoder_input_ids"]
        if self.kind == "causal":
            inputs["use_cache"] = False
        return inputs

    def shared_prefix_length(self, batch: dict[str, torch.Tensor]) -> int:
        """How many leading positions every row shares (0 when sharing does not apply).

        Only for causal LMs without PEFT's own virtual tokens (they already sit in front) and without
        activation checkpointing in training (transformers drops the cache there). The shared part stops
        before the first mask and before the end of the shortest row, so every row keeps its own tokens.
        """
        ids = batch["input_ids"]
        if not self.share_prefix or self.kind != "causal" or ids.shape[0] < 2 or "decoder_input_ids" in batch:
            return 0
        if _is_prompt_learning(self.plm):
            return 0
        if self.training and any(getattr(m, "gradient_checkpointing", False) for m in self.plm.modules()):
            return 0
        same = (ids == ids[:1]).all(0) & (batch["soft_token_ids"] == batch["soft_token_ids"][:1]).all(0)
        length = int(same.int().argmin()) if not bool(same.all()) else ids.shape[1]
        limit = min(int(batch["mask_pos"].min()), int(batch["attention_mask"].sum(1).min()) - 1)
        length = min(length, limit)
        return length if length >= MIN_SHARED_PREFIX else 0

    def _prefix_cache(self, inputs: dict[str, Any], length: int, copies: int) -> Any:
        """Run the first ``length`` positions for one row; its cache, repeated ``copies`` times."""
        key = "inputs_embeds" if "inputs_embeds" in inputs else "input_ids"
        head = self.plm(**{key: inputs[key][:1, :length]}, attention_mask=inputs["attention_mask"][:1, :length],
                        use_cache=True)
        cache = head.past_key_values
        if copies > 1:
            cache.batch_repeat_interleave(copies)
        return cache

    def _cached_prefix_inputs(self, inputs: dict[str, Any], length: int) -> dict[str, Any]:
        """The rest of every row, continuing from the shared prefix's cache."""
        key = "inputs_embeds" if "inputs_embeds" in inputs else "input_ids"
        x = inputs[key]
        return {key: x[:, length:], "attention_mask": inputs["attention_mask"],
                "past_key_values": self._prefix_cache(inputs, length, x.shape[0]), "use_cache": True}

    @property
    def packs_rows(self) -> bool:
        """Whether this model runs causal rows packed (when a batch's padding makes it pay)."""
        config = getattr(self.plm, "config", None)
        return (self.pack and self.kind == "causal"
                and getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
                and getattr(config, "_attn_implementation", None) in SDPA_IMPLEMENTATIONS | {"eager"}
                and (not _is_prompt_learning(self.plm) or _prefix_tokens(self.plm) > 0))

    @property
    def attends_per_row(self) -> bool:
        """Whether packed rows run as one sequence with per-row attention (models.lean.RowAttention) rather
        than in packs under a block-diagonal mask: our attention function does that, no other does."""
        return getattr(getattr(self.plm, "config", None), "_attn_implementation", None) == LEAN_SDPA

    def packing(self, batch: dict[str, torch.Tensor], shared: int) -> list[list[int]] | None:
        """The packs to run the rows in (lists of row indices), or None to run the batch padded. Under
        per-row attention, one pack holds every row."""
        if not self.packs_rows or "decoder_input_ids" in batch:
            return None
        needed = (batch["mask_pos"] + 1 - shared).tolist()
        window = _sliding_window(getattr(self.plm, "config", None))
        if window is not None and max(needed) + shared + _prefix_tokens(self.plm) > window:
            return None          # packed rows see every earlier token of their row: only the padded path has the window
        padded = len(needed) * (batch["input_ids"].shape[1] - shared)
        if self.attends_per_row:
            return [list(range(len(needed)))] if sum(needed) <= (1 - ROWS_MIN_SAVING) * padded else None
        packs = pack_rows(needed, max(PACK_CAPACITY, max(needed)))
        packed = len(packs) * max(sum(needed[r] for r in p) for p in packs)   # packs pad to the longest
        return packs if packed <= (1 - PACK_MIN_SAVING) * padded else None

    def _packed_mask_hidden(self, inputs: dict[str, Any], batch: dict[str, torch.Tensor], shared: int,
                            packs: list[list[int]]) -> torch.Tensor:
        key = "inputs_embeds" if "inputs_embeds" in inputs else "input_ids"
        x = inputs[key]
        ends = (batch["mask_pos"] + 1).tolist()
        layout = {k: v.to(x.device) for k, v in packed_layout(ends, shared, packs).items()}
        virtual = _prefix_tokens(self.plm)
        call = {key: x[layout["rows"], layout["cols"]], "position_ids": layout["cols"] + virtual, "use_cache": False}
        if self.attends_per_row:    # one sequence (packs == [every row]); attention one row at a time
            call.update({"attention_mask": None,
                         ROWS: row_attention([ends[r] - shared for r in packs[0]], shared + virtual, x.device)})
        else:
            eager = self.plm.config._attn_implementation not in SDPA_IMPLEMENTATIONS
            dtype = self.plm.get_input_embeddings().weight.dtype if eager else None
            call["attention_mask"] = packed_mask(layout["seg"], shared + virtual, dtype)
        model = self.plm
        with capture_head_input(self.plm) as box:
            if virtual:
                # PEFT prefix tuning: its trained keys/values are the packs' shared prefix. PEFT's own forward
                # would append a 2D mask to ours, so the base model is called directly, as PEFT calls it.
                width = call[key].shape[1]
                call.update(past_key_values=self.plm.get_prompt(len(packs), max_cache_len=width + virtual),
                            use_cache=True)
                model = self.plm.base_model
            elif shared:
                call.update(past_key_values=self._prefix_cache(inputs, shared, len(packs)), use_cache=True)
            model(**call)
        read = layout["read"]
        return box["hidden"][read[:, 0], read[:, 1]]

    def mask_hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The LM head's input at the position where the label is read: (B, H)."""
        inputs = self._model_inputs(batch)
        shared = self.shared_prefix_length(batch)
        packs = self.packing(batch, shared)
        if packs is not None:
            return self._packed_mask_hidden(inputs, batch, shared, packs)
        with capture_head_input(self.plm) as box:
            if shared:
                inputs = self._cached_prefix_inputs(inputs, shared)
            self.plm(**inputs)
        hidden = box["hidden"]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, batch["mask_pos"] - shared]

    def _head_rows(self, hidden: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        head = self.plm.get_output_embeddings()
        weight = head.weight if rows is None else head.weight[rows]
        out = hidden.to(weight.dtype) @ weight.T
        bias = getattr(head, "bias", None)
        if bias is not None:
            out = out + (bias if rows is None else bias[rows])
        return out.float()

    def label_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the label-word sub-tokens only: (B, R), from the soft verbalizer when one is attached."""
        if self.soft_verbalizer is not None:
            return self.soft_verbalizer(hidden)
        return self._head_rows(hidden, self.label_rows)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._head_rows(hidden, None)

    # ------------------------------------------------------------------ scoring

    def word_scores(self, row_logits: torch.Tensor) -> torch.Tensor:
        """(B, R) label-row logits -> (B, C, W) log-prob of each word among the label words."""
        sub = row_logits[:, self.sub_index]                 # B, C, W, T
        mode = self.verbalizer.verbalizer.multi_token
        if mode == "max":
            sub = sub.masked_fill(~self.sub_mask, float("-inf")).amax(-1)
        elif mode == "mean":
            sub = (sub * self.sub_mask).sum(-1) / self.sub_mask.sum(-1).clamp(min=1)
        else:  # first (and exact's first step when no teacher forcing is available)
            sub = sub[..., 0]
        sub = sub.masked_fill(~self.word_mask, float("-inf"))
        flat = sub.flatten(1)
        return torch.log_softmax(flat, dim=-1).view_as(sub)

    def class_scores(self, word_logprobs: torch.Tensor) -> torch.Tensor:
        """(B, C, W) word log-probs -> (B, C) class log-probs (renormalised over classes)."""
        if self.verbalizer.verbalizer.aggregate == "mean":
            masked = word_logprobs.masked_fill(~self.word_mask, 0.0)
            scores = masked.sum(-1) / self.word_mask.sum(-1).clamp(min=1)
        else:
            scores = torch.logsumexp(word_logprobs, dim=-1)
        return torch.log_softmax(scores, dim=-1)

    def scores(self, hidden: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H) mask hidden states -> (B, C) class log-probs: the label words' (``words`` when already
        scored, e.g. by teacher forcing), through the class head when one is attached."""
        if words is None:
            words = self.class_scores(self.word_scores(self.label_logits(hidden)))
        return words if self.class_head is None else self.class_head(hidden, words)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scores(self.mask_hidden(batch))

    def exact_class_scores(self, encoded: list[Encoded], pad_id: int) -> torch.Tensor:
        """Causal models: score each label word by teacher forcing (sum of its sub-token log-probs).

        Every (example, word) pair becomes one sequence ``prompt + word[:-1]``; the log-prob of sub-token k
        is read at the position just before it, normalised over the whole vocabulary.
        """
        words = [(c, w, toks) for c, ws in enumerate(self.verbalizer.token_ids) for w, toks in enumerate(ws)]
        seqs, reads = [], []
        for e in encoded:
            for _c, _w, toks in words:
                extra = tuple(toks[:-1])
                seqs.append(Encoded(input_ids=e.input_ids + extra, loss_ids=e.loss_ids + (0,) * len(extra),
                                    soft_token_ids=e.soft_token_ids + (0,) * len(extra),
                                    piece_index=e.piece_index + (-1,) * len(extra),
                                    mask_positions=e.mask_positions, profile=e.profile))
                reads.append([e.mask_positions[0] + k for k in range(len(toks))])
        device = self.label_rows.device
        batch = collate(seqs, pad_id, device)
        with capture_head_input(self.plm) as box:
            self.plm(**self._model_inputs(batch))
        hidden = box["hidden"]
        n_cls, n_words = self.word_mask.shape
        out = torch.full((len(encoded), n_cls, n_words), float("-inf"), device=device)
        for i, (read, (c, w, toks)) in enumerate(zip(reads, words * len(encoded))):
            logp = torch.log_softmax(self.vocab_logits(hidden[i, read]), dim=-1)
            out[i // len(words), c, w] = logp[torch.arange(len(toks), device=device), torch.tensor(toks, device=device)].sum()
        return self.class_scores(out)
