"""Whether the Hugging Face hub may be, and can be, reached: asked before a hub read, so that an offline
machine answers "not here" at once instead of after the hub client's retries (~23 s of back-off for a
dataset id on a machine without DNS)."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

_TRUE = ("1", "true", "yes", "on")


def offline() -> bool:
    """True when the user asked for offline mode (read now, not at import time, so tests can set it)."""
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().lower()
    return env in _TRUE or bool(constants.HF_HUB_OFFLINE)


def reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub's endpoint (``HF_ENDPOINT``) opens within ``timeout``."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False
