"""Where Prompt Studio keeps what it derives from models (converted weights, file hashes).

One directory, overridable with ``PROMPT_STUDIO_CACHE`` so CI, tests and several checkouts can share a
single converted copy of the embedded model instead of converting it again each time.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PROMPT_STUDIO_CACHE"


def default_cache_dir() -> Path:
    """``$PROMPT_STUDIO_CACHE`` if set, else ``~/.cache/prompt-studio`` (not created here)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prompt-studio"
