"""The own-CSV flow in a real browser, counted in clicks: a CSV whose columns are not called text / label
(``id``, ``review``, ``sentiment``) is uploaded, its guessed mapping accepted as is, a template and label
words typed, the prompt evaluated, trained, compared with its zero-shot run and tried in the playground.

Acceptance (issue #13): at most five clicks from the upload to the trained result (typing aside), no
server path anywhere on the page, no console error. ``PS_UX_SCREENSHOTS=1`` writes one screenshot per step
to ``bench/results/ux/`` (1280x800), so an ordinary run never rewrites the committed pictures.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from tests.browser_helpers import ARGS, CHROMIUM, browser_or_skip, launched_studio

SHOTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "ux"
FAILED = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots" / "ux-flow-failed.png"
MAX_CLICKS = 5
TEMPLATE = "Review: {text_a} Overall, the film was {mask}"   # a causal LM: the mask last
WORDS = "negative: bad\npositive: good"

pytestmark = pytest.mark.slow

POSITIVE = ["a warm, funny story", "the best film this year", "lovely acting and a clever plot", "pure joy",
            "moving and beautifully shot", "a delight from start to end"]
NEGATIVE = ["a dull, lifeless mess", "the worst script in years", "boring and far too long", "a waste of time",
            "flat jokes and wooden acting", "I walked out halfway"]


def _write_csv(path: Path) -> Path:
    """60 reviews, columns named neither text nor label; every row different (no dev row a training row)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "review", "sentiment"])
        for i in range(30):
            out.writerow([2 * i, f"{POSITIVE[i % 6]}, said viewer {i}", "positive"])
            out.writerow([2 * i + 1, f"{NEGATIVE[i % 6]}, said viewer {i}", "negative"])
    return path


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    browser_or_skip()
    folder = tmp_path_factory.mktemp("uxflow")
    with launched_studio(folder, smol_tok) as (url, _ctx):
        yield {"url": url, "folder": folder, "csv": _write_csv(folder / "reviews.csv")}


class Flow:
    """The page, the clicks made on it since the upload, the console errors, and the checks run at each step."""

    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.clicks, self.errors, self.n = page, folder, 0, [], 0
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def click(self, locator) -> None:
        self.clicks += 1
        locator.click()

    def tab(self, name: str, counted: bool = True) -> None:
        button = self.page.locator("#ps-tabs").get_by_role("tab", name=name, exact=True).first
        self.click(button) if counted else button.click()

    def step(self, name: str, show: str | None = None) -> None:
        """Every step: no server path in what the page shows or holds, no console error, a screenshot
        (scrolled to ``show`` when what the step produced is below the fold)."""
        text = self.page.evaluate("() => document.body.innerText + '\\n' + Array.from("
                                  "document.querySelectorAll('input, textarea')).map(e => e.value).join('\\n')")
        leaks = [p for p in (str(self.folder), "/tmp/", "/home/", "/root/", "gradio/") if p in text]
        assert not leaks, f"{name}: server path on the page: {leaks} in ...{_around(text, leaks[0])}..."
        assert not self.errors, f"{name}: console errors {self.errors}"
        self.n += 1
        if os.environ.get("PS_UX_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            if show:
                self.page.locator(show).scroll_into_view_if_needed()
            self.page.screenshot(path=str(SHOTS / f"{self.n:02d}-{name}.png"))


def _around(text: str, needle: str) -> str:
    i = text.find(needle)
    return text[max(0, i - 60): i + 60]


def _wait_text(page, selector: str, needle: str, timeout: int = 30_000) -> None:
    page.wait_for_function(f"(document.querySelector({selector!r}) || {{}}).innerText?.includes({needle!r})",
                           timeout=timeout)


def _pick(page, dropdown: str, option_text: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator("ul[role='listbox'] li", has_text=option_text).first.click()


def test_own_csv_upload_to_trained_result_in_five_clicks(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        flow = Flow(page, studio["folder"])
        try:
            _run_flow(flow, studio)
        except Exception:
            FAILED.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(FAILED), full_page=True)   # what the page showed when it failed
            raise
        finally:
            browser.close()


def _run_flow(flow: Flow, studio: dict) -> None:
    page = flow.page
    page.goto(studio["url"])
    page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
    flow.step("opened")

    # Data: choose Upload and the file (before the upload: not counted); it loads at once
    flow.tab("Data", counted=False)
    page.locator("#ps-data-kind label", has_text="Upload").click()
    page.locator("#ps-data-upload input[type=file]").set_input_files(str(studio["csv"]))
    _wait_text(page, "#ps-data-summary", "reviews.csv")
    assert page.locator("#ps-col-text-a input").input_value() == "review"
    assert page.locator("#ps-col-label input").input_value() == "sentiment"
    assert "sentiment" in page.locator("#ps-data-msg").inner_text()       # the guess, said in a line
    flow.step("upload-guessed-mapping", show="#ps-col-label")
    flow.clicks = 0                                                       # counting starts here

    flow.tab("Template")
    page.locator("#ps-template textarea").fill(TEMPLATE)
    _wait_text(page, "#ps-template-feedback", "Template OK")
    _wait_text(page, "#ps-preview", "Overall")
    flow.step("template")

    flow.tab("Verbalizer")
    page.locator("#ps-label-words textarea").fill(WORDS)
    page.wait_for_selector("#ps-coverage table", timeout=30_000)
    flow.step("label-words")

    flow.tab("Evaluate")
    flow.click(page.locator("#ps-eval-run"))
    _wait_text(page, "#ps-eval-card", "accuracy", timeout=120_000)
    flow.step("evaluated")

    flow.click(page.locator("#ps-train-now"))
    page.wait_for_selector("#ps-train-status[data-status='succeeded']", timeout=300_000)
    _wait_text(page, "#ps-train-progress", "final accuracy")
    page.wait_for_function("(document.querySelector('#ps-train-curves .js-plotly-plot') || {}).data"
                           "?.some(d => (d.name || '').startsWith('best '))", timeout=30_000)
    flow.step("trained")
    assert flow.clicks <= MAX_CLICKS, f"{flow.clicks} clicks from the upload to the trained result"
    trained = re.search(r"Run #(\d+)", page.locator("#ps-train-progress").inner_text()).group(1)

    flow.tab("Runs")
    _pick(page, "#ps-compare-runs", f"#{trained} ")
    _pick(page, "#ps-compare-runs", "zero-shot")
    page.locator("#ps-compare").click()
    _wait_text(page, "#ps-compare-metrics", "accuracy")
    page.wait_for_selector("#ps-compare-plot .js-plotly-plot", timeout=30_000)
    page.wait_for_function("!document.querySelector('.progress-text')", timeout=30_000)   # nothing pending
    flow.step("compare", show="#ps-compare-metrics")

    flow.tab("Playground")
    page.locator("#ps-play-text textarea").fill("a warm, funny story that I loved")
    _pick(page, "#ps-play-runs", f"#{trained} ")
    page.locator("#ps-play-go").click()
    page.wait_for_selector("#ps-play-cards .ps-card", timeout=60_000)
    assert f"Run #{trained}" in page.locator("#ps-play-out").inner_text()
    flow.step("playground")
