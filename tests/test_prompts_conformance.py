"""Golden test: our parse / wrap / masked-LM encoding equals the real OpenPrompt 1.0.1 output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.errors import StudioError
from backend.prompts.encode import encode
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.wrap import wrap

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "openprompt_wrap.jsonl"


def _rows():
    if not FIXTURE.exists():
        return []
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


ROWS = _rows()
OK_ROWS = [r for r in ROWS if not r.get("error")]
ERR_ROWS = [r for r in ROWS if r.get("error")]


def _id(r):
    return f"t{r['template_index']}-e{r['example_index']}"


@pytest.fixture(scope="module")
def bert():
    from tests.tiny import bert_tokenizer

    return bert_tokenizer()


def test_fixture_present_or_skip():
    if not FIXTURE.exists():
        pytest.skip("../shared absent: conformance fixtures not available")
    assert len(OK_ROWS) >= 30


@pytest.mark.parametrize("row", OK_ROWS, ids=_id)
def test_parsed_and_wrapped_match_openprompt(row, bert):
    tpl = compile_template(row["template"], bert)
    assert tpl.to_openprompt() == row["parsed"]
    wrapped = wrap(tpl, Example.from_dict(row["example"]))
    assert wrapped.to_openprompt() == row["wrapped"]


@pytest.mark.parametrize("row", OK_ROWS, ids=_id)
def test_mlm_tokenization_matches_openprompt(row, bert):
    tpl = compile_template(row["template"], bert)
    wrapped = wrap(tpl, Example.from_dict(row["example"]))
    for key, want in row["mlm_tokenized"].items():
        method, max_len = key.split("/")
        if "error" in want:
            with pytest.raises(StudioError):
                encode(wrapped, bert, profile="masked", max_length=int(max_len), truncate=method)
            continue
        enc = encode(wrapped, bert, profile="masked", max_length=int(max_len), truncate=method)
        assert list(enc.input_ids) == want["input_ids"], key
        assert list(enc.loss_ids) == want["loss_ids"], key
        assert list(enc.soft_token_ids) == want["soft_token_ids"], key
        assert bert.convert_ids_to_tokens(list(enc.input_ids)) == want["tokens"], key


@pytest.mark.parametrize("row", ERR_ROWS, ids=_id)
def test_where_openprompt_crashed_we_work(row, bert):
    tpl = compile_template(row["template"], bert)
    wrapped = wrap(tpl, Example.from_dict(row["example"]))
    enc = encode(wrapped, bert, profile="masked", max_length=64)
    assert enc.mask_positions
    if "duplicate" in row["template"] and "same" in row["template"]:
        soft = [p.soft_token_ids for p in wrapped.pieces if p.soft_token_ids]
        assert len(soft) == 3 and len(set(soft)) == 1
