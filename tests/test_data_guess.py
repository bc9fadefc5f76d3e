"""Column mapping guessed from names and content, said in one line; files named, never by server path."""
from __future__ import annotations


import pytest

from backend.data import load_examples
from backend.data.guess import guess_mapping
from backend.errors import DatasetError


def _rows(n=40):
    return [{"id": str(i), "review": f"the film number {i} was {'a delight to watch' if i % 2 else 'a bore'}",
             "sentiment": "positive" if i % 2 else "negative", "stars": str(1 + i % 5)} for i in range(n)]


def test_own_csv_columns_are_guessed_from_content():
    m, line = guess_mapping(["id", "review", "sentiment", "stars"], _rows())
    assert (m.text_a, m.text_b, m.label) == ("review", None, "sentiment")
    assert "text_a ← 'review'" in line and "label ← 'sentiment'" in line and "positive" in line


@pytest.mark.parametrize("as_text", [True, False])
def test_a_long_id_or_number_column_is_not_a_second_text(as_text):
    """Many distinct values made a numeric id look like free text (text_b <- 'id' on a 60-row CSV)."""
    rows = [dict(r, id=r["id"] if as_text else int(r["id"]), score=f"{i * 0.37:.2f}")
            for i, r in enumerate(_rows(200))]
    m, line = guess_mapping(["id", "review", "sentiment", "score"], rows)
    assert (m.text_a, m.text_b, m.label) == ("review", None, "sentiment"), line


def test_label_found_by_content_when_no_name_says_so():
    rows = [{"body": f"a long enough piece of text number {i}", "kind": ["spam", "ham", "eggs"][i % 3]}
            for i in range(30)]
    m, line = guess_mapping(["body", "kind"], rows)
    assert (m.text_a, m.label) == ("body", "kind") and "3 distinct values" in line


def test_two_text_columns_become_text_a_and_text_b():
    rows = [{"first": f"a premise sentence that is long, number {i}", "second": f"a shorter claim {i}",
             "y": str(i % 2)} for i in range(30)]
    m, _ = guess_mapping(["first", "second", "y"], rows)
    assert (m.text_a, m.text_b, m.label) == ("first", "second", "y")


def test_usual_names_still_win():
    rows = [{"sentence1": "a b c d e f g h", "sentence2": "x y z", "label": "entailment"}] * 3
    m, _ = guess_mapping(["sentence1", "sentence2", "label"], rows)
    assert (m.text_a, m.text_b, m.label) == ("sentence1", "sentence2", "label")


def test_loading_a_csv_uses_the_guess_and_a_missing_column_names_the_file_not_its_path(tmp_path):
    path = tmp_path / "my reviews.csv"
    path.write_text("review,sentiment\n" + "\n".join(f"\"film {i} was fine, really fine\",{['neg', 'pos'][i % 2]}"
                                                   for i in range(20)))
    data = load_examples(str(path))
    assert data.mapping.label == "sentiment" and data.label_names == ["neg", "pos"] and data.guessed
    with pytest.raises(DatasetError) as err:
        load_examples(str(path), columns={"text_a": "review", "label": "label"})
    assert "my reviews.csv does not have" in err.value.message and str(tmp_path) not in err.value.message


def test_a_one_column_file_is_unlabelled_text_not_a_label(tmp_path):
    """guess_mapping(["text"], rows) gave text_a='text_a' (no such column) and label='text'."""
    m, line = guess_mapping(["text"], [{"text": "a great movie"}, {"text": "dull"}])
    assert (m.text_a, m.text_b, m.label) == ("text", None, None) and "no label column" in line
    path = tmp_path / "onecol.csv"
    path.write_text("text\na great movie\ndull\n")
    data = load_examples(str(path))
    assert [e.text_a for e in data.examples] == ["a great movie", "dull"] and data.label_names == []


def test_a_column_named_like_text_is_never_the_label():
    """Two short reviews look like two classes; 'review' was taken as the label and 'stars' as the text."""
    m, _ = guess_mapping(["review", "stars"], [{"review": "ok", "stars": "five stars"},
                                               {"review": "meh", "stars": "one star"}])
    assert (m.text_a, m.label) == ("review", "stars")
    m, line = guess_mapping(["review", "stars"], [{"review": "ok", "stars": "5"}, {"review": "meh", "stars": "5"}])
    assert m.text_a == "review" and m.label != "review" and "no column looks like a label" in line


def test_names_with_spaces_around_them_are_still_known():
    rows = [{"Text ": f"a long enough review of film number {i}", " label": "abcd"[i]} for i in range(4)]
    m, _ = guess_mapping(["Text ", " label"], rows)
    assert (m.text_a, m.label) == ("Text ", " label")


@pytest.mark.parametrize("content, shown", [
    ('{"id": 1, "score": 2}\n{"id": 2, "score": 3}\n', "'id', 'score'"),
    ("{}\n{}\n", "none"),
])
def test_no_text_column_is_said_so_with_the_columns_not_mapped_to_a_made_up_one(tmp_path, content, shown):
    path = tmp_path / "numbers.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        load_examples(str(path))
    assert "could not guess the text column" in err.value.message and f"the columns are: {shown}" in err.value.message
    assert "is mapped to column" not in err.value.message
