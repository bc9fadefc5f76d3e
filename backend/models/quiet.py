"""Quiet library calls: no per-call tqdm bars and no deprecation warnings about calls the user never made.

Why: transformers 5 draws a "Loading weights" bar on every ``from_pretrained`` (a fraction of a second for
our models) and PEFT asks ``model.is_gradient_checkpointing``, which transformers 5 answers with a
FutureWarning. Both reached every CLI command's terminal and every job's log although neither is about
anything the user did. The bars are switched off only for the duration of our own calls and the one
warning is filtered by its text there, so other warnings (and a user's own use of the libraries) stay.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

# Deprecations raised inside the libraries by the libraries themselves (PEFT -> transformers).
_LIBRARY_DEPRECATIONS = (r".*`?is_gradient_checkpointing`? is deprecated",)


@contextmanager
def quiet_hf() -> Iterator[None]:
    """Run a transformers / PEFT call without its progress bars and its library-internal deprecations."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for pattern in _LIBRARY_DEPRECATIONS:
                warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
            yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
