"""Automatic label words: planted signals are found, common words are not taken for separating ones,
and the training accuracy the search reports is what an evaluation with the found words gives."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.batching import EncodeSettings
from backend.evaluate import evaluate
from backend.pipeline import build_verbalizer, mask_prefix
from backend.prompt_model import PromptModel
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer
from backend.workbench import labelsearch
from backend.data.sampling import stratified_sample
from backend.workbench.labelsearch import best_assignment, rank_candidates, search_label_words, word_tokens
from tests.tiny import bert_tokenizer, tiny_model


def _planted(n: int = 40, vocab: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = np.arange(n) % 2
    logits = rng.normal(size=(n, vocab))
    logits[:, 7] += 6.0                       # likely for every row: a common word that separates nothing
    logits[gold == 0, 3] += 4.0               # class 0's word
    logits[gold == 1, 5] += 4.0               # class 1's word
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return logp, gold


def test_candidates_are_ranked_by_separation_not_by_likelihood():
    logp, gold = _planted()
    ranked = rank_candidates(logp, gold, 2, np.ones(20, dtype=bool), pool=5, keep=3)
    assert ranked[0][0][0] == 3 and ranked[1][0][0] == 5
    common = [r for r in ranked[0] if r[0] == 7]
    assert common and common[0][1] > ranked[0][0][1]      # more likely than the class word, ranked below
    eligible = np.ones(20, dtype=bool)
    eligible[3] = False
    assert 3 not in [t for t, _, _ in rank_candidates(logp, gold, 2, eligible, pool=5, keep=3)[0]]


def test_best_assignment_exhaustive_and_by_coordinate_ascent(monkeypatch):
    logp, gold = _planted()
    ids, acc, tried = best_assignment(logp, gold, [[7, 3, 0], [7, 5, 1]])
    assert ids == [3, 5] and acc == 1.0 and tried == 9
    ids, _, _ = best_assignment(logp, gold, [[7], [7, 5]])
    assert ids == [7, 5]                                   # one word never names two classes
    monkeypatch.setattr(labelsearch, "MAX_EXHAUSTIVE", 2)
    ids, acc, tried = best_assignment(logp, gold, [[7, 3, 0], [7, 5, 1]])
    assert ids == [3, 5] and acc == 1.0


def test_word_rows_round_trip_through_the_verbalizer(smol_tok):
    bpe = word_tokens(smol_tok, " ")
    great = smol_tok(" great", add_special_tokens=False)["input_ids"]
    assert len(great) == 1 and bpe[great[0]] == "great"
    bert = bert_tokenizer()
    wordpiece = word_tokens(bert, " ")
    assert wordpiece[bert.convert_tokens_to_ids("great")] == "great"
    assert bert.convert_tokens_to_ids("##ing") not in wordpiece


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_search_reports_the_accuracy_an_evaluation_gives(kind, smol_tok):
    tok = smol_tok if kind == "causal" else bert_tokenizer()
    torch.manual_seed(0)
    lm = tiny_model(kind, tok)
    texts = ["a great movie", "boring and bad", "loved it", "a waste of time", "superb", "awful plot",
             "fine acting", "dull"]
    train = [Example(guid=i, text_a=t, label=["positive", "negative"][i % 2]) for i, t in enumerate(texts)]
    settings = EncodeSettings(profile=kind, max_length=32, truncate="tail")
    template = "{text_a} It was {mask}."
    res = search_label_words(lm, template, train, ["negative", "positive"], settings=settings, pool=20, keep=3)
    assert set(res.best) == {"negative", "positive"} and res.rows == len(train)
    assert all(len(c) == 3 for c in res.candidates.values())
    t = compile_template(template, tok)
    verb = compile_verbalizer(build_verbalizer(res.best, ["negative", "positive"]), tok, mask_prefix(t))
    assert all(len(w) == 1 for ws in verb.token_ids for w in ws)   # each found word is one token
    ev = evaluate(PromptModel(lm.model, kind, t, verb), tok, train, settings=settings)
    assert ev.metrics["accuracy"] == pytest.approx(res.train_accuracy)
    assert res.of_rows == len(train) and res.notes == []


def test_stratified_sample_caps_rows_and_keeps_every_class():
    key = [0] * 90 + [1] * 8 + [2] * 2                      # a skewed split
    picked = stratified_sample(key, 12)
    assert len(picked) == 12 and picked == sorted(set(picked))
    assert sorted(key[i] for i in picked).count(2) == 2 and [key[i] for i in picked].count(1) == 5
    assert stratified_sample(key, 12) == picked and stratified_sample(key, 12, seed=1) != picked
    assert stratified_sample(key, 500) == list(range(100))


def test_the_search_reads_a_sample_of_a_large_split(smol_tok, monkeypatch):
    """A whole training split would be a rows x vocabulary matrix in memory (13 GB for SST-2's): a
    sample of at most max_rows is run through the model, and the result says so."""
    torch.manual_seed(0)
    lm = tiny_model("causal", smol_tok)
    train = [Example(guid=i, text_a=f"review number {i}", label=["positive", "negative"][i % 2]) for i in range(30)]
    real, ran = labelsearch.mask_log_probs, []
    monkeypatch.setattr(labelsearch, "mask_log_probs",
                        lambda lm_, t, rows, st, **kw: ran.append(len(rows)) or real(lm_, t, rows, st, **kw))
    res = search_label_words(lm, "{text_a} It was {mask}.", train, ["negative", "positive"],
                             settings=EncodeSettings(profile="causal", max_length=32), pool=5, keep=2, max_rows=8)
    assert ran == [8] and (res.rows, res.of_rows) == (8, 30)
    assert res.notes == ["searched on a class-stratified sample of 8 of the 30 training rows (seed 0)"]


@pytest.fixture
def studio(tmp_path, smol_tok):
    from backend.services import project
    from backend.services.testing import make_context

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    project.bootstrap(ctx)
    return ctx


def test_the_studio_search_is_a_job_recording_the_training_rows_it_read_and_the_words_found(studio):
    from backend.recording import expand_rows
    from backend.services import data, workbench

    sel = dict(data.default_selection(), shots=4)
    res = workbench.search_words(studio, template="{text_a} It was {mask}", selection=sel, max_length=64, keep=3)
    assert "error" not in res, res
    assert res["status"] == "succeeded" and res["done"] and res["rows_scored"] == res["rows_total"] == 8, res
    out = res["result"]
    assert out["rows"] == 8 and set(out["best"]) == {"negative", "positive"}
    assert out["label_words"] == "\n".join(f"{c}: {w[0]}" for c, w in out["best"].items())
    info = studio.store.get_run(res["job"])
    assert info.method == "label-search" and info.project == studio.project
    snap = studio.store.get_dataset_snapshot(info.dataset_snapshot_id)     # the training rows it read, only
    assert snap.row_counts["train"] == 8 and len(expand_rows(snap.row_counts["train_rows"])) == 8
    assert not snap.row_counts.get("eval")
    saved = studio.store.list_versions("verbalizer", "searched", project=studio.project)
    assert [v.id for v in saved] == [info.verbalizer_version_id]
    content = studio.store.get_version_by_id(info.verbalizer_version_id).content   # the words it found
    assert all(f'"{words[0]}"' in content for words in out["best"].values())
    assert workbench.latest_label_search(studio) == info.id
    assert workbench.label_search(studio, info.id)["result"] == out      # what a refreshed page reads


def test_a_label_search_job_cancels_between_batches_and_mistakes_are_messages(studio):
    from backend.services import data, workbench
    from backend.workbench.labelsearch_job import run_label_search_job

    sel = dict(data.default_selection(), shots=16)
    studio.jobs = object()          # a runner that never runs anything: the job stays queued
    try:
        job = workbench.search_words(studio, template="{text_a} It was {mask}", selection=sel, max_length=64)
    finally:
        studio.jobs = None
    assert job["status"] == "queued" and not job["done"]
    calls = []
    assert run_label_search_job(studio.store, job["job"], loaded=studio.model.get(),
                                should_stop=lambda: calls.append(1) or len(calls) > 1) == "cancelled"
    again = workbench.label_search(studio, job["job"])
    assert again["status"] == "cancelled" and again["result"] is None and 0 < again["rows_scored"] < 32
    info = studio.store.get_run(job["job"])      # stopped before it found words, it still says which rows it read
    snap = studio.store.get_dataset_snapshot(info.dataset_snapshot_id)
    assert snap.row_counts["train"] == 32 and not snap.row_counts.get("eval") and info.verbalizer_version_id is None
    assert "Cancel requested" in workbench.cancel_label_search(studio, job["job"])["message"]
    other = studio.store.create_run({"name": "x"}, method="zero-shot")
    assert "not a label-word search" in workbench.label_search(studio, other)["error"]["message"]
    assert "{mask}" in workbench.search_words(studio, template=" ", selection=sel)["error"]["message"]
    assert "never closed" in workbench.search_words(studio, template="{text_a} {mask", selection=sel)["error"]["message"]
    bad = workbench.search_words(studio, template="{text_a} It was {mask}", selection=sel, keep=0)
    assert bad["error"]["message"].startswith("keep must be a whole number from 1 to 50")


@pytest.mark.slow
def test_the_label_search_job_runs_in_the_job_runners_child_process(tmp_path, smol_tok):
    import os
    import time

    from backend.services import data, project, workbench
    from backend.services.testing import make_context, on_disk, with_jobs

    loaded = on_disk(tiny_model("causal", smol_tok), tmp_path / "model")
    ctx = with_jobs(make_context(tmp_path / "studio", loaded))
    ctx.model.spec = loaded.spec
    project.bootstrap(ctx)
    try:
        res = workbench.search_words(ctx, template="{text_a} It was {mask}",
                                     selection=dict(data.default_selection(), shots=4), max_length=64, keep=3)
        assert res["status"] in ("queued", "running"), res
        deadline = time.monotonic() + 180
        while not res.get("done") and time.monotonic() < deadline:
            time.sleep(0.5)
            res = workbench.label_search(ctx, res["job"])
            assert "error" not in res, res
        assert res["status"] == "succeeded" and res["result"]["rows"] == 8, res
        info = ctx.store.get_run(res["job"])
        assert info.pid not in (None, os.getpid()) and info.dataset_snapshot_id is not None   # ran elsewhere
    finally:
        ctx.close()


def test_without_a_runner_the_studio_runs_a_job_only_if_no_other_worker_claimed_it(studio, monkeypatch):
    """A worker on the same database (``python -m backend worker``) claims queued runs too: a job it
    claimed first runs there, once, and the page follows it."""
    from backend.services import data, workbench
    from backend.workbench import labelsearch_job

    real = labelsearch_job.submit_label_search

    def submit_then_claimed_elsewhere(store, *args, **kwargs):
        job = real(store, *args, **kwargs)
        store.set_status(job, "running")          # the other worker's claim, before the studio's
        return job

    monkeypatch.setattr(labelsearch_job, "submit_label_search", submit_then_claimed_elsewhere)
    monkeypatch.setattr(labelsearch_job, "run_label_search_job",
                        lambda *a, **k: pytest.fail("the studio ran a job another worker had claimed"))
    sel = dict(data.default_selection(), shots=16)
    res = workbench.search_words(studio, template="{text_a} It was {mask}", selection=sel, max_length=64)
    assert res["status"] == "running" and not res["done"] and res["rows_scored"] == 0
    studio.store.set_status(res["job"], "cancelled")


def _one_file(folder):
    """A single uploaded JSONL file (no split files): read as both train and eval unless a dev fraction
    splits it."""
    import json

    rows = [{"text": f"a {'great' if i % 2 else 'dull'} film, take {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(16)]
    path = folder / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _rows_read(store, run_id):
    from backend.recording import expand_rows

    snap = store.get_dataset_snapshot(store.get_run(run_id).dataset_snapshot_id)
    return expand_rows(snap.row_counts["train_rows"]), expand_rows(snap.row_counts["eval_rows"])


def test_the_search_never_reads_the_rows_the_evaluation_scores(studio, tmp_path):
    """One file, no dev fraction: its train and eval are the same rows, so the words would be chosen on
    the rows they are then scored on. Refused before anything is queued; with a dev fraction the search
    reads the train part only, and an evaluation of the found words scores none of the rows searched."""
    from backend.config import RunConfig
    from backend.data import load_examples
    from backend.data.fingerprint import input_key
    from backend.services import data, evaluate, runconfig, workbench

    source = data.save_upload(studio, _one_file(tmp_path))["source"]
    sel = {"source": source, "columns": {}, "split": None, "limit": None, "shots": None, "seed": 13}
    before = len(studio.store.list_runs(limit=None))
    res = workbench.search_words(studio, template="{text_a} It was {mask}", selection=sel, max_length=64)
    msg = res["error"]["message"]
    assert msg.startswith("label words would be searched on the rows the evaluation scores (16 of the 16 "), res
    assert "set a dev fraction on the Data tab" in msg and "reads only training rows" in msg
    assert len(studio.store.list_runs(limit=None)) == before                  # nothing queued nor recorded

    split = dict(sel, dev_fraction=0.25)
    res = workbench.search_words(studio, template="{text_a} It was {mask}", selection=split, max_length=64, keep=2)
    assert res["status"] == "succeeded" and res["result"]["rows"] == 12, res
    searched, _ = _rows_read(studio.store, res["job"])
    words = res["result"]["label_words"]
    scored = evaluate.zero_shot(studio, runconfig.build(studio, template="{text_a} It was {mask}", label_words=words,
                                                        selection=split, max_length=64))
    _, evaluated = _rows_read(studio.store, scored["run_id"])
    assert len(searched) == 12 and len(evaluated) == 4
    rows = load_examples(source, columns=RunConfig.from_dict(studio.run(res["job"]).config).data.columns).examples
    by_guid = {ex.guid: input_key(ex) for ex in rows}
    assert not {by_guid[g] for g in searched} & {by_guid[g] for g in evaluated}   # by input, not by row id
    dev = {input_key(ex) for ex in data.train_dev(studio, split)[1]}
    assert {by_guid[g] for g in evaluated} == dev


def test_a_queued_search_whose_rows_the_evaluation_scores_fails_with_the_reason(studio, tmp_path):
    """The job checks its rows again when it runs (it may have been queued by another client, or its data
    changed since): it fails, saying why, and reads no row."""
    from backend.config import RunConfig
    from backend.pipeline import WHOLE_VOCAB
    from backend.workbench.labelsearch_job import LabelSearchSpec, run_label_search_job, submit_label_search

    path = _one_file(tmp_path)
    cfg = RunConfig.from_dict({"model": studio.model.spec, "template": "{text_a} It was {mask}",
                               "verbalizer": WHOLE_VOCAB, "data": {"train": str(path), "eval": str(path),
                                                                   "columns": {"text_a": "text", "label": "label"}}})
    job = submit_label_search(studio.store, cfg, LabelSearchSpec(pool=10, keep=2), project=studio.project)
    assert run_label_search_job(studio.store, job, loaded=studio.model.get()) == "failed"
    info = studio.store.get_run(job)
    assert "label words would be searched on the rows the evaluation scores" in info.error
    assert info.dataset_snapshot_id is None


def test_the_cli_search_refuses_the_rows_the_evaluation_scores_before_the_model_loads(tmp_path, capsys):
    import json

    from backend.cli import main

    path = _one_file(tmp_path)
    cfg = {"model": str(tmp_path / "no-model-here"), "template": "{text_a} It was {mask}.",
           "verbalizer": {"negative": ["bad"], "positive": ["good"]},
           "data": {"train": str(path), "eval": str(path), "columns": {"text_a": "text", "label": "label"}}}
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    db = tmp_path / "words.db"
    for where in (["--no-db"], ["--db", f"sqlite:///{db}"]):
        assert main(["search-words", str(tmp_path / "run.json"), *where]) == 2
        err = capsys.readouterr().err
        assert "label words would be searched on the rows the evaluation scores (16 of the 16 " in err, err
        assert "Traceback" not in err
    from storage import open_store

    with open_store(f"sqlite:///{db}") as store:
        assert store.list_runs(limit=None) == []                           # nothing queued
