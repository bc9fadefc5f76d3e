"""The studio's HTTP API from a test, through gradio_client: one way to connect, so every test waits alike."""
from __future__ import annotations

from typing import Any

# gradio_client posts each call with httpx's default 5-second timeout. On a 2-core machine running the
# suite on two workers, the studio under test can take longer than that to accept a call while the other
# worker trains (seen: a ReadTimeout on /preview), which is the test machine's load, not a studio fault: a
# browser waits. A hung studio still fails the test, after this long.
REQUEST_TIMEOUT_S = 300


def api_client(url: str) -> Any:
    """A gradio_client.Client on ``url`` that waits up to REQUEST_TIMEOUT_S for each request."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT_S})
