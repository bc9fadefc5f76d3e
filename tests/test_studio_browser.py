"""The studio in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Types a template and sees the token preview change, sees an error underlined at its span, saves a
version, starts a tiny training run, watches its curve grow until the run finishes, and saves a
screenshot of every tab under ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import time

import pytest

from tests.browser_helpers import browser_or_skip, browser_page, launched_studio, load_builtin, shot, tab

TABS = ("Start", "Data", "Template", "Verbalizer", "Evaluate", "Compare", "Train", "Runs", "Playground")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    browser_or_skip()
    with launched_studio(tmp_path_factory.mktemp("browser"), smol_tok) as (url, _ctx):
        yield url


@pytest.fixture(scope="module")
def page(studio):
    outside: list[str] = []
    with browser_page(studio, outside) as pg:
        pg.outside_requests = outside  # type: ignore[attr-defined]
        yield pg


def test_typing_a_template_updates_the_token_preview(page):
    tab(page, "Template")
    page.wait_for_selector("#ps-preview .ps-chip", timeout=30_000)
    editor = page.locator("#ps-template textarea")
    editor.fill("Critique: {text_a} Verdict: {mask}")
    page.wait_for_function("document.querySelector('#ps-preview')?.innerHTML.includes('Critique')", timeout=15_000)
    chips = page.locator("#ps-preview .ps-example").first.locator(".ps-chip")
    assert chips.count() > 3 and "Crit" in chips.first.inner_text()
    assert page.locator("#ps-template-feedback").inner_text().strip() == "Template OK"
    editor.fill("Critique: {text_a} Verdict: {mask")
    page.wait_for_selector("#ps-template-feedback mark.ps-error", timeout=15_000)
    assert page.locator("#ps-template-feedback mark.ps-error").inner_text() == "{mask"
    editor.fill("Critique: {text_a} Verdict: {mask}")
    page.wait_for_function("document.querySelector('#ps-template-feedback')?.innerText.includes('Template OK')",
                           timeout=15_000)


def _first_chips(page) -> str:
    return page.evaluate("() => { const ex = document.querySelector('#ps-preview .ps-example');"
                         " return ex ? Array.from(ex.querySelectorAll('.ps-chip')).slice(0, 3)"
                         ".map(c => c.innerText).join('') : ''; }")


def _settled(page, word: str) -> None:
    """Wait until the preview shows ``word`` and nothing is pending, then give any late answer time to land."""
    page.wait_for_function(f"document.querySelector('#ps-preview')?.innerHTML.includes({word!r})", timeout=15_000)
    page.wait_for_timeout(2500)  # the page keeps a stream open, so "network idle" never comes


def test_a_burst_of_templates_ends_on_the_last_one(page):
    """Fast typing, rows and truncation changing under it: the preview shows the editor's last text."""
    tab(page, "Template")
    editor = page.locator("#ps-template textarea")
    words = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel"]
    for i, word in enumerate(words):
        editor.fill(f"{word}: {{text_a}} Verdict: {{mask}}")
        if i % 3 == 1:  # another trigger of the same view between keystrokes
            page.locator("#ps-max-length input").fill(str(200 + i))
    editor.press("End")
    page.keyboard.type(" Zulu", delay=5)
    _settled(page, "Zulu")
    assert editor.input_value() == "Hotel: {text_a} Verdict: {mask} Zulu"
    assert _first_chips(page).startswith("Hotel"), _first_chips(page)
    html = page.locator("#ps-preview").inner_html()
    assert not any(w in html for w in words[:-1]), "an older template's preview is on the page"
    page.locator("#ps-max-length input").fill("256")
    editor.fill("Critique: {text_a} Verdict: {mask}")
    _settled(page, "Critique")


def test_typing_right_after_a_reload_is_never_replaced_by_the_page_load(page):
    tab(page, "Template")
    page.reload()
    tab(page, "Template")
    editor = page.locator("#ps-template textarea")
    editor.fill("Typed at once: {text_a} Verdict: {mask}")  # waits until the editor is editable
    _settled(page, "Typed at once")
    assert editor.input_value() == "Typed at once: {text_a} Verdict: {mask}"
    assert _first_chips(page).startswith("Typed"), _first_chips(page)
    page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
    editor.fill("Critique: {text_a} Verdict: {mask}")
    _settled(page, "Critique")


def test_saving_a_version(page):
    tab(page, "Template")
    page.locator("#ps-template-message input, #ps-template-message textarea").first.fill("a critic's prompt")
    page.locator("#ps-template-save").click()
    page.wait_for_function("document.querySelector('#ps-template-save-msg')?.innerText.includes('Saved as demo v')",
                           timeout=15_000)
    shot(page, "template")


def test_refreshing_keeps_the_unsaved_draft_and_the_data_choice(page):
    tab(page, "Template")
    draft = "Critique (unsaved): {text_a} Verdict: {mask}"
    page.locator("#ps-template textarea").fill(draft)
    page.wait_for_function("document.querySelector('#ps-preview')?.innerHTML.includes('unsaved')", timeout=15_000)
    load_builtin(page, "nli-mini")
    page.wait_for_timeout(500)
    page.reload()
    page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
    tab(page, "Data")   # the page opens on the Start tab; the Data tab renders when shown
    page.wait_for_function("document.querySelector('#ps-data-summary')?.innerText.includes('nli-mini')",
                           timeout=30_000)
    tab(page, "Template")
    page.wait_for_function(f"document.querySelector('#ps-template textarea')?.value === {draft!r}",
                           timeout=30_000)
    load_builtin(page, "movie-reviews")  # back to the movie reviews for the training run


def test_a_tiny_training_run_grows_its_curve_and_finishes(page):
    tab(page, "Train")
    steps = page.locator("#ps-train-steps input")
    steps.fill("300")  # the tiny model takes a few seconds for these: long enough to watch it grow
    page.locator("#ps-train-eval-every input").fill("50")
    page.locator("#ps-opt-prompt-tuning-num_tokens input").fill("4")
    page.locator("#ps-train-start").click()
    page.wait_for_function("document.querySelector('#ps-train-msg')?.innerText.includes('queued')", timeout=30_000)
    seen = []
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        n = page.evaluate("() => { const p = document.querySelector('#ps-train-curves .js-plotly-plot');"
                          " if (!p || !p.data) return 0; const t = p.data.find(d => (d.name || '') === 'train/loss');"
                          " return t ? t.x.length : 0; }")
        seen.append(n)
        status = page.evaluate("() => { const s = document.querySelector('#ps-train-status');"
                               " return s ? s.dataset.status : ''; }")
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    shot(page, "train")
    assert status == "succeeded", page.locator("#ps-train-progress").inner_text()
    page.wait_for_timeout(2500)  # the last poll redraws the finished curve
    final = page.evaluate("() => document.querySelector('#ps-train-curves .js-plotly-plot').data"
                          ".find(d => d.name === 'train/loss').x.length")
    assert final == 300
    assert any(0 < n < final for n in seen), f"never saw a partial curve: {seen}"
    assert "final accuracy" in page.locator("#ps-train-progress").inner_text()
    shot(page, "train")


def test_every_tab_renders_offline_and_is_captured(page):
    for name in TABS:
        tab(page, name)
        page.wait_for_timeout(1500)
        if name == "Verbalizer":
            page.wait_for_selector("#ps-coverage table.ps-coverage", timeout=30_000)
            page.locator("#ps-probe").click()
            page.wait_for_selector("#ps-probe-out .ps-example", timeout=60_000)
        if name == "Evaluate":
            page.locator("#ps-eval-run").click()
            page.wait_for_selector("#ps-eval-card .ps-card", timeout=60_000)
            page.wait_for_selector("#ps-confusion .js-plotly-plot .nsewdrag", timeout=30_000)
            page.wait_for_timeout(1000)
            box = page.locator("#ps-confusion .nsewdrag").first.bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)  # gold/pred 0/0
            page.wait_for_function("document.querySelector('#ps-cell-out')?.innerText.includes('examples with gold')",
                                   timeout=30_000)
            assert "predicted as" in page.locator("#ps-cell-out").inner_text()
        if name == "Runs":
            page.locator("#ps-runs-refresh").click()
            page.wait_for_timeout(1500)
        if name == "Playground":
            page.locator("#ps-play-text textarea").fill("A wonderful, moving film.")
            page.locator("#ps-play-runs input").click()
            page.locator("ul[role='listbox'] li").first.click()
            page.locator("#ps-play-go").click()
            page.wait_for_selector("#ps-play-cards .ps-card", timeout=60_000)
            page.wait_for_timeout(1000)
        shot(page, name)
    assert not page.outside_requests, f"the page reached outside the studio: {page.outside_requests[:5]}"
