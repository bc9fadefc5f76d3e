"""Browser-test helpers: a studio with a job runner on a tiny on-disk model (so job children can load
it), served on a free port, and a Debian chromium page on it (Playwright, never a downloaded browser)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def studio_with_jobs(folder: Path, tokenizer: Any) -> Iterator[tuple[str, Any]]:
    """(url, context) of a launched studio whose job runner runs real child processes."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from backend.services.testing import make_context, on_disk, with_jobs
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    loaded = on_disk(tiny_model("causal", tokenizer), Path(folder) / "tiny")
    ctx = with_jobs(make_context(Path(folder) / "studio", loaded))
    demo = build_app(ctx)
    launch(demo, ctx, block=False)
    try:
        yield demo.local_url, ctx
    finally:
        demo.close()
        ctx.close()


@contextlib.contextmanager
def browser_page(url: str, outside: list[str] | None = None) -> Iterator[Any]:
    """A page on ``url`` once the model is ready; ``outside`` collects any request leaving the studio."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        if outside is not None:
            page.on("request", lambda r: None if r.url.startswith(url) or r.url.startswith("data:")
                    else outside.append(r.url))
        page.goto(url)
        page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
        try:
            yield page
        finally:
            browser.close()
