"""Where Prompt Studio keeps what it derives from models (converted weights, file hashes).

One directory, overridable with ``PROMPT_STUDIO_CACHE`` so CI, tests and several checkouts can share a
single converted copy of the embedded model instead of converting it again each time.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PROMPT_STUDIO_CACHE"


def default_cache_dir() -> Path:
    """``$PROMPT_STUDIO_CACHE`` if set, else ``$XDG_CACHE_HOME/prompt-studio`` (``~/.cache/prompt-studio``);
    not created here. A cache, not the store: what is in it is derived again when it is deleted, and
    several studio homes share it rather than convert the embedded model once each. Absolute: a job's
    process starts in another folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser().absolute() if xdg else Path.home() / ".cache") / "prompt-studio"
