"""The Compare tab in a real browser (Debian's chromium, Playwright): search label words on the training
rows as a job and save them as a verbalizer version, compare it with the draft as a background job with two
ensembles, open the rows where two prompts disagree down to both token views, adopt the searched words,
classify text with the recorded ensemble in the Playground, and see the comparison again after a reload."""
from __future__ import annotations

import pytest

from tests.browser_helpers import page, studio  # noqa: F401 - the module's studio and page
from tests.browser_helpers import shot, tab, text_of, wait_text

pytestmark = pytest.mark.slow


def test_search_words_compare_as_a_job_flips_adopt_and_serve_the_ensemble(page, studio):
    _, ctx = studio
    tab(page, "Compare")
    page.locator("#ps-search").get_by_text("Search label words (on the training rows)").click()
    page.locator("#ps-search-go").click()
    wait_text(page, "#ps-search-msg", "Label-word search #")     # queued or running: the page is not blocked
    wait_text(page, "#ps-search-msg", "searched on", 120_000)
    searched = page.locator("#ps-search-words textarea").input_value()
    assert searched.startswith("negative: ") and "positive: " in searched
    table = text_of(page, "#ps-search-table")
    assert "negative" in table and "positive" in table and searched.split("\n")[0].split(": ")[1] in table
    page.locator("#ps-search-save").click()
    wait_text(page, "#ps-search-msg", "Saved as searched v1")
    assert "searched v1" in text_of(page, "#ps-cmp-words")

    page.locator("#ps-cmp-limit input").fill("16")
    page.locator("#ps-cmp-ensembles").get_by_label("uniform").check()
    page.locator("#ps-cmp-ensembles").get_by_label("fitted").check()
    page.locator("#ps-cmp-go").click()
    wait_text(page, "#ps-cmp-msg", "Comparison #")            # queued or running: the page is not blocked
    wait_text(page, "#ps-cmp-msg", "combinations on 16 dev rows", 240_000)
    table = text_of(page, "#ps-cmp-table")
    assert "V1: " in table and "V2: " in table and "baseline" in table
    assert "uniform" in text_of(page, "#ps-cmp-ensembles-html") and "fitted" in text_of(page, "#ps-cmp-ensembles-html")
    shot(page, "compare")

    page.locator("#ps-cmp-flips").click()
    wait_text(page, "#ps-cmp-flips-out", "Of 16 rows")
    page.locator("#ps-cmp-flip-index input").fill("0")
    page.locator("#ps-cmp-flip-show").click()
    page.wait_for_selector("#ps-flip-a .ps-chip", timeout=30_000)
    assert page.locator("#ps-flip-b .ps-chip").count() > 3 and "Row 0" in text_of(page, "#ps-flip-row")

    page.locator("#ps-cmp-table").get_by_text("V2: ", exact=False).first.click()   # the searched words' row
    page.wait_for_function("document.querySelector('#ps-cmp-use-row input')?.value === '2'", timeout=15_000)
    page.locator("#ps-cmp-use").click()
    wait_text(page, "#ps-cmp-msg", "Row 2 is now the current template")
    tab(page, "Verbalizer")
    page.wait_for_function(f"() => {{ const t = document.querySelector('#ps-label-words textarea');"
                           f" return t && t.value === {searched!r}; }}", timeout=15_000)

    ens = [r for r in ctx.store.list_runs(method="ensemble") if "ensemble:fitted" in r.tags][0]
    tab(page, "Playground")
    page.locator("#ps-play-text textarea").fill("a wonderful, moving film")
    page.locator("#ps-play-runs input").click()
    page.locator("ul[role='listbox'] li", has_text=f"#{ens.id} ensemble").click()
    page.locator("#ps-play-go").click()
    wait_text(page, "#ps-play-out", f"Run #{ens.id}")
    assert "ensemble" in text_of(page, "#ps-play-out") and "predicted" in text_of(page, "#ps-play-out")

    page.reload()                                                # a refreshed page shows the comparison again
    page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
    tab(page, "Compare")
    wait_text(page, "#ps-cmp-msg", "combinations on 16 dev rows", 30_000)
    wait_text(page, "#ps-cmp-table", "V2: ")


def test_template_search_is_a_job_that_hands_its_best_to_the_comparison_and_survives_a_reload(page, studio):
    _, ctx = studio
    tab(page, "Compare")
    page.locator("#ps-tsearch").get_by_text("Search templates (successive halving on the dev rows)").click()
    page.locator("#ps-tsearch-task input").fill("sentiment")
    page.locator("#ps-tsearch-reph input").fill("0")
    page.locator("#ps-tsearch-budget input").fill("8")
    page.locator("#ps-tsearch-keep input").fill("2")
    page.locator("#ps-tsearch-compare").click()
    wait_text(page, "#ps-tsearch-msg", "Template search #")       # queued or running: the page is not blocked
    wait_text(page, "#ps-tsearch-msg", "templates ranked on", 240_000)
    search = ctx.store.list_runs(method="template-search")[0]
    assert search.status == "succeeded" and f"Template search #{search.id}" in text_of(page, "#ps-tsearch-msg")
    assert "yours" in text_of(page, "#ps-tsearch-table")
    cmp = [r for r in ctx.store.list_runs(method="comparison") if r.parent_run_id == search.id]
    assert len(cmp) == 1
    wait_text(page, "#ps-cmp-msg", f"Comparison #{cmp[0].id}: 3 combinations", 240_000)   # handed to the poller
    ranking = text_of(page, "#ps-tsearch-table")
    shot(page, "template-search")

    page.reload()                                                # the search's ranking is read back from storage
    page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
    tab(page, "Compare")
    page.locator("#ps-tsearch").get_by_text("Search templates (successive halving on the dev rows)").click()
    wait_text(page, "#ps-tsearch-msg", f"Template search #{search.id}", 30_000)
    assert text_of(page, "#ps-tsearch-table") == ranking
