"""A recorded template ensemble answers like its run says: served on the studio's base model it gives
the dev rows the probabilities the comparison job recorded, the Playground serves it beside a member,
and it survives a bundle export / import into another studio with nothing but the bundle."""
from __future__ import annotations

import pytest

from backend.config import RunConfig
from backend.services import data, evaluate, playground, project, workbench
from backend.services.testing import make_context

TEMPLATES = ["{text_a} It was {mask}", "Review: {text_a} Verdict: {mask}"]
WORDS = ["negative: bad\npositive: good", "negative: awful\npositive: great"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, smol_tok):
    from tests.tiny import tiny_model

    loaded = tiny_model("causal", smol_tok)
    ctx = make_context(tmp_path_factory.mktemp("serve"), loaded)
    project.bootstrap(ctx)
    res = workbench.compare(ctx, templates=TEMPLATES, label_words=WORDS, selection=dict(data.default_selection(), shots=4),
                            max_length=64, limit=12, ensembles=["uniform", "fitted"])
    assert res["status"] == "succeeded", res
    return ctx, loaded, res["result"]


def test_a_served_ensemble_gives_the_recorded_probabilities(recorded):
    ctx, _, res = recorded
    rs = playground.server_for(ctx)
    for e in res["ensembles"]:
        info = ctx.store.get_run(e["run_id"])
        rows = evaluate.eval_examples(ctx, RunConfig.from_dict(info.config))
        with rs.lock:
            playground.attach(ctx, rs, info.id)
            probs = rs.server.scores(str(info.id), rows).exp()
        for p, row in zip(ctx.store.get_predictions(info.id), probs):
            assert [p["probs"][c] for c in ("negative", "positive")] == pytest.approx(row.tolist(), abs=1e-4)


def test_the_playground_serves_an_ensemble_beside_a_member(recorded):
    ctx, _, res = recorded
    ens, member = res["ensembles"][1]["run_id"], res["rows"][0]["run_id"]
    labels = playground.runs(ctx)
    assert any(label.startswith(f"#{ens} ensemble") for label in labels)
    assert not any(" comparison" in label for label in labels)          # the job itself serves nothing
    out = playground.predict(ctx, "a wonderful, moving film", [ens])
    assert "error" not in out, out
    (r,) = out["results"]
    assert r["method"] == "ensemble" and set(r["probs"]) == {"negative", "positive"}
    assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "no trained artifacts" in playground.predict(ctx, "text", [member])["error"]["message"]   # zero-shot
    # evaluated on another split like a trained run, the ensemble records an evaluation whose parent it is
    ev = evaluate.trained_run(ctx, ens, limit=6)
    assert "error" not in ev, ev
    assert ctx.store.get_run(ev["run_id"]).parent_run_id == ens


def test_an_ensemble_bundle_is_served_by_another_studio(recorded, tmp_path):
    from backend.services import runs
    from backend.workbench.record import read_ensemble

    ctx, loaded, res = recorded
    ens = res["ensembles"][0]["run_id"]
    path = runs.export_bundle(ctx, ens)["path"]
    other = make_context(tmp_path / "other", loaded)
    new_id = runs.import_bundle(other, path)["run_id"]
    assert read_ensemble(other.store, new_id) == read_ensemble(ctx.store, ens)
    here = playground.predict(ctx, "dull and far too long", [ens])["results"][0]["probs"]
    there = playground.predict(other, "dull and far too long", [new_id])["results"][0]["probs"]
    assert there == pytest.approx(here, abs=1e-5)
    info = other.store.get_run(new_id)
    assert info.method == "ensemble" and info.dataset_snapshot_id is not None
