"""Train / dev from one source: stratified, seeded, duplicates on one side; configs that would score a run
on rows it trained on are refused (engine, CLI); data.dev_fraction splits deterministically instead."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from backend.config import RunConfig
from backend.errors import ConfigError, DatasetError
from backend.prompts.example import Example
from tests.cli_helpers import backend_cli


def _rows(n: int = 40) -> list[dict]:
    return [{"text": f"review number {i} " + ("good" if i % 4 else "bad"), "label": "pos" if i % 4 else "neg"}
            for i in range(n)]


@pytest.fixture
def one_file(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in _rows()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(path: Path, **data) -> RunConfig:
    return RunConfig.from_dict({"model": "tiny", "template": "{text_a} It was {mask}",
                                "verbalizer": {"neg": ["bad"], "pos": ["good"]}, "method": {"name": "lora"},
                                "data": {"train": str(path), "eval": str(path), **data}})


def test_split_is_stratified_seeded_and_disjoint():
    from backend.data.fingerprint import example_key
    from backend.data.splitting import split_train_dev

    examples = [Example(i, r["text"], label=r["label"]) for i, r in enumerate(_rows())]
    train, dev = split_train_dev(examples, 0.2, seed=7)
    assert len(train) + len(dev) == 40 and Counter(e.label for e in dev) == {"pos": 6, "neg": 2}
    assert not {example_key(e) for e in train} & {example_key(e) for e in dev}
    assert [e.guid for e in dev] == sorted(e.guid for e in dev)          # dataset order kept
    assert split_train_dev(examples, 0.2, seed=7) == (train, dev)        # the seed alone decides
    assert split_train_dev(examples, 0.2, seed=8)[1] != dev


def test_identical_rows_stay_on_one_side():
    from backend.data.splitting import split_train_dev

    examples = [Example(i, f"text {i % 5}", label=str(i % 5 % 2)) for i in range(30)]   # each text 6 times
    train, dev = split_train_dev(examples, 0.4, seed=1)
    assert not {e.text_a for e in train} & {e.text_a for e in dev}


def test_the_same_text_under_two_labels_is_one_input():
    # label noise: one text labelled pos and neg. Keyed with its label, one copy could train and the other be
    # scored, and the check passed; to the model they are the same input
    from backend.data.splitting import check_disjoint, split_train_dev

    examples = [Example(i, f"text {i}", label="pos" if i % 2 else "neg") for i in range(20)]
    examples += [Example(20, "great film", label="pos"), Example(21, "great film", label="neg")]
    for seed in range(30):
        train, dev = split_train_dev(examples, 0.2, seed=seed)
        assert not {e.text_a for e in train} & {e.text_a for e in dev}, seed
    with pytest.raises(DatasetError, match="1 of the 1 evaluation rows are also training rows"):
        check_disjoint(examples[20:21], examples[21:22])


def test_split_refuses_bad_fractions_and_tiny_data():
    from backend.data.splitting import split_train_dev

    with pytest.raises(ConfigError, match="between 0 and 1"):
        split_train_dev([Example(0, "a", label="x")], 1.5, 0)
    with pytest.raises(DatasetError, match="at least one row"):
        split_train_dev([Example(0, "a", label="x")], 0.2, 0)
    with pytest.raises(ConfigError, match="dev_fraction"):
        RunConfig.from_dict({"template": "{text_a}{mask}", "verbalizer": "labels",
                             "data": {"eval": "x.csv", "dev_fraction": 0}})


def test_same_file_for_train_and_eval_is_refused(one_file):
    from backend.training.run import load_run_data

    with pytest.raises(DatasetError) as err:
        load_run_data(_config(one_file))
    msg = err.value.message
    assert msg.startswith("40 of the 40 evaluation rows are also training rows (e.g. row 0: 'review number 0 bad')")
    assert "pick a dev split or a different file" in msg
    with pytest.raises(DatasetError, match="4 of the 40 evaluation rows"):   # K-shot: the rows it trains on
        load_run_data(_config(one_file, shots=2))


def test_overlap_is_found_by_content_not_by_file_name(one_file, tmp_path):
    from backend.training.run import load_run_data

    other = tmp_path / "dev.jsonl"
    rows = [{"text_a": f"fresh dev text {i}", "label": "pos" if i % 2 else "neg"} for i in range(9)]
    rows.append({"text_a": "review number 5 good", "label": "pos"})          # one row copied from train
    other.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = _config(one_file, columns={"text_a": "text", "label": "label"})
    cfg.data.eval, cfg.data.columns = str(other), {}
    cfg.data.train = str(one_file)
    with pytest.raises(DatasetError, match=r"1 of the 10 evaluation rows .*row 9: 'review number 5 good'"):
        load_run_data(cfg)


def test_dev_fraction_splits_one_source_deterministically(one_file):
    from backend.data.fingerprint import example_key
    from backend.pipeline import load_split
    from backend.training.run import load_run_data

    cfg = _config(one_file, dev_fraction=0.2, shots=3, seed=5)
    data = load_run_data(cfg)
    assert len(data.dev) == 8 and len(data.train) == 6                   # K-shot from the 32 train rows
    assert not {example_key(e) for e in data.train} & {example_key(e) for e in data.dev}
    again = load_run_data(_config(one_file, dev_fraction=0.2, shots=3, seed=5))
    assert again.train == data.train and again.dev == data.dev
    only_train = RunConfig.from_dict(dict(cfg.to_dict(), data={"train": str(one_file), "dev_fraction": 0.2,
                                                                  "shots": 3, "seed": 5}))
    assert load_run_data(only_train).dev == data.dev                     # one source named once is enough
    ev = load_split(_config(one_file, dev_fraction=0.2, seed=5), "eval")
    assert ev.counts == {"train": 32, "dev": 8} and "stratified by label, seed 5" in ev.how
    assert ev.examples == data.dev


def test_dev_fraction_with_two_different_sources_is_refused(one_file, tmp_path):
    from backend.training.run import load_run_data

    cfg = _config(one_file, dev_fraction=0.2)
    cfg.data.eval = str(tmp_path / "other.csv")
    with pytest.raises(ConfigError, match="splits one source"):
        load_run_data(cfg)


def test_cli_train_refuses_overlap_with_exit_2(one_file, tmp_path):
    cfg = _config(one_file).to_dict()
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg))
    proc = backend_cli("train", str(path), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "40 of the 40 evaluation rows are also training rows" in proc.stderr
    assert "Traceback" not in proc.stderr
