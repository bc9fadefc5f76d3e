"""The Compare tab through the studio's HTTP API (gradio_client): a comparison of saved versions and the
editors' drafts, its flips, and a row adopted as the current template and label words."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def client(tmp_path_factory, smol_tok):
    from tests.client_helpers import api_client

    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path_factory.mktemp("cmp"), tiny_model("causal", smol_tok))
    ctx.store.save_version("template", "critic", "Critique: {text_a} Verdict: {mask}")
    ctx.store.save_version("verbalizer", "critic", '{"label_words": {"negative": ["awful"], "positive": ["great"]}}')
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield api_client(demo.local_url), ctx
    demo.close()


def test_compare_saved_versions_and_drafts_then_flips_and_adopt(client):
    c, ctx = client
    t_update, w_update = c.predict([], [], api_name="/compare_choices")
    t_choices = [x[0] if isinstance(x, (list, tuple)) else x for x in t_update["choices"]]
    assert "critic v1" in t_choices and "the editor's draft" in t_choices
    msg, job, _timer = c.predict(
        ["the editor's draft", "critic v1"], ["the editor's draft", "critic v1"], 1, 16, [],
        "{text_a} It was {mask}", "negative: bad\npositive: good", 64, "tail", api_name="/compare_prompts")
    assert f"Comparison #{int(job)}: 4 combinations on 16 dev rows" in msg   # no runner here: it ran at once
    msg, table, run_a, run_b, ens, _timer = c.predict(job, api_name="/compare_status")
    rows = table["data"]
    assert [r[0] for r in rows] == [1, 2, 3, 4] and rows[0][-2] == "baseline" and rows[0][-1] == "baseline"
    assert "Critique" in rows[2][2] and "great" in rows[1][3] and ens == ""
    assert len(ctx.store.list_runs(tag="compare")) == 4
    flips = c.predict(run_a, run_b, api_name="/flips")
    assert "Of 16 rows" in flips
    both = c.predict(run_a, run_b, 3, api_name="/flip_row")
    assert "Row 3" in both and "ps-flip-a" in both and "ps-flip-b" in both and "Critique" in both
    assert "not one of the 16 rows" in c.predict(run_a, run_b, 99, api_name="/flip_row")
    template, words, note = c.predict(3, api_name="/compare_use")
    assert template == "Critique: {text_a} Verdict: {mask}" and "bad" in words and "Row 3" in note


def test_ensembles_and_searched_label_words(client):
    c, ctx = client
    c.predict([], [], api_name="/compare_choices")   # this session's pickers list the saved versions
    note, table, words, job, _timer = c.predict("{text_a} It was {mask}", 64, "tail", 3,
                                                api_name="/search_label_words")
    assert f"Label-word search #{int(job)}: searched on 64 training rows" in note and len(table["data"]) == 6
    again = c.predict(job, api_name="/label_search_status")           # read back from storage: the same words
    assert again[2] == words and again[1]["data"] == table["data"]
    assert "Cancel requested for label-word search" in c.predict(job, api_name="/label_search_cancel")
    assert words.startswith("negative: ") and "\npositive: " in words
    note, update = c.predict("searched", words, ["the editor's draft"], api_name="/save_searched_words")
    assert "Saved as searched v1" in note and update["value"] == ["the editor's draft", "searched v1"]
    msg, job, _ = c.predict(["the editor's draft", "critic v1"], ["searched v1"], 1, 12, ["uniform", "fitted"],
                            "{text_a} It was {mask}", "negative: bad\npositive: good", 64, "tail",
                            api_name="/compare_prompts")
    msg, table, run_a, run_b, ens, _ = c.predict(job, api_name="/compare_status")
    assert "2 combinations on 12 dev rows" in msg and "uniform" in ens and "fitted" in ens
    kinds = {r.config["name"] for r in ctx.store.list_runs(method="ensemble")}
    assert any("uniform" in k for k in kinds) and any("fitted" in k for k in kinds)


def test_mistakes_are_messages(client):
    c, ctx = client
    msg, *_ = c.predict([], ["the editor's draft"], 1, 0, [], "{text_a} {mask}", "negative: bad\npositive: good",
                        64, "tail", api_name="/compare_prompts")
    assert "at least one template" in msg
    assert "give two run ids" in c.predict(None, None, api_name="/flips")
    assert "no comparison to cancel" in c.predict(None, api_name="/compare_cancel")
    other = ctx.store.create_run({"name": "x"}, method="zero-shot")
    assert "is a zero-shot run, not a comparison" in c.predict(other, api_name="/compare_status")[0]
    assert "no run with id 99999" in c.predict(99999, api_name="/compare_status")[0]
    assert "write a template" in c.predict("", 64, "tail", 5, api_name="/search_label_words")[0]


def test_template_search_ranks_candidates_then_compares_the_best_with_mine(client):
    c, ctx = client
    args = ["{text_a} It was {mask}", "negative: bad\npositive: good", 64, "tail", "sentiment", 0, 8, 2]
    msg, table, search, _timer, cmp_job, _cmp_timer = c.predict(*args, api_name="/search_templates")
    assert f"Template search #{int(search)}" in msg and "templates ranked on" in msg and "full evaluations" in msg, msg
    assert cmp_job == {"__type__": "update"}                   # unchanged: nothing to hand to the comparison
    rows = table["data"]
    assert len(rows) >= 3 and [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert any(r[1] == "yours" for r in rows) and all("{mask}" in r[2] or "mask" in r[2] for r in rows)
    assert ctx.store.get_run(int(search)).method == "template-search"
    before = len(ctx.store.list_runs(method="comparison"))
    msg, table, search, _timer, cmp_job, _cmp_timer = c.predict(*args, api_name="/search_templates_compare")
    assert f"Comparison #{int(cmp_job)} of yours and the best 2: done, above." in msg, msg
    assert len(ctx.store.list_runs(method="comparison")) == before + 1
    assert ctx.store.get_run(int(cmp_job)).parent_run_id == int(search)
    # a refreshed page reads the search back from storage: the same ranking, and no second job
    again, table_again, *_ = c.predict(search, api_name="/template_search_status")
    assert table_again["data"] == table["data"] and f"Template search #{int(search)}" in again
    assert "Cancel requested for template search" in c.predict(search, api_name="/template_search_cancel")
    assert "no template search to cancel" in c.predict(None, api_name="/template_search_cancel")
    bad = c.predict("", *args[1:], api_name="/search_templates")[0]
    assert "write a template" in bad
    with pytest.raises(Exception, match="greater than maximum value 50"):   # the box's own range, said by Gradio
        c.predict(*args[:5], 0, 1e9, 2, api_name="/search_templates")
