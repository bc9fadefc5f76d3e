"""Browser-test helpers: a studio with a job runner on a tiny on-disk model (so job children can load
it), served on a free port, and a Debian chromium page on it (Playwright, never a downloaded browser)."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_or_skip() -> None:
    """Skip (with the reason) where Debian's chromium or Playwright is missing."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (the Python package) is not installed")


@contextlib.contextmanager
def launched_studio(folder: Path, tokenizer: Any, jobs: bool = True,
                    **launch_options: Any) -> Iterator[tuple[str, Any]]:
    """(url, context) of a launched studio on a tiny causal model; ``jobs``: with a job runner that runs
    real child processes (the model then lives on disk so that they can load it); ``launch_options`` go to
    ``studio.app.launch`` (``auth``, ``ready_s``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from backend.services.testing import make_context, on_disk, with_jobs
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    loaded = tiny_model("causal", tokenizer)
    if jobs:
        ctx = with_jobs(make_context(Path(folder) / "studio", on_disk(loaded, Path(folder) / "tiny")))
    else:
        ctx = make_context(Path(folder) / "studio", loaded)
    demo = build_app(ctx)
    launch(demo, ctx, block=False, **launch_options)
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


@pytest.fixture(scope="module")
def studio(tmp_path_factory: Any, smol_tok: Any) -> Iterator[tuple[str, Any]]:
    """A module's launched studio with a job runner: ``from tests.browser_helpers import page, studio``."""
    browser_or_skip()
    with launched_studio(tmp_path_factory.mktemp("browser"), smol_tok) as served:
        yield served


@pytest.fixture(scope="module")
def page(studio: tuple[str, Any]) -> Iterator[Any]:
    """One page on the module's studio, kept across its tests."""
    with browser_page(studio[0]) as pg:
        yield pg


def tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def load_builtin(page: Any, name: str) -> None:
    """Load a built-in dataset on the Data tab and wait until its summary shows."""
    tab(page, "Data")
    page.locator("#ps-data-builtin input").click()
    page.locator("ul[role='listbox'] li", has_text=name).click()
    page.locator("#ps-data-load").click()
    page.wait_for_function(f"document.querySelector('#ps-data-summary')?.innerText.includes('{name}')",
                           timeout=30_000)


def shot(page: Any, name: str) -> None:
    """A full-page screenshot under test-artifacts/screenshots/ (kept by CI for a look afterwards)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name.lower()}.png"), full_page=True)


def text_of(page: Any, selector: str) -> str:
    """The element's visible text, '' when it is not on the page."""
    return page.evaluate(f"() => {{ const e = document.querySelector({selector!r}); return e ? e.innerText : ''; }}")


def wait_text(page: Any, selector: str, needle: str, timeout: int = 30_000) -> None:
    """Wait until the element's visible text contains ``needle``."""
    page.wait_for_function(f"() => {{ const e = document.querySelector({selector!r});"
                           f" return e && e.innerText.includes({needle!r}); }}", timeout=timeout)
