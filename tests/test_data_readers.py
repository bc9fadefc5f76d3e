"""Every source format, and every way a file can be broken."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.data import load_examples, load_rows
from backend.errors import DatasetError

ROWS = [{"text_a": "good film", "label": "positive", "year": 2001},
        {"text_a": "bad film", "label": "negative", "year": 1999}]


def _write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        cols = list(rows[0])
        path.write_text("\n".join([sep.join(cols)] + [sep.join(str(r[c]) for c in cols) for r in rows]) + "\n")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_each_format_reads_the_same_rows(tmp_path, fmt):
    path = _write(tmp_path / f"data.{fmt}", ROWS, fmt)
    rows, columns = load_rows(str(path))
    assert columns == ["text_a", "label", "year"]
    assert [(r["text_a"], r["label"]) for r in rows] == [("good film", "positive"), ("bad film", "negative")]
    data = load_examples(str(path))
    assert [e.text_a for e in data.examples] == ["good film", "bad film"]
    assert data.label_names == ["negative", "positive"]
    assert data.columns == columns and data.source == str(path)


def test_csv_cells_stay_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text_a,label\n"007, licence to bore",negative\n1999,positive\n')
    rows, _ = load_rows(str(path))
    assert rows[1]["text_a"] == "1999"  # not the integer 1999
    assert rows[0]["text_a"] == "007, licence to bore"


def test_json_variants(tmp_path):
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"data": ROWS}))
    assert len(load_rows(str(wrapped))[0]) == 2
    lines_as_json = _write(tmp_path / "l.json", ROWS, "jsonl")  # JSON Lines saved with a .json name
    assert len(load_rows(str(lines_as_json))[0]) == 2


def test_missing_keys_become_none(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text_a": "x", "label": "a"}\n{"text_a": "y", "label": "b", "extra": 1}\n')
    rows, columns = load_rows(str(path))
    assert columns == ["text_a", "label", "extra"] and rows[0]["extra"] is None


def test_blank_lines_and_bom_are_fine(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text_a": "x", "label": "a"}\n\n  \n{"text_a": "y", "label": "b"}\n')
    assert len(load_rows(str(path))[0]) == 2


def test_limit(tmp_path):
    for fmt in ("jsonl", "json", "csv", "parquet"):
        path = _write(tmp_path / f"d.{fmt}", ROWS * 5, fmt)
        assert len(load_rows(str(path), limit=3)[0]) == 3
    with pytest.raises(DatasetError, match="limit must be a positive"):
        load_rows(str(path), limit=0)


def test_directory_splits(tmp_path):
    _write(tmp_path / "train.jsonl", ROWS, "jsonl")
    _write(tmp_path / "dev.csv", ROWS[:1], "csv")
    assert len(load_rows(str(tmp_path))[0]) == 2                 # default split: train
    assert len(load_rows(str(tmp_path), split="dev")[0]) == 1
    with pytest.raises(DatasetError, match="no split 'test'.*available splits: dev, train"):
        load_rows(str(tmp_path), split="test")


def test_builtin_sources():
    rows, columns = load_rows("builtin:movie-reviews", split="dev")
    assert columns == ["text_a", "label"] and len(rows) == 64
    with pytest.raises(DatasetError, match="no built-in dataset 'nope'; available: builtin:movie-reviews"):
        load_rows("builtin:nope")


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("name,content,message", [
    ("d.jsonl", b'{"text_a": "x", "label": "a"}\n{"text_a": "y", "label": \n', "invalid JSON on line 2 of d.jsonl"),
    ("d.jsonl", b'{"text_a": "x"}\n["text_a", "y"]\n', "line 2 of d.jsonl is a JSON list, expected an object"),
    ("d.json", b'[{"text_a": "x"},\n {"text_a": ]', "invalid JSON in d.json at line 2"),
    ("d.json", b'"just a string"', "must hold a list of objects"),
    ("d.json", b'{"a": [], "b": []}', "exactly one list"),
    ("d.csv", b"text_a,label\nfine,positive\nbroken,row,extra\n", "cannot parse d.csv.*line 3"),
    ("d.csv", b"text_a,text_a\nx,y\n", "duplicate column names"),
    ("d.parquet", b"PAR1 but not really", "not a readable Parquet file"),
    ("d.jsonl", '{"text_a": "café"}\n'.encode("latin-1"), "not UTF-8"),
    ("d.xlsx", b"x", "unsupported file type .xlsx"),
])
def test_broken_files_name_the_problem(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_rows(str(tmp_path / name))


@pytest.mark.parametrize("name,content", [("e.jsonl", ""), ("e.jsonl", "\n\n"), ("e.csv", ""),
                                          ("e.json", "[]"), ("e.csv", "text_a,label\n")])
def test_empty_files(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=f"{name} is empty"):
        load_rows(str(tmp_path / name))


def test_empty_parquet(tmp_path):
    pq.write_table(pa.table({"text_a": pa.array([], pa.string())}), tmp_path / "e.parquet")
    with pytest.raises(DatasetError, match="is empty"):
        load_rows(str(tmp_path / "e.parquet"))


@pytest.mark.parametrize("source", ["./missing.jsonl", "missing.csv", "/no/such/file.parquet"])
def test_missing_file(source):
    with pytest.raises(DatasetError, match="file not found"):
        load_rows(source)


def test_empty_source():
    with pytest.raises(DatasetError, match="no data source given"):
        load_rows("  ")


def test_hub_dataset_offline(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match="not cached and cannot be fetched offline") as err:
        load_rows("prompt-studio-tests/never-downloaded-dataset")
    assert err.value.field == "data"


def test_unreachable_hub_fails_at_once_with_its_reason(monkeypatch):
    """Offline mode not asked for, and no route to the hub: refused before the hub client (and its
    ~23 s of retries) is called at all."""
    import datasets
    import huggingface_hub.constants

    from backend import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")   # discard port: refused
    called = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: called.append(a))
    assert hub.offline() is False and hub.reachable() is False
    with pytest.raises(DatasetError, match="the Hugging Face hub cannot be reached") as err:
        load_rows("prompt-studio-tests/never-downloaded-dataset")
    assert called == [] and "HF_HUB_OFFLINE=1" in err.value.message


def test_hub_dataset_rows_decode_class_labels(monkeypatch):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"sentence": ["fine", "awful", "great"], "label": [1, 0, 1]},
        features=datasets.Features({"sentence": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["negative", "positive"])}))
    calls = []

    def fake_load(repo, config=None, split=None):
        calls.append((repo, config, split))
        return ds

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows, columns = load_rows("hf:someone/sst:default", split="validation", limit=2)
    assert calls == [("someone/sst", "default", "validation")]
    assert columns == ["sentence", "label"]
    assert rows == [{"sentence": "fine", "label": "positive"}, {"sentence": "awful", "label": "negative"}]
    assert load_examples("someone/sst").examples[0].text_a == "fine"  # bare id; "sentence" guessed as text_a


# ------------------------------------------------------------------------------------------ Parquet caps

def _repeated_parquet(path, rows, width=1000):
    """A small file of ``rows`` rows that all hold one ``width``-character value (dictionary encoded):
    kilobytes on disk, ``rows * width`` bytes once read."""
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * width]))
    labels = pa.DictionaryArray.from_arrays(pa.array([0, 1] * (rows // 2), pa.int32()), pa.array(["pos", "neg"]))
    pq.write_table(pa.table({"text_a": column, "label": labels}), path, compression="zstd")
    return path


def test_a_parquet_file_that_decodes_far_beyond_its_size_is_refused(tmp_path):
    path = _repeated_parquet(tmp_path / "bomb.parquet", 100_000)        # 100 MB of values in a few KB
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match=r"bomb.parquet is a 0.\d\d MiB file whose values decode to"):
        load_rows(str(path))
    rows, columns = load_rows(str(path), limit=5)        # the first rows of it are fine
    assert len(rows) == 5 and columns == ["text_a", "label"] and rows[0]["text_a"] == "x" * 1000


def test_a_parquet_file_over_the_row_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from backend.data import readers

    path = _repeated_parquet(tmp_path / "many.parquet", readers.MAX_ROWS + 2, width=1)
    monkeypatch.setattr(readers, "_decoded_bytes", lambda column: pytest.fail("read before the row check"))
    with pytest.raises(DatasetError, match=r"many.parquet has 1,000,002 rows, over the limit of 1,000,000"):
        load_rows(str(path))


def test_parquet_uncompressed_size_is_checked_from_the_footer(tmp_path, monkeypatch):
    from backend.data import readers

    path = tmp_path / "plain.parquet"
    table = pa.table({"text_a": ["y" * 1000] * 3000, "label": ["a", "b"] * 1500})
    pq.write_table(table, path, compression="zstd", use_dictionary=False)   # 3 MB uncompressed, KBs on disk
    monkeypatch.setattr(readers, "RATIO_FLOOR", 1 << 20)
    monkeypatch.setattr(readers, "_decoded_bytes", lambda column: pytest.fail("read before the footer check"))
    with pytest.raises(DatasetError, match="decode to 3 MiB or more, over the 1 MiB"):
        load_rows(str(path))


def test_a_parquet_limit_stops_reading_batches(tmp_path, monkeypatch):
    from backend.data import readers

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text_a": [f"row {i}" for i in range(5000)], "label": ["a", "b"] * 2500}), path,
                   row_group_size=1000)
    seen = []
    real = readers._decoded_bytes
    monkeypatch.setattr(readers, "_decoded_bytes", lambda column: seen.append(len(column)) or real(column))
    rows, _ = load_rows(str(path), limit=1500)
    assert [r["text_a"] for r in rows[-2:]] == ["row 1498", "row 1499"] and len(rows) == 1500
    assert sum(seen) == 2 * 1500          # two columns, never a row past the limit
    assert len(load_rows(str(path))[0]) == 5000


# ------------------------------------------------------------------------------------------ Python's limits

@pytest.mark.parametrize("name, raw, expected", [
    ("deep.jsonl", b'{"text_a": "x", "label": "a"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     "line 2 of deep.jsonl cannot be read: it is nested too deeply"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json cannot be read: it is nested too deeply"),
    ("big.jsonl", b'{"text_a": "x", "label": ' + b"9" * 5000 + b"}\n",
     "line 1 of big.jsonl cannot be read: it holds a number with thousands of digits"),
    ("big.json", b'[{"text_a": "x", "label": ' + b"9" * 5000 + b"}]",
     "big.json cannot be read: it holds a number with thousands of digits"),
])
def test_json_past_pythons_limits_is_a_dataset_error(tmp_path, name, raw, expected):
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(DatasetError) as err:
        load_examples(str(tmp_path / name))
    assert err.value.message == expected


def test_a_comma_space_csv_reads_clean_while_an_ordinary_csv_keeps_every_space(tmp_path):
    """``text, label`` files gave classes ' negative' / ' positive', which no label words can name; the
    ", " dialect is read as such, and only it: any other CSV keeps its cells (and so its fingerprint)."""
    import pandas as pd

    from backend.prompts.verbalizer import parse_verbalizer

    spaced = tmp_path / "spaced.csv"
    spaced.write_text('text, label\na great movie, positive\n"a bad, bad movie", negative\n')
    rows, columns = load_rows(str(spaced))
    assert columns == ["text", "label"]
    assert rows == [{"text": "a great movie", "label": "positive"}, {"text": "a bad, bad movie", "label": "negative"}]
    data = load_examples(str(spaced))
    assert data.label_names == ["negative", "positive"]
    parse_verbalizer({"positive": ["good"], "negative": ["bad"]}, data.label_names)   # nameable classes

    for header in ("text,label,id", "text,label, id"):   # no dialect: not every separator has a space after it
        plain = tmp_path / "plain.csv"
        plain.write_text(f"{header}\n a cell that starts with a space,positive,1\nplain, negative, 2\n")
        rows, _ = load_rows(str(plain))
        assert rows[0]["text"] == " a cell that starts with a space" and rows[1]["label"] == " negative"
        as_before = pd.read_csv(plain, sep=",", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        assert rows == as_before.to_dict(orient="records")   # byte for byte what the reader always gave
