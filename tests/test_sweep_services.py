"""Sweep services: the designer's form -> spec (with field-named errors), the whole sweep's cost card,
one click queues it through the job runner, the live table fills as runs finish, a configuration stops
with its reason, CSV, and "train this one on all data"."""
from __future__ import annotations

import time

import pytest

from backend.services import data, project, runconfig, sweeps
from backend.services.testing import make_context, on_disk, with_jobs


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    from tests.tiny import tiny_model

    folder = tmp_path_factory.mktemp("sweeps")
    loaded = on_disk(tiny_model("causal", smol_tok), folder / "tiny")
    ctx = with_jobs(make_context(folder / "studio", loaded))
    opening = project.bootstrap(ctx)
    yield ctx, opening
    ctx.close()


def _base(ctx, opening, steps=2):
    return runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                           selection=dict(data.default_selection(), shots=4), method="prompt-tuning",
                           options={"num_tokens": 2}, train_split="train",
                           train={"steps": steps, "batch_size": 4, "eval_every": 1, "eval_limit": 8})


def test_form_makes_the_spec_the_cli_reads(studio):
    ctx, opening = studio
    base = _base(ctx, opening)
    spec = sweeps.form_spec(base, name="form", methods=["prompt-tuning", "lora"], lrs="1e-3, 3e-3", shots="4",
                            seeds="13, 21", options="r=2,4; num_tokens=2", templates="{text_a} Sentiment: {mask}",
                            sample=0, asha=True, grace_steps=2, reduction_factor=2)
    assert spec.grid == {"method.name": ["prompt-tuning", "lora"], "method.r": [2, 4], "method.num_tokens": [2],
                         "train.lr": [0.001, 0.003], "data.shots": [4],
                         "template": [base.template, "{text_a} Sentiment: {mask}"]}
    assert spec.seeds == [13, 21] and spec.early_stop.grace_steps == 2
    from backend.sweeps.spec import load_spec, parse_text

    assert load_spec(parse_text(sweeps.spec_text(spec))).to_dict() == spec.to_dict()
    for kwargs, message in ((dict(lrs="1e-3, fast"), "learning rates: item 2 ('fast') is not a number"),
                            (dict(seeds="13, 2.5"), "seeds: item 2 ('2.5') is not a whole number"),
                            (dict(options="r"), "method options: write option=value"),
                            (dict(options="rank=4"), "grid.method.rank: no method of this sweep has this option"),
                            (dict(sample=float("nan")), "sample: expected a whole number"),
                            (dict(methods=["nope"]), "grid.method.name[0]: unknown method"),
                            (dict(verbalizers="negative: bad\npositive: good\n---\nnegative: awful\npositive:"),
                             "more label words, block 2: class 'positive' has no label words"),
                            (dict(options="r=" + "[" * 3000), "method options: r: cannot read the value"),
                            (dict(verbalizers="bad: awful\ngood: great"),
                             "more label words, block 1: classes ['bad', 'good'] are not the Verbalizer tab's")):
        with pytest.raises(Exception) as info:
            sweeps.form_spec(base, **kwargs)
        assert message in str(info.value)


def test_the_form_sweeps_label_words_too(studio):
    ctx, opening = studio
    base = _base(ctx, opening)
    classes = sorted(base.verbalizer)
    other = "\n".join(f"{c}: {w}" for c, w in zip(classes, ("awful", "great")))
    same = "\n".join(f"{c}: {', '.join(base.verbalizer[c])}" for c in classes)
    spec = sweeps.form_spec(base, name="words", methods=["prompt-tuning"], seeds="13",
                            verbalizers=f"{other}\n---\n{same}\n---\n{other}")
    # the Verbalizer tab's words first, then each new set once (the tab's own and a repeat dropped)
    assert spec.grid["verbalizer"] == [base.verbalizer, dict(zip(classes, (["awful"], ["great"])))]
    plan = sweeps.plan(ctx, spec)
    assert plan["configurations"] == 2 and plan["runs"] == 2


def test_cost_card_for_the_whole_sweep(studio):
    ctx, opening = studio
    spec = sweeps.form_spec(_base(ctx, opening), name="cost", methods=["prompt-tuning", "lora"], seeds="13, 21")
    card = sweeps.plan(ctx, spec)
    assert card["runs"] == 4 and card["configurations"] == 2 and card["seeds"] == 2 and card["steps"] == 8
    assert card["estimated_s"] > 0 and [r["key"] for r in card["rows"]] == ["method=prompt-tuning", "method=lora"]
    assert all(r["trainable"] > 0 for r in card["rows"])


def _wait(ctx, name, done, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = sweeps.table(ctx, name)
        if done(res):
            return res
        time.sleep(0.5)
    raise AssertionError(f"sweep {name} did not get there: {res}")


@pytest.mark.slow
def test_a_sweep_queues_fills_its_table_and_trains_a_row_on_all_data(studio):
    ctx, opening = studio
    spec = sweeps.form_spec(_base(ctx, opening), name="live", methods=["prompt-tuning", "lora"], seeds="13, 21")
    res = sweeps.start(ctx, spec)
    assert len(res["run_ids"]) == 4 and "4 runs queued" in res["message"]
    assert "live" in sweeps.names(ctx)
    again = sweeps.start(ctx, spec)
    assert "already has runs" in again["error"]["message"]
    # stop one configuration while its runs wait in the queue (one run at a time on CPU)
    stopped = sweeps.stop(ctx, "live", "method=lora")
    assert stopped["stopped"] and "Stopping method=lora" in stopped["message"]
    table = _wait(ctx, "live", lambda t: not t["active"])
    rows = {r["key"]: r for r in table["rows"]}
    assert rows["method=prompt-tuning"]["finished"] == 2 and rows["method=prompt-tuning"]["mean"] is not None
    assert rows["method=lora"]["stopped"] == 2 and rows["method=lora"]["reasons"][0].startswith("stopped from")
    assert table["rows"][0]["key"] == "method=prompt-tuning"
    assert table["fronts"]["trainable"] == ["method=prompt-tuning"]
    conf = sweeps.configuration(ctx, "live", "method=lora")
    assert {r["status"] for r in conf["runs"]} == {"cancelled"}
    csv = sweeps.export_csv(ctx, "live")
    assert open(csv["path"], encoding="utf-8").read().startswith("rank,key,")
    nothing = sweeps.stop(ctx, "live", "method=lora")
    assert nothing["stopped"] == [] and "already ended" in nothing["message"]
    full = sweeps.train_on_all(ctx, "live", "method=prompt-tuning")
    info = ctx.store.get_run(full["run_id"])
    assert info.config["data"]["shots"] is None and "sweep" not in info.config
    assert "from-sweep:live" in info.tags and not any(t.startswith("sweep:") for t in info.tags)
    # made from one of the configuration's runs, and said to be scored on the rows that chose it
    chosen = sweeps.configuration(ctx, "live", "method=prompt-tuning")["runs"]
    assert info.parent_run_id in {r["id"] for r in chosen} and "optimistic" in full["message"]
    from backend.services import runs as runs_service

    shown = runs_service.detail(ctx, full["run_id"])
    assert shown["run"]["parent"] == info.parent_run_id and "Chosen by sweep" in shown["caveats"][0]
    ctx.store.request_cancel(full["run_id"])


def test_bad_requests_are_clear_errors(studio):
    ctx, _ = studio
    assert "pick a sweep first" in sweeps.table(ctx, "")["error"]["message"]
    assert "no sweep named 'nope'" in sweeps.table(ctx, "nope")["error"]["message"]
    assert "no sweep named" in sweeps.stop(ctx, "nope", "k")["error"]["message"]
    assert "no sweep named" in sweeps.train_on_all(ctx, "nope", "k")["error"]["message"]
    assert "no sweep named" in sweeps.export_csv(ctx, "../../etc")["error"]["message"]


def test_a_sweep_lives_in_the_project_it_started_in(studio):
    ctx, opening = studio
    other = ctx.scoped("sweeps-elsewhere")
    spec = sweeps.form_spec(_base(other, opening, steps=1), name="elsewhere", methods=["prompt-tuning"], seeds="13")
    res = sweeps.start(other, spec)
    assert "error" not in res, res
    assert [r.project for r in ctx.store.list_runs(tag="sweep:elsewhere")] == ["sweeps-elsewhere"]
    assert "elsewhere" in sweeps.names(other) and "elsewhere" not in sweeps.names(ctx)
    assert sweeps.table(other, "elsewhere")["rows"][0]["key"] == "method=prompt-tuning"
    refused = sweeps.table(ctx, "elsewhere")
    assert "belongs to project 'sweeps-elsewhere'" in refused["error"]["message"]
    assert "error" in sweeps.stop(ctx, "elsewhere", "method=prompt-tuning")   # nor stopped from another project


def test_a_configuration_says_why_its_runs_stopped_in_the_sweep_metric(studio):
    """A sweep judged on macro-F1 says macro_f1 in its stop reasons, not accuracy."""
    from backend.sweeps.asha import Stop, stop_events
    from backend.sweeps.expand import expand, tag

    ctx, opening = studio
    base = _base(ctx, opening)
    base.train.metric = "macro_f1"
    spec = sweeps.form_spec(base, name="by-f1", methods=["prompt-tuning"], seeds="13", asha=True)
    (trial,) = expand(spec)
    run = ctx.store.create_run(trial.config.to_dict(), method="prompt-tuning", seed=13, tags=[tag("by-f1")],
                               status="running", project=ctx.project)
    stop = Stop(run_id=run, step=2, rung=2, value=0.31, cut=0.5, metric="macro_f1")
    ctx.store.append_metrics(run, stop_events(stop, 1.0))
    conf = sweeps.configuration(ctx, "by-f1", trial.key)
    assert conf["metric"] == "macro_f1" and conf["runs"][0]["reason"] == \
        "stopped early by ASHA at step 2: macro_f1 0.31 < rung cut 0.5"
    from studio.views.sweep import configuration_html

    assert "final macro_f1" in configuration_html(conf) and "last dev macro_f1" in configuration_html(conf)
    from studio.views.sweep import status_html, table_headers

    ctx.store.append_metrics(run, [{"key": "final/macro_f1", "value": 0.4, "step": 2}])
    ctx.store.set_status(run, "succeeded")
    table = sweeps.table(ctx, "by-f1")
    assert table["rows"][0]["metric"] == "macro_f1" and table["rows"][0]["mean"] == pytest.approx(0.4)
    assert "macro_f1: mean ± std (dev rows that chose each checkpoint: optimistic)" in table_headers(table["rows"]) and "last dev macro_f1 (top seed)" in table_headers(table["rows"])
    assert "macro_f1 0.4000 ± n/a (1 seed)" in status_html(table)   # one seed: no spread to show


def test_configurations_differing_in_learning_rate_share_one_cost_card(studio, monkeypatch):
    from backend.services import cost

    ctx, opening = studio
    cards = []
    real = cost.plan

    def counted(ctx, cfg):
        cards.append(cfg.method.name)
        return real(ctx, cfg)

    monkeypatch.setattr(cost, "plan", counted)
    spec = sweeps.form_spec(_base(ctx, opening), name="lrs", methods=["prompt-tuning", "lora"], lrs="1e-3, 3e-3",
                            seeds="13")
    card = sweeps.plan(ctx, spec)
    assert card["configurations"] == 4 and sorted(cards) == ["lora", "prompt-tuning"]   # one card per method
    by_method = {}
    for row in card["rows"]:
        by_method.setdefault(row["key"].split(",")[0], set()).add(row["estimated_s"])
    assert all(len(times) == 1 for times in by_method.values()), by_method


def test_configurations_past_the_measured_ones_get_their_own_steps(studio, monkeypatch):
    """A configuration that is not timed is estimated from the measured ones' mean time per step, but
    with its OWN step count: by epochs, 8 shots a class train twice the steps of 4 (not the previous
    row's), and the card calls it an estimate."""
    from html import unescape

    from backend.services import cost
    from studio.views.sweep import cost_html

    ctx, opening = studio
    monkeypatch.setattr(sweeps, "PLANNED", 1)
    base = runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                           selection=dict(data.default_selection(), shots=4), method="prompt-tuning",
                           options={"num_tokens": 2}, train_split="train",
                           train={"epochs": 1, "batch_size": 4, "eval_limit": 8})
    spec = sweeps.form_spec(base, name="shots", methods=["prompt-tuning"], shots="4, 8", seeds="13")
    card = sweeps.plan(ctx, spec)
    assert "error" not in card, card
    measured, guessed = card["rows"]
    from backend.sweeps.expand import expand

    eight = next(t.config for t in expand(spec) if t.key == guessed["key"])
    assert guessed["steps"] == cost.plan(ctx, eight)["steps"] == 2 * measured["steps"]
    assert guessed["estimated_s"] == pytest.approx(measured["estimated_s"] * 2)
    assert measured["measured"] and not guessed["measured"]
    html = unescape(cost_html(card))
    assert "estimated from the measured configurations' mean time per step" in html and "(estimated)" in html
