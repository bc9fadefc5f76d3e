"""The start screen in a real browser (Debian's chromium via Playwright): open the demo's guided path,
create a project, switch back to the demo; the editors follow the project, the browser remembers it."""
from __future__ import annotations

import pytest

from tests.browser_helpers import browser_or_skip, browser_page, launched_studio, load_builtin
from tests.storage_helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    browser_or_skip()
    with launched_studio(tmp_path_factory.mktemp("projects-browser"), smol_tok, jobs=False) as served:
        yield served


def _project_is(page, name: str) -> None:
    page.wait_for_selector(f"#ps-current-project[data-project='{name}']", timeout=30_000)


def _template_name(page) -> str:
    page.get_by_role("tab", name="Template").click()
    box = page.locator("#ps-template-name textarea, #ps-template-name input").first
    box.wait_for(timeout=30_000)
    return box.input_value()


def test_start_screen_demo_path_create_and_switch(studio):
    url, ctx = studio
    with browser_page(url) as page:
        assert "designs prompts" in page.locator("#ps-start-intro").inner_text()
        page.wait_for_function("document.querySelector('#ps-projects')?.innerText.includes('demo')", timeout=30_000)
        _project_is(page, "demo")

        page.locator("#ps-start-demo").click()          # the demo opens on its first step: the Data tab
        page.wait_for_selector("#tab-data #ps-data-load", state="visible", timeout=30_000)
        page.get_by_role("tab", name="Start").click()
        page.locator("#ps-guide-template").click()      # the guided path moves along the tabs
        page.wait_for_selector("#ps-preview", state="visible", timeout=30_000)

        page.get_by_role("tab", name="Start").click()
        page.locator("#ps-new-project textarea, #ps-new-project input").first.fill("beta")
        page.locator("#ps-create-project").click()
        _project_is(page, "beta")
        assert _template_name(page) == "beta"
        assert "beta" in {q.name for q in ctx.store.list_projects()}
        load_builtin(page, "nli-mini")                 # the project keeps its own data choice
        assert wait_for(lambda: (ctx.store.get_project("beta").settings.get("data") or {}).get("source")
                        == "builtin:nli-mini", timeout=30)
        assert (ctx.store.get_project("demo").settings.get("data") or {}).get("source") != "builtin:nli-mini"

        page.get_by_role("tab", name="Start").click()
        page.locator("#ps-project-pick input").fill("demo")
        page.keyboard.press("Enter")
        page.locator("#ps-open-project").click()
        _project_is(page, "demo")
        assert _template_name(page) == "demo"
        page.get_by_role("tab", name="Data").click()   # and the demo's data comes back with the demo
        page.wait_for_function("(e => e && !e.innerText.includes('nli-mini'))(document.querySelector('#ps-data-summary'))",
                               timeout=30_000)

        page.get_by_role("tab", name="Start").click()   # a reload comes back to the project last opened
        page.locator("#ps-project-pick input").fill("beta")
        page.keyboard.press("Enter")
        page.locator("#ps-open-project").click()
        _project_is(page, "beta")
        page.reload()
        page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
        _project_is(page, "beta")


def test_a_new_browser_opens_the_projects_own_data_and_saves_nothing_over_it(studio):
    # a browser with nothing remembered used to start on the demo data, and its first Data-tab action saved
    # that over the project's source, mapping and seed
    from backend.services import data as data_service
    from backend.services import project as project_service

    url, ctx = studio
    here = ctx.scoped("demo")
    kept = dict(project_service.settings(here).get("data") or data_service.default_selection())
    project_service.save_selection(here, {**data_service.default_selection(), "source": "builtin:nli-mini"})
    try:
        with browser_page(url) as page:                 # a fresh browser: no project or data remembered
            _project_is(page, "demo")
            page.get_by_role("tab", name="Data").click()
            page.wait_for_function("document.querySelector('#ps-data-summary')?.innerText.includes('nli-mini')",
                                   timeout=30_000)
            page.wait_for_timeout(1500)
        assert project_service.settings(here)["data"]["source"] == "builtin:nli-mini"
    finally:
        project_service.save_selection(here, kept)


def test_an_unsaved_draft_stays_with_its_project(studio):
    # one draft slot for the whole browser: opening another project discarded the draft, and a reload could
    # restore one project's draft into another (then saved there)
    url, _ = studio
    draft = "Unsaved in demo: {text_a} Verdict: {mask}"
    with browser_page(url) as page:
        _project_is(page, "demo")
        page.get_by_role("tab", name="Template").click()
        page.locator("#ps-template textarea").fill(draft)
        page.wait_for_function("document.querySelector('#ps-preview')?.innerHTML.includes('Unsaved in demo')",
                               timeout=15_000)
        page.wait_for_timeout(1500)                     # the draft is kept when typing pauses
        page.get_by_role("tab", name="Start").click()
        page.locator("#ps-new-project textarea, #ps-new-project input").first.fill("gamma")
        page.locator("#ps-create-project").click()
        _project_is(page, "gamma")
        page.get_by_role("tab", name="Template").click()
        assert page.locator("#ps-template textarea").input_value() != draft      # gamma's own editors
        page.reload()
        page.wait_for_selector("#ps-model-state[data-state='ready']", timeout=60_000)
        _project_is(page, "gamma")
        page.get_by_role("tab", name="Template").click()
        page.wait_for_timeout(1000)
        assert page.locator("#ps-template textarea").input_value() != draft      # not demo's draft after a reload
        page.get_by_role("tab", name="Start").click()
        page.locator("#ps-project-pick input").fill("demo")
        page.keyboard.press("Enter")
        page.locator("#ps-open-project").click()
        _project_is(page, "demo")
        page.get_by_role("tab", name="Template").click()
        page.wait_for_function(f"document.querySelector('#ps-template textarea')?.value === {draft!r}",
                               timeout=30_000)
