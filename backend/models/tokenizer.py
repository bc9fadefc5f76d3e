"""Tokenizer loading and the two settings the engine relies on: a pad token and the padding side."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from backend.errors import ModelError

# Right padding for every kind: the engine reads logits at known token positions and builds its own
# batches; with right padding a causal model's position ids stay 0..n-1 for the real tokens, so padded
# and unpadded scoring agree without passing explicit position_ids.
PADDING_SIDE = "right"


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token by reusing an existing special token (never adds one).

    Adding a token would mean resizing the embeddings, which changes the model and its hash; padded
    positions are masked out anyway, so any existing special token works (eos is the usual choice).
    """
    if tokenizer.pad_token is None:
        for candidate in ("eos_token", "unk_token", "sep_token", "cls_token", "bos_token"):
            token = getattr(tokenizer, candidate, None)
            if token is not None:
                tokenizer.pad_token = token
                break
        else:
            raise ModelError("the tokenizer has no pad token and no special token to reuse as one")
    tokenizer.padding_side = PADDING_SIDE
    return tokenizer


def load_tokenizer_from(location: str | Path, **kwargs: Any) -> PreTrainedTokenizerBase:
    """AutoTokenizer with our settings; loading failures become ModelError."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(location), **kwargs)
    except Exception as exc:  # a broken tokenizer file raises almost anything; it is the user's file
        raise ModelError(f"cannot load the tokenizer from {location}: {exc}") from exc
    return ensure_pad_token(tokenizer)
