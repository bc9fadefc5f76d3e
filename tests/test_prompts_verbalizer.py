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
    txt = parse_verbalizer(str(tmp_path / "w.txt"), ["neg", "pos"])
    (tmp_path / "w.json").write_text(json.dumps({"pos": ["good", "great"], "neg": "bad"}))
    js = parse_verbalizer(str(tmp_path / "w.json"), ["neg", "pos"])
    assert d.words == lst.words == txt.words == js.words


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
        assert parse_verbalizer(str(tmp_path / name), ["neg", "pos"]).words == (("bad",), ("good", "great")), name


@pytest.mark.parametrize("name, raw, expected", [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json cannot be read: it is nested too deeply"),
    ("big.json", b'{"neg": ' + b"9" * 5000 + b"}", "big.json cannot be read: it holds a number with thousands"),
    ("long.txt", b"bad\n" + b"g" * 200_000 + b"\n", "line 2 of long.txt cannot be read: field larger than"),
])
def test_label_word_files_past_pythons_limits_are_verbalizer_errors(tmp_path, name, raw, expected):
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(VerbalizerError) as err:
        parse_verbalizer(str(tmp_path / name))
    assert err.value.message.startswith(expected), err.value.message
