"""Projects in the launched studio (gradio_client): each client is a browser session with its own current
project; switching project changes the editors, the saved versions and the runs listed, and two sessions
on two projects never see each other's."""
from __future__ import annotations

import html
import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path_factory.mktemp("projects-studio"), tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield demo.local_url, ctx
    demo.close()


def _client(url: str):
    from tests.client_helpers import api_client

    return api_client(url)


def _strings(out) -> list[str]:
    """The text outputs (an update's value included), HTML entities decoded."""
    items = [o.get("value") if isinstance(o, dict) else o for o in (out if isinstance(out, (list, tuple)) else [out])]
    return [html.unescape(o) for o in items if isinstance(o, str)]


def _run_ids(client) -> list[int]:
    table = client.predict("", "", "", api_name="/runs")[0]
    return sorted(int(row[0]) for row in table["data"] if row and str(row[0]).isdigit())


def test_switching_project_changes_editors_versions_and_runs(studio):
    url, ctx = studio
    a, b = _client(url), _client(url)          # two browsers, both opening on the demo
    out = a.predict("alpha", api_name="/create_project")
    assert any("Working in project <b>alpha</b>" in s for s in _strings(out))
    assert any("Created project 'alpha'" in s for s in _strings(out))
    a.predict("shared", "{text_a} alpha {mask}", "alpha's", api_name="/save_template")
    b.predict("shared", "{text_a} demo {mask}", "demo's", api_name="/save_template")
    assert [v.content for v in ctx.store.list_versions("template", "shared", project="alpha")] == \
        ["{text_a} alpha {mask}"]
    assert [v.content for v in ctx.store.list_versions("template", "shared", project="demo")] == \
        ["{text_a} demo {mask}"]

    ra = ctx.store.create_run({"name": "x"}, method="zero-shot", project="alpha")
    rd = ctx.store.create_run({"name": "y"}, method="zero-shot", project="demo")
    assert _run_ids(a) == [ra]
    assert rd in _run_ids(b) and ra not in _run_ids(b)

    # a opens the demo: its editors and runs are the demo's now, b never moved
    out = a.predict("demo", api_name="/open_project")
    assert any("Working in project <b>demo</b>" in s for s in _strings(out))
    assert ctx.store.get_version("template", "demo", project="demo").content in _strings(out)
    assert ra not in _run_ids(a) and rd in _run_ids(a)
    out = a.predict("alpha", api_name="/open_project")
    assert any("Opened project 'alpha'" in s for s in _strings(out))
    assert _run_ids(a) == [ra]


def test_project_list_shows_best_result_and_bad_names_are_refused(studio):
    url, ctx = studio
    c = _client(url)
    rid = ctx.store.create_run({"name": "best"}, method="zero-shot", project="ranked", status="running")
    ctx.store.append_metrics(rid, [{"key": "eval/accuracy", "step": 0, "value": 0.75}])
    ctx.store.set_status(rid, "succeeded")
    out = c.predict("../x", api_name="/create_project")
    assert any("'/' is not allowed" in s for s in _strings(out))
    out = c.predict("ranked", api_name="/open_project")
    table = next(o for o in out if isinstance(o, dict) and "data" in o)
    row = next(r for r in table["data"] if r[0] == "ranked")
    assert row[1] == 1 and row[2] == "0.750" and row[3].startswith(f"#{rid} zero-shot best")
    assert "ranked" in {p.name for p in ctx.store.list_projects()} and \
        "../x" not in {p.name for p in ctx.store.list_projects()}


def test_an_unknown_project_is_refused_and_nothing_is_created(studio):
    # (a project's data choice is saved by the page's listener on the selection: tests/test_projects_browser.py)
    url, ctx = studio
    c = _client(url)
    out = c.predict("nope", api_name="/open_project")
    assert any("no project named 'nope'" in s for s in _strings(out))
    assert "nope" not in {p.name for p in ctx.store.list_projects()}
    out = c.predict("demo", api_name="/open_project")     # the demo opens on its own data again
    assert any("Working in project <b>demo</b>" in s for s in _strings(out))
