"""A sweep in a real browser (Debian's chromium, Playwright): design 2 methods x 2 seeds on the Train tab,
price it, start it, stop one configuration early from its table row, watch the table fill until the
sweep ends, open the Pareto plot and click its point to see that configuration's runs, export the CSV."""
from __future__ import annotations

import time

import pytest

from tests.browser_helpers import page, studio  # noqa: F401 - the module's studio and page
from tests.browser_helpers import shot, text_of, wait_text

pytestmark = pytest.mark.slow


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
    wait_text(page, "#ps-sweep-cost-card", "4 (2 configurations x 2 seeds)", 60_000)
    assert "estimated time on this machine" in text_of(page, "#ps-sweep-cost-card")

    page.locator("#ps-sweep-start").click()
    wait_text(page, "#ps-sweep-msg", "4 runs queued", 60_000)
    # the table lists both configurations at once; LoRA's runs wait behind prompt tuning's (one at a time)
    lora = page.locator("#ps-sweep-table .cell-wrap", has_text="method=lora").first
    lora.wait_for(timeout=30_000)
    lora.click()
    page.wait_for_function("document.querySelector('#ps-sweep-key input, #ps-sweep-key textarea')?.value"
                           " === 'method=lora'", timeout=15_000)
    page.locator("#ps-sweep-stop").click()
    wait_text(page, "#ps-sweep-action-msg", "Stopping method=lora", 60_000)

    # the table fills by itself (the timer polls while the sweep runs) until the sweep has ended
    page.wait_for_selector("#ps-sweep-state[data-state='finished']", timeout=300_000)
    table = text_of(page, "#ps-sweep-table")
    assert "method=prompt-tuning" in table and "2/2" in table and "2 stopped" in table, table
    assert "accuracy: mean ± std" in table and "last dev accuracy" in table, table   # the metric is named
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
    page.wait_for_function("document.querySelector('#ps-sweep-key input, #ps-sweep-key textarea')?.value"
                           " === 'method=prompt-tuning'", timeout=15_000)
    wait_text(page, "#ps-sweep-config", "succeeded", 60_000)
    assert "method=prompt-tuning" in text_of(page, "#ps-sweep-config")

    page.locator("#ps-sweep-csv").click()
    wait_text(page, "#ps-sweep-action-msg", "Table written", 60_000)
    shot(page, "sweep")
