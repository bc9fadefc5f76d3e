"""A sweep in a real browser (Debian's chromium, Playwright): design 2 methods x 2 seeds on the Train tab,
price it, start it, stop one configuration early from its table row, watch the table fill until the
sweep ends, open the Pareto plot and click its point to see that configuration's runs, export the CSV."""
from __future__ import annotations

import os
import time

import pytest

from tests.test_studio_browser import ARGS, CHROMIUM, _browser_or_skip, _shot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    _browser_or_skip()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from backend.services.testing import make_context, on_disk, with_jobs
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    folder = tmp_path_factory.mktemp("sweep-browser")
    loaded = on_disk(tiny_model("causal", smol_tok), folder / "tiny")
    ctx = with_jobs(make_context(folder / "studio", loaded))
    demo = build_app(ctx)
    launch(demo, ctx, block=False)
    yield demo.local_url, ctx
    demo.close()
    ctx.close()


@pytest.fixture(scope="module")
def page(studio):
    from playwright.sync_api import sync_playwright

    url, _ctx = studio
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(url)
        pg.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
        yield pg
        browser.close()


def _text(page, selector: str) -> str:
    return page.evaluate(f"() => {{ const e = document.querySelector({selector!r}); return e ? e.innerText : ''; }}")


def _wait_text(page, selector: str, needle: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(f"() => {{ const e = document.querySelector({selector!r});"
                           f" return e && e.innerText.includes({needle!r}); }}", timeout=timeout_ms)


def test_design_watch_stop_and_open_the_pareto_plot(page, studio):
    _url, ctx = studio
    page.get_by_role("tab", name="Train").click()
    page.locator("#ps-train-steps input").fill("3")
    page.locator("#ps-train-eval-every input").fill("1")
    page.locator("#ps-opt-prompt-tuning-num_tokens input").fill("2")
    page.locator("#ps-sweep").get_by_text("Sweep: methods x options").first.click()
    page.locator("#ps-sweep-name textarea").fill("browser-sweep")
    page.locator("#ps-sweep-seeds textarea").fill("13, 21")
    page.locator("#ps-sweep-methods input").click()
    page.locator("ul[role='listbox'] li", has_text="LoRA").first.click()
    page.keyboard.press("Escape")

    page.locator("#ps-sweep-cost").click()
    _wait_text(page, "#ps-sweep-cost-card", "4 (2 configurations x 2 seeds)")
    assert "estimated time on this machine" in _text(page, "#ps-sweep-cost-card")

    page.locator("#ps-sweep-start").click()
    _wait_text(page, "#ps-sweep-msg", "4 runs queued")
    # the table lists both configurations at once; LoRA's runs wait behind prompt tuning's (one at a time)
    lora = page.locator("#ps-sweep-table .cell-wrap", has_text="method=lora").first
    lora.wait_for(timeout=30_000)
    lora.click()
    page.wait_for_function("document.querySelector('#ps-sweep-key input, #ps-sweep-key textarea').value"
                           " === 'method=lora'", timeout=15_000)
    page.locator("#ps-sweep-stop").click()
    _wait_text(page, "#ps-sweep-action-msg", "Stopping method=lora")

    # the table fills by itself (the timer polls while the sweep runs) until the sweep has ended
    page.wait_for_selector("#ps-sweep-state[data-state='finished']", timeout=300_000)
    table = _text(page, "#ps-sweep-table")
    assert "method=prompt-tuning" in table and "2/2" in table and "2 stopped" in table, table
    runs = ctx.store.list_runs(tag="sweep:browser-sweep", limit=None)
    assert sorted((r.method, r.status) for r in runs) == [("lora", "cancelled")] * 2 + \
        [("prompt-tuning", "succeeded")] * 2

    # the Pareto plot: one point (prompt tuning; LoRA has no finished seed); clicking it opens its runs
    page.locator("#ps-sweep-axis label", has_text="seconds per training step").click()
    page.wait_for_function("() => { const p = document.querySelector('#ps-sweep-pareto .js-plotly-plot');"
                           " return p && p.data && p.data.length > 0 && p.layout.xaxis.title.text.includes('seconds'); }",
                           timeout=30_000)
    point = page.locator("#ps-sweep-pareto .scatterlayer .points path").first
    box = point.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 5, y)
    page.mouse.move(x, y)
    time.sleep(0.3)
    page.mouse.click(x, y)
    page.wait_for_function("document.querySelector('#ps-sweep-key input, #ps-sweep-key textarea').value"
                           " === 'method=prompt-tuning'", timeout=15_000)
    _wait_text(page, "#ps-sweep-config", "succeeded")
    assert "method=prompt-tuning" in _text(page, "#ps-sweep-config")

    page.locator("#ps-sweep-csv").click()
    _wait_text(page, "#ps-sweep-action-msg", "Table written")
    _shot(page, "sweep")
