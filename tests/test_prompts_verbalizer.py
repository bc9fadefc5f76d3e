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
