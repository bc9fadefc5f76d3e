"""Column mapping, label handling and the value checks that turn rows into Examples."""
from __future__ import annotations

import json

import pytest

from backend.data import MAX_FIELD_CHARS, ColumnMap, class_index, load_examples
from backend.errors import DatasetError


def _jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


PAIRS = [{"premise": "a cat sleeps", "hypothesis": "an animal rests", "gold": "yes", "src": "x"},
         {"premise": "a dog runs", "hypothesis": "the dog sits", "gold": "no", "src": "y"}]


def test_explicit_mapping_with_meta(tmp_path):
    cols = ColumnMap(text_a="premise", text_b="hypothesis", label="gold", meta={"origin": "src"})
    data = load_examples(_jsonl(tmp_path, PAIRS), columns=cols)
    ex = data.examples[1]
    assert (ex.guid, ex.text_a, ex.text_b, ex.label, ex.meta) == (1, "a dog runs", "the dog sits", "no",
                                                                   {"origin": "y"})
    assert data.columns == ["premise", "hypothesis", "gold", "src"]


def test_mapping_as_dict_equals_dataclass(tmp_path):
    src = _jsonl(tmp_path, PAIRS)
    as_dict = load_examples(src, columns={"text_a": "premise", "text_b": "hypothesis", "label": "gold"})
    as_cls = load_examples(src, columns=ColumnMap("premise", "hypothesis", "gold"))
    assert as_dict.examples == as_cls.examples and as_dict.fingerprint == as_cls.fingerprint


def test_no_mapping_guesses_common_names(tmp_path):
    rows = [{"premise": "p", "hypothesis": "h", "label": "entailment"}]
    ex = load_examples(_jsonl(tmp_path, rows)).examples[0]
    assert (ex.text_a, ex.text_b) == ("p", "h")


def test_unlabelled_data(tmp_path):
    data = load_examples(_jsonl(tmp_path, [{"text_a": "x"}]), columns={"label": None})
    assert data.examples[0].label is None and data.label_names == []


def test_wrong_column_lists_available(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_examples(_jsonl(tmp_path, PAIRS), columns={"text_a": "sentence", "label": "gold"})
    assert "'sentence'" in err.value.message
    assert "available columns: premise, hypothesis, gold, src" in err.value.message
    assert err.value.column == "sentence"


def test_label_column_missing(tmp_path):
    with pytest.raises(DatasetError, match="label is mapped to column 'label'.*set label to none"):
        load_examples(_jsonl(tmp_path, [{"text_a": "x", "source": "web"}]))
    # one column has nothing to classify by: it is read as unlabelled text (backend.data.guess)
    assert [e.label for e in load_examples(_jsonl(tmp_path, [{"text_a": "x"}])).examples] == [None]


@pytest.mark.parametrize("bad,message", [
    ({"txt": "x"}, "unknown keys in the column mapping"),
    ({"text_a": 3}, "columns.text_a must be a column name"),
    ({"meta": ["a"]}, "columns.meta must map names"),
    ("text_a", "column mapping must be an object"),
])
def test_malformed_mapping(tmp_path, bad, message):
    with pytest.raises(DatasetError, match=message):
        load_examples(_jsonl(tmp_path, [{"text_a": "x", "label": "a"}]), columns=bad)


@pytest.mark.parametrize("value,kind", [(5, "int"), (["a"], "list"), ({"a": 1}, "dict"), (1.5, "float")])
def test_non_string_text(tmp_path, value, kind):
    rows = [{"text_a": "ok", "label": "a"}, {"text_a": value, "label": "b"}]
    with pytest.raises(DatasetError, match=f"must hold strings; row 1 has {kind}") as err:
        load_examples(_jsonl(tmp_path, rows))
    assert (err.value.row, err.value.column) == (1, "text_a")


def test_null_text(tmp_path):
    with pytest.raises(DatasetError, match="row 0 has no value in text column 'text_a'"):
        load_examples(_jsonl(tmp_path, [{"text_a": None, "label": "a"}]))


def test_null_text_b_is_empty(tmp_path):
    rows = [{"text_a": "x", "text_b": None, "label": "a"}]
    assert load_examples(_jsonl(tmp_path, rows)).examples[0].text_b == ""


def test_huge_text_is_refused(tmp_path):
    rows = [{"text_a": "ok", "label": "a"}, {"text_a": "x" * (MAX_FIELD_CHARS + 1), "label": "a"}]
    with pytest.raises(DatasetError, match="row 1, column 'text_a'.*over the 100,000 limit") as err:
        load_examples(_jsonl(tmp_path, rows))
    assert err.value.row == 1
    rows[1]["text_a"] = "x" * MAX_FIELD_CHARS  # exactly at the limit is fine
    assert len(load_examples(_jsonl(tmp_path, rows)).examples[1].text_a) == MAX_FIELD_CHARS


@pytest.mark.parametrize("label", [None, "", [1], 0.5])
def test_bad_labels(tmp_path, label):
    rows = [{"text_a": "x", "label": "a"}, {"text_a": "y", "label": label}]
    with pytest.raises(DatasetError, match="row 1") as err:
        load_examples(_jsonl(tmp_path, rows))
    assert err.value.column == "label"


def test_label_names_sorted_as_strings_ints_numerically(tmp_path):
    rows = [{"text_a": "x", "label": v} for v in (10, 2, 2, 0)]
    data = load_examples(_jsonl(tmp_path, rows))
    assert data.label_names == ["0", "2", "10"]
    assert [e.label for e in data.examples] == [10, 2, 2, 0]  # original values kept


def test_integer_labels_map_by_index_to_given_names(tmp_path):
    rows = [{"text_a": "x", "label": 1}, {"text_a": "y", "label": 0}]
    data = load_examples(_jsonl(tmp_path, rows), label_names=["negative", "positive"])
    assert data.label_names == ["negative", "positive"]
    assert [class_index(e.label, data.label_names) for e in data.examples] == [1, 0]


def test_csv_integer_labels_become_integers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text_a,label\ngreat,1\nawful,0\n")
    data = load_examples(str(path), label_names=["negative", "positive"])
    assert [e.label for e in data.examples] == [1, 0]
    path.write_text("text_a,label\ngreat,1\nawful,neg\n")  # mixed: stay strings
    assert [e.label for e in load_examples(str(path)).examples] == ["1", "neg"]


def test_given_label_names_must_cover_labels(tmp_path):
    rows = [{"text_a": "x", "label": "positive"}, {"text_a": "y", "label": "meh"}]
    with pytest.raises(DatasetError, match="row 1 has label 'meh', which is not one of label_names"):
        load_examples(_jsonl(tmp_path, rows), label_names=["negative", "positive"])
    with pytest.raises(DatasetError, match="nor an index"):
        load_examples(_jsonl(tmp_path, [{"text_a": "x", "label": 7}]), label_names=["a", "b"])


@pytest.mark.parametrize("names", [[], "ab", ["a", "a"]])
def test_malformed_label_names(tmp_path, names):
    with pytest.raises(DatasetError, match="label_names"):
        load_examples(_jsonl(tmp_path, [{"text_a": "x", "label": "a"}]), label_names=names)
