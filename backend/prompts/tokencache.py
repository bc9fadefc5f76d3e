"""The tokenizer cache: a tokenizer wrapper that remembers the ids of texts it has seen (the only one).

Why: the engine tokenizes each wrapped piece separately, and while a template is edited the pieces that
carry the data (``text_a``, ``text_b``, meta fields) are the same strings keystroke after keystroke; only
the template's own text changes. Remembering ``text -> ids`` turns a dataset-wide length histogram from
thousands of tokenizer calls into dictionary look-ups. The memo is keyed by the exact text and belongs to
one tokenizer, so it can never go stale; it is bounded, and everything else is delegated untouched.

``add_special_tokens`` defaults to False because that is how the engine tokenizes (each wrapped piece,
label words, soft-token initial text): the model's special tokens are placed by ``encode``, never by the
tokenizer. A call that asks for special tokens (or passes other options) goes to the tokenizer unmemoized.
Used by the studio's model slot for the whole session and by ``encode_examples`` for one batch of work.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class MemoTokenizer:
    """Wraps ``tokenizer``; ``MemoTokenizer.of(tok)`` wraps only once."""

    def __init__(self, tokenizer: Any, maxsize: int = 200_000) -> None:
        self.inner = tokenizer
        self.maxsize = maxsize
        self._memo: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, tokenizer: Any) -> MemoTokenizer:
        """``tokenizer`` itself when it is already a cache (its memo is reused), else a new cache over it."""
        return tokenizer if isinstance(tokenizer, cls) else cls(tokenizer)

    def __call__(self, text: Any, add_special_tokens: bool = False, **kwargs: Any) -> Any:
        if add_special_tokens or kwargs or not isinstance(text, str):
            return self.inner(text, add_special_tokens=add_special_tokens, **kwargs)
        ids = self._memo.get(text)
        if ids is None:
            ids = list(self.inner(text, add_special_tokens=False)["input_ids"])
            self._remember({text: ids})
        return {"input_ids": ids}

    def warm(self, texts: Iterable[str]) -> int:
        """Tokenize unseen texts in one batch call (the fast tokenizer does this in Rust)."""
        todo = list(dict.fromkeys(t for t in texts if isinstance(t, str) and t and t not in self._memo))
        if not todo:
            return 0
        batch = self.inner(todo, add_special_tokens=False)["input_ids"]
        self._remember(dict(zip(todo, (list(b) for b in batch))))
        return len(todo)

    def _remember(self, items: dict[str, list[int]]) -> None:
        with self._lock:
            if len(self._memo) + len(items) > self.maxsize:
                self._memo.clear()  # simple and bounded; the next histogram refills what it needs
            self._memo.update(items)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy/pickle): avoid recursing into ourselves
            raise AttributeError(name)
        return getattr(self.inner, name)
