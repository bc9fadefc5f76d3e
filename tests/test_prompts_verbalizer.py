"""Verbalizer forms, errors, leading space and coverage report."""
from __future__ import annotations

import json

import pytest

from backend.errors import VerbalizerError
from backend.prompts.verbalizer import compile_verbalizer, coverage_report, parse_verbalizer


def test_forms_agree(tmp_path):
    d = parse_verbalizer({"neg": ["bad"], "pos": ["good", "great"]}, ["neg", "pos"])
    lst = parse_verbalizer([["bad"], ["good", "great"]], ["neg", "pos"])
    (tmp_path / "w.txt").write_text("bad\ngood,great\n")
    txt = parse_verbalizer(str(tmp_path / "w.txt"), ["neg", "pos"], files=True)
    (tmp_path / "w.json").write_text(json.dumps({"pos": ["good", "great"], "neg": "bad"}))
    js = parse_verbalizer(str(tmp_path / "w.json"), ["neg", "pos"], files=True)
    assert d.words == lst.words == txt.words == js.words


def test_label_words_name_a_file_only_where_a_command_line_config_is_read(tmp_path):
    """The studio's label-word editor, comparisons and the sweep designer parse typed text with this
    function: a file name there used to be read, listing a server file's lines as label words."""
    secret = tmp_path / "secret.csv"
    secret.write_text("hunter2\nroot\n")
    for spec in (str(secret), {"label_words": str(secret)}, {"label_words": str(secret), "multi_token": "mean"}):
        with pytest.raises(VerbalizerError) as err:
            parse_verbalizer(spec)
        assert "hunter2" not in str(err.value) and "file" in err.value.message
    with pytest.raises(VerbalizerError, match="not a file name"):
        parse_verbalizer({"label_words": str(secret)}, files=True)     # the saved form is always inline
    with pytest.raises(VerbalizerError, match="label-word file") as err:
        parse_verbalizer("a" * 300 + ".txt", files=True)                # too long a name: a message, no OSError
    assert parse_verbalizer(str(secret), files=True).words == (("hunter2",), ("root",))


@pytest.mark.parametrize("spec, fragment", [
    ({"neg": [], "pos": ["good"]}, "has no label words"),
    ({"neg": ["bad"]}, "have no label words"),
    ({"neg": ["bad"], "pos": ["good"], "meh": ["ok"]}, "unknown class"),
    ({"neg": [""], "pos": ["good"]}, "empty label word"),
    ([["bad"]], "1 lists of label words for 2 classes"),
])
def test_errors(spec, fragment):
    with pytest.raises(VerbalizerError, match=fragment):
        parse_verbalizer(spec, ["neg", "pos"])


def test_leading_space_and_opt_out(smol_tok):
    v = parse_verbalizer({"a": ["great"], "b": ["<!>great"]}, ["a", "b"])
    c = compile_verbalizer(v, smol_tok, prefix=" ")
    assert smol_tok.convert_ids_to_tokens(list(c.token_ids[0][0])) == ["Ġgreat"]
    assert smol_tok.convert_ids_to_tokens(list(c.token_ids[1][0])) == ["great"]


def test_coverage_reports_subtokens_and_collisions(bert_tok):
    v = parse_verbalizer({"a": ["good", "goodness"], "b": ["good", "xylophonist"]}, ["a", "b"])
    rows = {(r["class"], r["word"]): r for r in coverage_report(v, bert_tok)}
    assert rows[("a", "good")]["collides_with"] == ["b"]
    assert rows[("b", "xylophonist")]["n_subtokens"] > 1


BOM = b"\xef\xbb\xbf"


def test_a_bom_is_not_part_of_the_first_label_word(tmp_path):
    """Notepad saves UTF-8 with a BOM; read as utf-8 it became the start of the first word ('\\ufeffbad')."""
    (tmp_path / "w.txt").write_bytes(BOM + b"bad\ngood,great\n")
    (tmp_path / "w.csv").write_bytes(BOM + b"bad\ngood,great\n")
    (tmp_path / "w.json").write_bytes(BOM + json.dumps({"neg": ["bad"], "pos": ["good", "great"]}).encode())
    for name in ("w.txt", "w.csv", "w.json"):
        assert parse_verbalizer(str(tmp_path / name), ["neg", "pos"], files=True).words == (("bad",), ("good", "great")), name


@pytest.mark.parametrize("name, raw, expected", [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json cannot be read: it is nested too deeply"),
    ("big.json", b'{"neg": ' + b"9" * 5000 + b"}", "big.json cannot be read: it holds a number with thousands"),
    ("long.txt", b"bad\n" + b"g" * 200_000 + b"\n", "line 2 of long.txt cannot be read: field larger than"),
])
def test_label_word_files_past_pythons_limits_are_verbalizer_errors(tmp_path, name, raw, expected):
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(VerbalizerError) as err:
        parse_verbalizer(str(tmp_path / name), files=True)
    assert err.value.message.startswith(expected), err.value.message


def test_a_class_that_differs_only_by_spaces_is_named_as_such():
    with pytest.raises(VerbalizerError, match=r"' positive' differs from 'positive' only by spaces around it"):
        parse_verbalizer({"negative": ["bad"], "positive": ["good"]}, [" negative", " positive"])
