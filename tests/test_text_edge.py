"""Text is checked where it enters: a lone surrogate or a number too long to print becomes a typed error
naming where it is (template span, verbalizer word span, data row and column, CLI argument), never a
UnicodeEncodeError or ValueError from deep inside; and a command checks where it writes before working."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from backend.data.mapping import ColumnMap, rows_to_examples
from backend.errors import DatasetError, TemplateError, VerbalizerError
from backend.prompts.template import parse_template
from backend.prompts.verbalizer import parse_verbalizer
from tests.cli_helpers import ROOT, backend_cli

HEX = "0x" + "f" * 4000          # about 4,800 decimal digits: repr() of it raises ValueError


def test_lone_surrogate_in_a_template_is_a_template_error_with_its_span():
    with pytest.raises(TemplateError) as err:
        parse_template("ab\ud800 {text_a} {mask}")
    assert err.value.span == (2, 3) and "lone surrogate" in err.value.message
    with pytest.raises(TemplateError) as err:
        parse_template('{text_a} {"soft": "It \udcff was"} {mask}')
    assert err.value.span == (22, 23)


@pytest.mark.parametrize("template", [
    '{"soft": None, "duplicate": %s} {mask}' % HEX,
    '{"soft_id": %s} {mask}' % HEX,
    '{"placeholder": %s} {mask}' % HEX,
    '{"soft": None, "soft_id": %s} {mask}' % ("9" * 5000),
])
def test_numbers_too_long_to_print_are_template_errors(template):
    with pytest.raises(TemplateError) as err:
        parse_template(template)
    assert err.value.span is not None and len(str(err.value)) < 300


def test_lone_surrogate_in_a_label_word_is_a_verbalizer_error_with_its_span():
    with pytest.raises(VerbalizerError) as err:
        parse_verbalizer({"neg": ["bad"], "pos": ["go\ud800od"]})
    assert err.value.span == (2, 3) and "'pos'" in err.value.message


def test_studio_save_of_a_template_or_verbalizer_with_a_surrogate_is_refused(tmp_path):
    from backend.services import versions
    from backend.services.testing import make_context

    ctx = make_context(tmp_path)
    res = versions.save(ctx, "template", "t", "{text_a} It was \ud800 {mask}.", "")
    assert res["error"]["field"] == "template" and res["error"]["span"] == [16, 17]
    res = versions.save(ctx, "verbalizer", "v", "neg: bad\npos: go\udcffod", "")
    assert res["error"]["field"] == "verbalizer" and "lone surrogate" in res["error"]["message"]


def test_lone_surrogate_in_a_data_row_names_the_row_and_column():
    rows = [{"text": "fine", "label": "pos"}, {"text": "a \ud83d film", "label": "neg"}]
    with pytest.raises(DatasetError) as err:
        rows_to_examples(rows, ColumnMap(text_a="text"), typed=True)
    assert (err.value.row, err.value.column) == (1, "text") and "lone surrogate" in err.value.message
    rows = [{"text": "fine", "label": "pos\udc00", "title": "x"}]
    with pytest.raises(DatasetError, match="column 'label'"):
        rows_to_examples(rows, ColumnMap(text_a="text"), typed=True)
    rows = [{"text": "fine", "label": "pos", "title": "\udc00"}]
    with pytest.raises(DatasetError, match="column 'title'"):
        rows_to_examples(rows, ColumnMap(text_a="text", meta={"title": "title"}), typed=True)


def test_a_jsonl_file_with_an_escaped_surrogate_is_a_dataset_error(tmp_path):
    from backend.data import load_examples

    path = tmp_path / "d.jsonl"
    path.write_text('{"text_a": "ok", "label": "pos"}\n{"text_a": "cut \\ud83d emoji", "label": "neg"}\n')
    with pytest.raises(DatasetError) as err:
        load_examples(str(path), columns=None, label_names=None)
    assert err.value.row == 1 and err.value.column == "text_a"


def test_a_nul_in_a_data_cell_names_the_row_and_column(tmp_path):
    """A bundle refuses NUL on import, so a run must never take one in (its rows reach predictions)."""
    from backend.data import load_examples

    rows = [{"text": "fine", "label": "pos"}, {"text": "hel\0lo", "label": "neg"}]
    with pytest.raises(DatasetError) as err:
        rows_to_examples(rows, ColumnMap(text_a="text"), typed=True)
    assert (err.value.row, err.value.column) == (1, "text") and "NUL" in err.value.message
    with pytest.raises(DatasetError, match="row 0, column 'label': character 1 is a NUL"):
        rows_to_examples([{"text": "x", "label": "p\0"}], ColumnMap(text_a="text"), typed=True)
    with pytest.raises(DatasetError, match="column 'title'"):
        rows_to_examples([{"text": "x", "label": "p", "title": "\0"}],
                         ColumnMap(text_a="text", meta={"title": "title"}), typed=True)
    (tmp_path / "d.csv").write_bytes(b"text_a,label\nok,pos\nhel\x00lo,neg\n")
    with pytest.raises(DatasetError, match="row 1, column 'text_a'"):
        load_examples(str(tmp_path / "d.csv"))


def test_a_nul_anywhere_in_a_config_is_refused_by_its_path():
    """A run named ``demo\\0run`` (or with a NUL label word) used to export a bundle its import refused."""
    from backend.config import DEMO_CONFIG, RunConfig
    from backend.errors import ConfigError

    for change, path in (({"name": "demo\0run"}, "name"), ({"tags": ["a\0b"]}, r"tags\[0\]"),
                         ({"verbalizer": {"negative": ["Neg\0"], "positive": ["Pos"]}}, r"verbalizer.negative\[0\]"),
                         ({"data": {"eval": "builtin:movie-reviews", "columns": {"text_a": "t\0"}}},
                          "data.columns.text_a"),
                         ({"model": "x\0y"}, "model")):
        with pytest.raises(ConfigError) as err:
            RunConfig.from_dict(dict(DEMO_CONFIG, **change))
        assert re.match(f"{path}: character \\d+ is a NUL", err.value.message), err.value.message
    with pytest.raises(VerbalizerError, match="label word 1 for 'neg': character 1 is a NUL"):
        parse_verbalizer({"neg": ["b\0ad"], "pos": ["good"]})


# ------------------------------------------------------------------------------------------- the CLI

def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return backend_cli(*args, cwd=cwd, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    return proc.stderr


def test_preview_example_with_a_surrogate_exits_2_with_one_line():
    err = _one_line_error(_cli("preview", "--template", "{text_a} {mask}", "--model", "no-such-model",
                               "--example", '{"text_a": "a \\ud800 film"}'))
    assert "--example.text_a: character 2 is a lone surrogate" in err
    err = _one_line_error(_cli("preview", "--template", "{text_a} {mask}", "--model", "no-such-model",
                               "--example", "[" * 100000))
    assert "--example is not a JSON object" in err


def _config(tmp_path: Path, **changes: object) -> Path:
    cfg = {"template": "{text_a} It was {mask}.", "verbalizer": {"neg": ["bad"], "pos": ["good"]},
           "data": {"eval": str(tmp_path / "dev.jsonl")}, "model": str(tmp_path / "no-model")}
    cfg.update(changes)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg))
    return path


def test_eval_checks_the_predictions_path_before_the_run_is_recorded(tmp_path):
    db = tmp_path / "runs.db"
    err = _one_line_error(_cli("eval", str(_config(tmp_path)), "--db", f"sqlite:///{db}",
                               "--predictions", str(tmp_path / "nonexistent" / "p.jsonl")))
    assert "--predictions" in err and "does not exist" in err
    assert not db.exists()                 # nothing was recorded (nor loaded)
    err = _one_line_error(_cli("eval", str(_config(tmp_path)), "--no-db", "--predictions", str(tmp_path)))
    assert "is a folder" in err


def test_eval_of_a_config_with_a_surrogate_or_a_huge_number_exits_2(tmp_path):
    err = _one_line_error(_cli("eval", str(_config(tmp_path, template="{text_a} \ud800 {mask}")), "--no-db"))
    assert "template: character 9 is a lone surrogate" in err
    path = tmp_path / "big.json"
    path.write_text('{"max_length": ' + "9" * 5000 + "}")
    assert "thousands of digits" in _one_line_error(_cli("eval", str(path), "--no-db"))


def test_cli_numbers_are_checked_by_argparse(tmp_path):
    proc = _cli("eval", str(_config(tmp_path)), "--no-db", "--limit", "-3")
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_text_that_is_not_valid_unicode_exits_2_before_loading():
    # an argv byte that is not UTF-8 arrives as a lone surrogate (surrogateescape)
    err = _one_line_error(_cli("predict", "--run", "1", "--text", "a \udcff film", "--db", "sqlite://"))
    assert "--text[0]: character 2 is a lone surrogate" in err


def test_a_nul_or_surrogate_nested_in_a_meta_cell_is_refused():
    """A JSONL meta cell may be a list or an object; the strings inside it reach the template as text."""
    mapping = ColumnMap(text_a="text", meta={"tags": "tags"})
    for bad in (["ok", "b\0d"], {"k": ["x", {"deep": "\0"}]}, {"k\0": 1}, [["\udc00"]]):
        with pytest.raises(DatasetError, match="row 0, column 'tags'"):
            rows_to_examples([{"text": "x", "label": "p", "tags": bad}], mapping, typed=True)
    deep: object = "fine"
    for _ in range(5000):
        deep = [deep]
    [ex] = rows_to_examples([{"text": "x", "label": "p", "tags": deep}], mapping, typed=True)
    assert ex.meta["tags"] is deep
