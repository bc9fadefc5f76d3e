"""Template search: family patterns filled with the task's words, the rephrasing parser on canned model
replies, the halving schedule and its forward count, and a whole search on a tiny model whose best few
go into the comparison."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.batching import EncodeSettings
from backend.errors import ConfigError
from backend.prompts.example import Example
from backend.workbench.compare import Prompt, compare_prompts
from backend.workbench.templates_library import (Candidate, chat_wrap, family_candidates, normalise_placeholders,
                                                 parse_rephrasings)
from backend.workbench.templatesearch import ModelScorer, halving_schedule, search_templates, successive_halving
from tests.tiny import tiny_model

CLASSES = ["negative", "positive"]
WORDS = {"negative": ["bad"], "positive": ["good"]}
ROWS = [Example(guid=i, text_a=t, label=lab) for i, (t, lab) in enumerate(
    [("a great movie", "positive"), ("boring and bad", "negative"), ("loved it", "positive"),
     ("a waste of time", "negative"), ("dull plot", "negative"), ("wonderful", "positive"),
     ("not good", "negative"), ("superb cast", "positive"), ("meh", "negative"), ("fun ride", "positive")])]
# a dev set big enough for the default budget to rank ~20 candidates (calibration costs 3 rows each)
MANY = [Example(guid=f"{k}-{e.guid}", text_a=f"{e.text_a} {'!' * k}", label=e.label) for k in range(6) for e in ROWS]


def test_families_filled_with_the_task_words(smol_tok):
    ok, dropped = family_candidates("sentiment", ["bad", "good"], ["text_a"], "masked")
    families = {c.family for c in ok}
    assert families == {"prefix", "suffix", "question", "instruction"} and not dropped
    assert any("bad or good" in c.text for c in ok) and any("Sentiment:" in c.text for c in ok)
    assert all("<" not in c.text.replace("<|", "") for c in ok)            # every slot filled
    causal, dropped = family_candidates("sentiment", ["bad", "good"], ["text_a"], "causal", smol_tok)
    assert {d.family for d in dropped} == {"prefix"}
    assert all("before reading it" in d.reason for d in dropped)
    chat = [c.text for c in causal if c.family == "chat"]
    assert len(chat) == 3 and all(t.startswith("<|im_start|>") and t.endswith("assistant\n{mask}") for t in chat)
    pair, _ = family_candidates("relation", ["yes", "no", "maybe"], ["text_a", "text_b"], "masked")
    assert all("{text_a}" in c.text and "{text_b}" in c.text for c in pair)
    assert any("yes, no or maybe" in c.text for c in pair)


def test_chat_wrap_keeps_literal_braces_literal(smol_tok):
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, **_):
            return "{system}<user>" + messages[0]["content"] + "<bot>"

    text = chat_wrap(Tok(), "Say {text_a}")
    assert text == '{"text": "{"}system{"text": "}"}<user>Say {text_a}<bot>{mask}'
    assert chat_wrap(type("NoChat", (), {"chat_template": None})(), "x {text_a}") is None


CANNED = [
    'Prompt: "Movie review: [text_a]\nThe sentiment was {{mask}}"',       # quoted, lead, odd spellings
    "1. {text_a} Overall it felt {MASK}.\n\nThis rewrite keeps the placeholders.",   # explanation after
    "Here is a rewrite: {text_a}",                                         # no mask
    "{mask} is the verdict on {text_a}",                                   # mask first (causal)
    "The review {text_a} was {mask} and {mask}",                           # two masks
    "{text_a} was {mask} {ratng}",                                         # unknown field
    "Movie review: {text_a}\nThe sentiment was {mask}",                    # same as the first, once normalised
    "   ",                                                                  # nothing
    "Opinion: <text_a> -> {mask}",
]


def test_rephrasing_parser_on_canned_output():
    ok, dropped = parse_rephrasings(CANNED, ["text_a"], "causal")
    assert [c.text for c in ok] == ["Movie review: {text_a}\nThe sentiment was {mask}",
                                    "{text_a} Overall it felt {mask}.", "Opinion: {text_a} -> {mask}"]
    assert all(c.family == "rephrased" for c in ok)
    reasons = [d.reason for d in dropped]
    assert reasons[0] == "the model wrote nothing usable"
    assert "needs exactly one {mask}, has 0" in reasons
    assert "needs exactly one {mask}, has 2" in reasons
    assert any("before reading it" in r for r in reasons)
    assert any(r.startswith("not a valid template") and "ratng" in r for r in reasons)
    assert "the same as another candidate" in reasons
    assert len(ok) + len(dropped) == len(CANNED)
    # a masked model may read the label before the text
    ok_masked, _ = parse_rephrasings(["{mask} is the verdict on {text_a}"], ["text_a"], "masked")
    assert len(ok_masked) == 1
    # pairs need both fields
    _, d = parse_rephrasings(["{text_a} {mask}"], ["text_a", "text_b"], "masked")
    assert "no {text_b}" in d[0].reason
    assert normalise_placeholders("{{ Text_A }} [mask]", ["text_a", "mask"]) == "{text_a} {mask}"


def test_halving_schedule_and_forward_count():
    rows, n = 200, 50
    schedule = halving_schedule(n, rows, 5 * rows, keep=3)
    assert [s for s, _ in schedule] == [50, 25, 13, 7, 4, 3]
    assert all(a <= b for (_, a), (_, b) in zip(schedule, schedule[1:]))
    assert sum(s * r for s, r in schedule) <= 5 * rows
    with pytest.raises(ConfigError, match="raise the budget"):
        halving_schedule(50, 200, 100)
    # a fake scorer: candidate c is right on a row with probability 0.3 + c/100, candidate 37 with 0.95;
    # early rounds see few rows, so a lucky run of a weaker one can win: the best must win most data draws
    wins = 0
    for draw in range(5):
        ranking, rounds, forwards = _fake_search(n, rows, draw, schedule)
        assert forwards == sum(r.forwards for r in rounds) <= 5 * rows     # vs 50 x 200 = 10,000
        assert len(ranking) == n and sum(r["round"] == len(rounds) for r in ranking) == 3
        assert ranking[0]["round"] == len(rounds)
        wins += ranking[0]["text"] == "37"
    assert wins >= 4
    # a pinned candidate (the user's template, even the worst) is scored to the last round within the count
    ranking, rounds, forwards = _fake_search(n, rows, 0, schedule, pinned=[0])
    assert forwards <= 5 * rows
    last = [r["text"] for r in ranking if r["round"] == len(rounds)]
    assert "0" in last and len(last) == 3


def _fake_search(n: int, rows: int, draw: int, schedule, pinned=()):
    rng = np.random.default_rng(draw)
    gold = rng.integers(0, 2, rows)
    skill = np.array([0.3 + c / 100 for c in range(n)])
    skill[37] = 0.95
    right = rng.random((n, rows)) < skill[:, None]
    calls = {"forwards": 0}

    def scorer(text: str, idx):
        c = int(text)
        calls["forwards"] += len(idx)
        pred = np.where(right[c, idx], gold[idx], 1 - gold[idx])
        return np.log(np.eye(2)[pred] * 0.9 + 0.05)

    cands = [Candidate(str(c), "suffix") for c in range(n)]
    ranking, rounds = successive_halving(cands, gold.tolist(), scorer, budget_forwards=5 * rows, keep=3,
                                         pinned=pinned, spent=lambda: calls["forwards"])
    # survivors reuse their rows: a round costs only the new rows of the candidates still in
    assert rounds[1].forwards == 25 * (schedule[1][1] - schedule[0][1])
    return ranking, rounds, calls["forwards"]


@pytest.fixture(scope="module")
def causal(smol_tok):
    torch.manual_seed(0)
    return tiny_model("causal", smol_tok)


def test_model_scorer_matches_the_comparison(causal):
    settings = EncodeSettings(profile="causal", max_length=64)
    scorer = ModelScorer(causal, WORDS, ROWS, CLASSES, settings=settings, batch_size=4)
    got = scorer("{text_a} It was{mask}", list(range(len(ROWS))))
    cmp = compare_prompts(causal, [Prompt("t", "{text_a} It was{mask}")], [Prompt("w", WORDS)], ROWS, CLASSES,
                          settings=settings)
    np.testing.assert_allclose(got, cmp.scored[0].calibrated, atol=1e-4)
    assert scorer.forwards == len(ROWS) + 3          # the rows and the three content-free inputs


def test_search_end_to_end_on_a_tiny_model(causal):
    settings = EncodeSettings(profile="causal", max_length=64)
    res = search_templates(causal, "Review: {text_a}\nSentiment:{mask}", WORDS, MANY, CLASSES, settings=settings,
                           task="sentiment", rephrasings=3, budget=5.0, keep=3, max_new_tokens=12)
    families = {r["family"] for r in res.ranking}
    assert {"yours", "suffix", "question", "instruction", "chat"} <= families
    assert res.forwards <= 5 * len(MANY) and res.full_evaluations <= 5.0
    assert res.forwards == sum(r.forwards for r in res.rounds)
    # the random model's rephrasings are dropped, each with its reason
    rephrased = [d for d in res.dropped if d.family == "rephrased"]
    assert len(rephrased) == 3 and all(d.reason for d in rephrased)
    best = res.best(3)
    found = [r["text"] for r in res.ranking if r["family"] != "yours"]
    assert [p.content for p in best] == found[:3]
    assert any(r["family"] == "yours" and r["round"] == len(res.rounds) for r in res.ranking)
    table = compare_prompts(causal, best, [Prompt("words", WORDS)], MANY, CLASSES, settings=settings).table(n_boot=50)
    assert len(table) == 3
    out = res.to_dict()
    assert out["forwards"] == res.forwards and out["ranking"][0]["round"] == len(res.rounds)


def test_search_refuses_bad_input(causal):
    settings = EncodeSettings(profile="causal", max_length=64)
    with pytest.raises(ConfigError, match="cannot be searched from: .*mask"):
        search_templates(causal, "{text_a} no mask here", WORDS, ROWS, CLASSES, settings=settings, rephrasings=0)
    with pytest.raises(ConfigError, match="budget"):
        search_templates(causal, "{text_a}{mask}", WORDS, ROWS, CLASSES, settings=settings, budget=0)
    with pytest.raises(ConfigError, match="use more dev rows or a larger budget"):
        search_templates(causal, "{text_a}{mask}", WORDS, ROWS, CLASSES, settings=settings, rephrasings=0)


@pytest.fixture
def studio(tmp_path, causal):
    from backend.services import project
    from backend.services.testing import make_context

    ctx = make_context(tmp_path, causal)
    project.bootstrap(ctx)
    return ctx


def test_service_ranks_as_a_recorded_job_and_queues_the_best_into_the_comparison(studio):
    from backend.recording import expand_rows, read_lineage
    from backend.services import data
    from backend.services.templatesearch import latest_template_search, template_search
    from backend.services.templatesearch import search_templates as service

    sel = data.default_selection()
    res = service(studio, template="{text_a} It was{mask}", label_words="negative: bad\npositive: good",
                  selection=sel, task="sentiment", rephrasings=2, budget=8, keep=2, max_length=64, limit=40,
                  compare=True)
    assert "error" not in res, res
    assert res["status"] == "succeeded" and res["done"] and res["fraction"] > 0, res     # no runner: ran here
    out = res["result"]
    # with a comparison to follow, half the 40 dev rows are ranked on and the other half held out for it
    assert out["rows"] == out["held_out"] == 20 and out["forwards"] <= 8 * 20 and len(out["best"]) == 2
    assert res["forwards"] == out["forwards"] and res["forwards_budget"] <= 8 * 20   # the last progress event
    assert "full evaluations" in res["message"] and "other 20 dev rows, held out" in res["message"]
    assert out["ranking"][0]["accuracy"] >= out["ranking"][-1]["accuracy"]
    info = studio.store.get_run(res["job"])
    assert info.method == "template-search" and info.status == "succeeded" and info.project == studio.project
    snap = studio.store.get_dataset_snapshot(info.dataset_snapshot_id)     # which rows the ranking was made on
    ranked_on = set(expand_rows(snap.row_counts["eval_rows"]))
    assert snap.row_counts["eval"] == len(ranked_on) == 20 and "the half of the dev rows it ranked on" in \
        snap.row_counts["split"]                                           # how they were chosen, on the record
    assert not snap.row_counts.get("train") and read_lineage(studio.store, info.id)["template_version_id"]
    assert info.metrics["search/candidates"] == out["candidates"] >= 3
    # the recorded best is the winner's, on the rows it reached (not a candidate dropped after a lucky few)
    assert (info.metrics["search/best_accuracy"], info.metrics["search/best_rows"]) == \
        (out["ranking"][0]["accuracy"], out["ranking"][0]["rows"])
    cmp = res["comparison"]
    assert cmp["status"] == "succeeded" and cmp["result"]["n"] == 20, cmp
    assert studio.store.get_run(cmp["job"]).parent_run_id == info.id       # lineage: the search it came from
    compared = studio.store.get_dataset_snapshot(studio.store.get_run(cmp["job"]).dataset_snapshot_id)
    compared_on = set(expand_rows(compared.row_counts["eval_rows"]))
    assert len(compared_on) == 20 and not compared_on & ranked_on          # never on a row that chose the winners
    assert "held out from the search" in compared.row_counts["split"]
    for row in cmp["result"]["rows"]:                                      # each combination's run: the same rows
        run = studio.store.get_run(row["run_id"])
        assert set(expand_rows(studio.store.get_dataset_snapshot(run.dataset_snapshot_id)
                               .row_counts["eval_rows"])) == compared_on
    templates = {row["template"] for row in cmp["result"]["rows"]}
    assert len(templates) == len({"{text_a} It was{mask}", *out["best"]})
    assert cmp["result"]["label_words"] == {"V1": "negative: bad\npositive: good"}   # the editor's text
    assert latest_template_search(studio) == info.id
    again = template_search(studio, info.id)           # what a refreshed page reads, from storage alone
    assert again["result"] == out and again["comparison"]["job"] == cmp["job"]
    assert not any(r.method == "template-search" for r in studio.store.list_runs() if r.status != "succeeded")


def test_a_search_job_cancelled_between_batches_ends_cancelled_and_a_crash_fails(studio):
    from backend.services import data
    from backend.services.templatesearch import cancel_template_search, template_search
    from backend.services.templatesearch import search_templates as service
    from backend.workbench.search_job import run_template_search_job

    studio.jobs = object()       # a runner that never runs anything: the job stays queued
    try:
        job = service(studio, template="{text_a} It was{mask}", label_words="negative: bad\npositive: good",
                      selection=data.default_selection(), rephrasings=0, budget=8, limit=40, max_length=64)
    finally:
        studio.jobs = None
    assert job["status"] == "queued" and not job["done"] and job["result"] is None
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    assert run_template_search_job(studio.store, job["job"], loaded=studio.model.get(),
                                   should_stop=stop_after_two) == "cancelled"
    info = studio.store.get_run(job["job"])
    assert info.status == "cancelled" and "between two batches" in info.history[-1].note
    again = template_search(studio, job["job"])
    assert again["status"] == "cancelled" and again["done"] and again["result"] is None
    assert 0 < again["forwards"] < again["forwards_budget"]          # it had started: progress was recorded
    assert "Cancel requested" in cancel_template_search(studio, job["job"])["message"]
    other = studio.store.create_run({"name": "x"}, method="zero-shot")
    assert "not a template search" in template_search(studio, other)["error"]["message"]
    # a config naming another model: the job fails with the reason on the run, and the page says it
    studio.jobs = object()
    try:
        job = service(studio, template="{text_a} It was{mask}", label_words="negative: bad\npositive: good",
                      selection=data.default_selection(), rephrasings=0, budget=8, limit=40)
    finally:
        studio.jobs = None
    wrong = dataclasses.replace(studio.model.get(), spec="other-model", model_id="other-model")
    assert run_template_search_job(studio.store, job["job"], loaded=wrong) == "failed"
    failed = template_search(studio, job["job"])
    assert failed["error"]["message"].startswith(f"template search #{job['job']} failed: the config asks for model")


@pytest.mark.parametrize("kwargs, field", [
    ({"template": ""}, "template"), ({"label_words": " "}, "label_words"), ({"budget": "lots"}, "budget"),
    ({"budget": float("nan")}, "budget"), ({"budget": 1e9}, "budget"), ({"keep": 0}, "keep"),
    ({"rephrasings": True}, "rephrasings"), ({"task": "x" * 500}, "task"), ({"template": "{text_a} {mask"}, "template"),
])
def test_service_mistakes_are_messages(studio, kwargs, field):
    from backend.services import data
    from backend.services.templatesearch import search_templates as service

    args = {"template": "{text_a} It was{mask}", "label_words": "negative: bad\npositive: good",
            "selection": data.default_selection(), "rephrasings": 0, "limit": 10, **kwargs}
    res = service(studio, **args)
    assert res["error"]["field"] == field, res
    assert res["error"]["message"]


@pytest.mark.slow
def test_search_runs_in_the_job_runners_child_process_then_its_comparison(tmp_path, smol_tok):
    """The real path: the search is queued and claimed by the worker, runs in its own process (which loads
    the model from the config) while the page polls storage; the comparison it queues runs next."""
    import os
    import time

    from backend.services import data, project
    from backend.services.templatesearch import search_templates as service
    from backend.services.templatesearch import template_search
    from backend.services.testing import make_context, on_disk, with_jobs

    loaded = on_disk(tiny_model("causal", smol_tok), tmp_path / "model")
    ctx = with_jobs(make_context(tmp_path / "studio", loaded))
    ctx.model.spec = loaded.spec
    project.bootstrap(ctx)
    try:
        res = service(ctx, template="{text_a} It was{mask}", label_words="negative: bad\npositive: good",
                      selection=data.default_selection(), rephrasings=0, budget=8, keep=2, max_length=64, limit=40,
                      compare=True)
        assert res["status"] in ("queued", "running") and res["result"] is None, res
        deadline = time.monotonic() + 240
        while not (res.get("done") and (res.get("comparison") or {}).get("done")) and time.monotonic() < deadline:
            time.sleep(0.5)
            res = template_search(ctx, res["job"])
            assert "error" not in res, res
        assert res["status"] == "succeeded" and res["comparison"]["status"] == "succeeded", res
        search, cmp = ctx.store.get_run(res["job"]), ctx.store.get_run(res["comparison"]["job"])
        assert search.pid not in (None, os.getpid()) and cmp.pid not in (None, os.getpid())   # both ran elsewhere
        assert cmp.parent_run_id == search.id and len(res["comparison"]["result"]["rows"]) == 3
        assert res["forwards"] == res["result"]["forwards"] <= res["forwards_budget"] <= 8 * 40
    finally:
        ctx.close()


def test_halves_are_stratified_seeded_and_disjoint():
    from backend.workbench.search_job import halves

    labels = ["a"] * 10 + ["b"] * 5
    ranked, held = halves(labels, 7)
    assert sorted(ranked + held) == list(range(15)) and not set(ranked) & set(held)
    assert len(ranked) == 8 and sum(labels[i] == "b" for i in ranked) == 3    # each label halved: 5 a + 3 b
    assert halves(labels, 7) == (ranked, held) and halves(labels, 8) != (ranked, held)
    odd = ["a"] * 3 + ["b"] * 3                   # two odd labels: one gives its extra row to each side
    assert [len(x) for x in halves(odd, 0)] == [3, 3]
    assert halves(["a"], 0) == ([0], [])


def test_a_cancelled_search_resumes_as_a_new_job_from_its_parents_spec(studio):
    from backend.jobs.queue import resume
    from backend.services import data
    from backend.services.templatesearch import search_templates as service
    from backend.services.templatesearch import template_search
    from backend.workbench.search_job import run_template_search_job

    studio.jobs = object()       # a runner that never runs anything: the job stays queued
    try:
        job = service(studio, template="{text_a} It was{mask}", label_words="negative: bad\npositive: good",
                      selection=data.default_selection(), rephrasings=0, budget=8, keep=2, limit=40)["job"]
    finally:
        studio.jobs = None
    assert run_template_search_job(studio.store, job, loaded=studio.model.get(), should_stop=lambda: True) == "cancelled"
    again = resume(studio.store, job)
    info = studio.store.get_run(again)
    assert info.method == "template-search" and info.parent_run_id == job and "resume" in info.tags
    assert run_template_search_job(studio.store, again, loaded=studio.model.get()) == "succeeded"
    res = template_search(studio, again)
    assert res["result"]["rows"] == 40 and res["result"]["best"] and res["result"]["held_out"] == 0
