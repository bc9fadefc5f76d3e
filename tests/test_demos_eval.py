"""Demonstrations in a zero-shot run: the pool is the training rows only, a dev row is never shown as a
demonstration (a training row identical to a dev row is left out of the pool, and the run says so), the
run records which pool rows each scored row was shown, and the config refuses what cannot work."""
from __future__ import annotations

import json

import pytest

from backend.config import RunConfig
from backend.errors import ConfigError, DatasetError
from backend.models.embed import SentenceEmbedder
from backend.pipeline import run_zero_shot
from backend.prompts.demos import DemoChooser, build_pool, input_key, select_demos
from backend.prompts.example import Example
from storage import open_store
from tests.tiny import tiny_model

WORDS = {"negative": ["bad"], "positive": ["good"]}
TRAIN = [{"text_a": f"train review {i} {'fine' if i % 2 else 'poor'}", "label": "positive" if i % 2 else "negative"}
         for i in range(12)]
DEV = [{"text_a": f"dev review {i}", "label": "positive" if i % 2 else "negative"} for i in range(6)]
DEV.append(dict(TRAIN[3]))          # a dev row identical to a training row: that row must leave the pool


@pytest.fixture(scope="module")
def setup(tmp_path_factory, smol_tok):
    folder = tmp_path_factory.mktemp("demos")
    for name, rows in (("train.jsonl", TRAIN), ("dev.jsonl", DEV)):
        (folder / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = open_store(f"sqlite:///{folder / 'runs.db'}", artifacts_dir=folder / "artifacts")
    yield folder, tiny_model("causal", smol_tok), store
    store.close()


def _cfg(folder, dev="dev.jsonl", **extra):
    raw = {"model": "tiny-causal", "data": {"train": str(folder / "train.jsonl"), "eval": str(folder / dev)},
           "template": "{demos:2}Review: {text_a}\nSentiment:{mask}", "verbalizer": WORDS, **extra}
    return RunConfig.from_dict(raw)


def _artifact(store, run_id, name):
    art = next(a for a in store.list_artifacts(run_id) if a.name == name)
    return json.loads(store.read_artifact(art.sha256))


def test_no_dev_row_is_ever_a_demonstration_and_the_run_records_the_rows_shown(setup):
    folder, lm, store = setup
    result, run_id = run_zero_shot(_cfg(folder), loaded=lm, store=store)
    shown = _artifact(store, run_id, "demos.json")
    assert shown["k_per_class"] == 2 and shown["selection"] == "random" and shown["pool_rows"] == len(TRAIN)
    assert shown["excluded_rows"] == [3]                         # identical to the last dev row
    dev_keys = {input_key(Example.from_dict(r)) for r in DEV}
    assert len(shown["per_example"]) == len(DEV)
    for rows in shown["per_example"]:
        assert len(rows) == 4 and 3 not in rows                  # 2 per class, never the excluded row
        assert not {input_key(Example.from_dict(TRAIN[r])) for r in rows} & dev_keys
    assert result.metrics["demos_shown"] == 4 and result.metrics["demos_dropped"] == 0
    snap = store.get_dataset_snapshot(store.get_run(run_id).dataset_snapshot_id)
    assert snap.row_counts["train"] == len(TRAIN)                # the pool is recorded as the run's train rows


def test_demos_change_the_scores_and_k0_turns_them_off(setup):
    folder, lm, _ = setup
    with_demos, _ = run_zero_shot(_cfg(folder), loaded=lm)
    off, _ = run_zero_shot(_cfg(folder, demos={"k": 0}), loaded=lm)
    plain, _ = run_zero_shot(_cfg(folder, template="Review: {text_a}\nSentiment:{mask}"), loaded=lm)
    probs = [p["probs"] for p in with_demos.predictions]
    assert [p["probs"] for p in off.predictions] == [p["probs"] for p in plain.predictions]
    assert probs != [p["probs"] for p in plain.predictions] and "demos_shown" not in off.metrics


@pytest.mark.parametrize("calibration", ["content-free", "support"])
def test_calibration_inputs_get_demonstrations_too(setup, calibration):
    folder, lm, _ = setup
    dev = "dev.jsonl"
    if calibration == "support":   # its priors come from the training rows: none may be a scored row
        with pytest.raises(DatasetError, match="support calibration takes its priors from the training rows"):
            run_zero_shot(_cfg(folder, eval={"calibration": calibration}), loaded=lm)
        dev = "dev-without-a-training-row.jsonl"
        (folder / dev).write_text("\n".join(json.dumps(r) for r in DEV[:-1]) + "\n")
    shown, _ = run_zero_shot(_cfg(folder, dev, eval={"calibration": calibration}), loaded=lm)
    plain, _ = run_zero_shot(_cfg(folder, dev, eval={"calibration": calibration}, demos={"k": 0}), loaded=lm)
    assert shown.metrics["calibration"] == calibration and shown.metrics["demos_shown"] == 4
    assert [p["probs"] for p in shown.predictions] != [p["probs"] for p in plain.predictions]


def test_a_small_max_length_drops_demonstrations_not_the_input(setup):
    folder, lm, _ = setup
    res, _ = run_zero_shot(_cfg(folder, max_length=24), loaded=lm)
    assert res.metrics["demos_dropped"] > 0 and res.metrics["truncated"] == 0


@pytest.mark.parametrize("extra, needle", [
    ({"demos": {"k": 17}}, "demos.k: must be at most 16"),
    ({"demos": {"selection": "nearest"}}, "demos.selection: must be one of random, similar"),
    ({"demos": {"k": 1}, "method": {"name": "lora"}}, "zero-shot evaluation only"),
    ({"method": {"name": "lora"}}, "template: its demonstrations block"),
])
def test_the_config_refuses_demos_it_cannot_run(setup, extra, needle):
    folder, _, _ = setup
    with pytest.raises(ConfigError, match=needle):
        _cfg(folder, **extra)


def test_demos_need_training_rows_and_a_block(setup):
    folder, lm, _ = setup
    cfg = _cfg(folder)
    cfg.data.train = None
    with pytest.raises(ConfigError, match="demonstrations come from the training rows"):
        run_zero_shot(cfg, loaded=lm)
    with pytest.raises(ConfigError, match="no demonstrations block"):
        run_zero_shot(_cfg(folder, template="Review: {text_a}\nSentiment:{mask}", demos={"k": 1}), loaded=lm)


@pytest.mark.slow
def test_similar_selection_with_the_real_minilm_model():
    pool_rows = [Example(text_a=t, label=lab) for t, lab in [
        ("The football team won the championship game.", "sports"),
        ("Stocks fell sharply on Wall Street today.", "business"),
        ("The striker scored twice in the second half.", "sports"),
        ("The central bank raised interest rates.", "business")]]
    embed = SentenceEmbedder()
    chooser = DemoChooser(build_pool(pool_rows, ["sports", "business"], ["Sports", "Business"], embed=embed),
                          k=1, selection="similar")
    (ds,) = chooser([Example(text_a="The goalkeeper saved a penalty in the final minute.")])
    assert ds[0].example.label == "sports"                     # the nearest row (football) comes first
    assert {pool_rows[d.row].label for d in ds} == {"sports", "business"}
    (money,) = select_demos(chooser.pool, [Example(text_a="Bond yields rose after the inflation report.")], 1,
                            "similar")
    assert money[0].example.label == "business"                  # the nearest row overall comes first
    assert embed([pool_rows[0].text_a]).shape == (1, 384)
