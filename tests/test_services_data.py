"""Data service: built-in data, column mapping, browsing, K-shot, uploads (type and size checked)."""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from backend.services import data
from backend.services.testing import make_context


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path / "studio", max_upload_mb=0.01)


def test_default_selection_loads_the_demo_data(ctx):
    res = data.load(ctx, data.default_selection())
    assert res["n"] > 10 and res["label_names"] == ["negative", "positive"]
    assert sum(res["distribution"].values()) == res["n"]
    assert res["mapping"]["text_a"] == "text_a" and "dev" in res["splits"]


def test_browse_filters_and_pages(ctx):
    sel = data.default_selection()
    page = data.browse(ctx, sel, "", 0, 5)
    assert len(page["rows"]) == 5 and page["rows"][0]["row"] == 0
    hits = data.browse(ctx, sel, "positive", 0, 100)
    assert hits["matched"] and all(r["label"] == "positive" for r in hits["rows"])


def test_k_shot_sampling_is_per_class_and_reproducible(ctx):
    sel = dict(data.default_selection(), shots=3, seed=5)
    res = data.load(ctx, sel)
    assert res["n"] == 6 and set(res["distribution"].values()) == {3}
    assert [e.text_a for e in data.examples(ctx, sel)] == [e.text_a for e in data.examples(ctx, dict(sel))]
    too_many = data.load(ctx, dict(sel, shots=10_000))
    assert "fewer than shots" in too_many["error"]["message"]


def test_upload_mapping_and_meta(ctx, tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"review": f"text {i}", "stars": "good" if i % 2 else "bad", "title": f"T{i}"} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    saved = data.save_upload(ctx, path)
    assert saved["source"].startswith(str(ctx.uploads_dir))
    sel = {"source": saved["source"], "columns": data.mapping("review", data.NO_COLUMN, "stars", ["title"])}
    res = data.load(ctx, sel)
    assert res["label_names"] == ["bad", "good"] and res["columns"] == ["review", "stars", "title"]
    ex = data.examples(ctx, sel)[1]
    assert ex.text_a == "text 1" and ex.meta == {"title": "T1"}
    wrong = data.load(ctx, {"source": saved["source"], "columns": data.mapping("text", None, None, [])})
    assert "text" in wrong["error"]["message"] and wrong["error"]["field"] == "data"


def test_upload_refuses_wrong_type_and_size(ctx, tmp_path):
    exe = tmp_path / "x.exe"
    exe.write_bytes(b"MZ")
    assert data.save_upload(ctx, exe)["error"]["field"] == "upload"
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "word,a\n" * 5000)
    res = data.save_upload(ctx, big)
    assert "limit" in res["error"]["message"] and res["error"]["field"] == "upload"


def test_pick_names_a_missing_row(ctx):
    from backend.errors import DatasetError

    with pytest.raises(DatasetError) as err:
        data.pick(ctx, data.default_selection(), [0, 9999])
    assert err.value.row == 9999


@pytest.mark.parametrize("args, field", [
    (([["review"]], None, "stars", []), "text_a"),
    (("review", 7, "stars", []), "text_b"),
    (("review", None, {"a": 1}, []), "label"),
    (("review", None, "stars", [["title"]]), "meta[0]"),
    (("review", None, "stars", ["title", 3]), "meta[1]"),
    (("review", None, "stars", "title"), "meta"),
])
def test_a_column_name_that_is_not_text_is_refused_by_name(args, field):
    from backend.errors import DatasetError

    with pytest.raises(DatasetError) as err:
        data.mapping(*args)
    assert err.value.field == "columns" and err.value.message.startswith(f"column mapping: {field} ")


@pytest.mark.parametrize("selection", ["builtin:sst2", 5, ["builtin:sst2"], None])
def test_a_selection_that_is_not_an_object_counts_as_none(ctx, selection):
    """What a browser keeps is sent back by the client: anything but a dict means 'nothing loaded'."""
    for res in (data.load(ctx, selection), data.columns(ctx, selection)):
        assert res["error"]["field"] == "data" and "no dataset loaded" in res["error"]["message"]
    assert data.row_choices(ctx, selection) == []


def _csv(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "".join(f"row number {i},{'ab'[i % 2]}\n" for i in range(200)))
    return path


def test_a_truncated_upload_under_the_right_name_is_replaced_whole(ctx, tmp_path):
    src = _csv(tmp_path)
    first = data.save_upload(ctx, src)
    dest = Path(first["source"])
    dest.write_bytes(src.read_bytes()[:100])   # what a killed, non-atomic copy left behind
    assert data.save_upload(ctx, src)["source"] == str(dest)
    assert dest.read_bytes() == src.read_bytes()


def test_an_upload_copy_that_fails_midway_leaves_no_file_under_the_name(ctx, tmp_path, monkeypatch):
    src = _csv(tmp_path)

    def half_then_enospc(fsrc, fdst, *a, **k):
        fdst.write(fsrc.read()[:50])
        raise OSError(errno.ENOSPC, "No space left on device")

    def copyfile(s, d, *a, **k):   # the pre-fix code path copied with shutil.copyfile
        with open(s, "rb") as fs, open(d, "wb") as fd:
            half_then_enospc(fs, fd)

    monkeypatch.setattr(shutil, "copyfileobj", half_then_enospc)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    res = data.save_upload(ctx, src)
    assert res["error"]["field"] == "upload" and "No space left" in res["error"]["message"]
    assert list(ctx.uploads_dir.iterdir()) == []   # neither the final name nor a temp file
    monkeypatch.undo()
    saved = data.save_upload(ctx, src)
    assert Path(saved["source"]).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("key, value", [("shots", "x"), ("shots", float("nan")), ("shots", 2.7), ("shots", -1),
                                        ("limit", -5), ("limit", "x"), ("limit", 2.5)])
def test_a_selection_number_that_is_not_a_whole_count_is_a_data_error_naming_it(ctx, key, value):
    """shots "x" or NaN was a ValueError traceback, and 2.7 silently became 2."""
    res = data.load(ctx, dict(data.default_selection(), **{key: value}))
    assert res["error"]["field"] == "data" and res["error"]["message"].startswith(f"{key}: expected a whole number")
    assert repr(value)[:20] in res["error"]["message"]


def test_counts_of_zero_or_empty_mean_all_rows_and_whole_floats_or_text_are_fine(ctx):
    sel = data.default_selection()
    everything = data.load(ctx, sel)["n"]
    for empty in (None, "", 0, "0"):
        assert data.load(ctx, dict(sel, shots=empty, limit=empty))["n"] == everything
    assert data.load(ctx, dict(sel, shots=3.0))["n"] == data.load(ctx, dict(sel, shots="3"))["n"] == 6
    assert data.load(ctx, dict(sel, limit=4.0))["total"] == 4


def test_browse_checks_offset_and_limit_by_name(ctx):
    sel = data.default_selection()
    assert data.browse(ctx, sel, "", "x", 5)["error"]["message"].startswith("offset: expected a whole number")
    assert "'x'" in data.browse(ctx, sel, "", 0, "x")["error"]["message"]
    assert data.browse(ctx, sel, "", -1, 5)["error"]["message"].startswith("offset:")
    assert data.browse(ctx, sel, "", 0, -5)["error"]["message"].startswith("limit:")
    assert data.browse(ctx, sel, "", 0, 2.5)["error"]["message"].startswith("limit:")
    assert data.browse(ctx, sel, "", 0, 0)["error"]["message"].startswith("limit: a page holds 1 to")
    assert data.browse(ctx, sel, "", 0, 10 ** 6)["error"]["message"].startswith("limit: a page holds 1 to")
    for default in (None, ""):   # a page of 50
        page = data.browse(ctx, sel, "", 2, default)
        assert len(page["rows"]) == min(50, data.load(ctx, sel)["n"] - 2) and page["offset"] == 2
    assert len(data.browse(ctx, sel, "", "", 5.0)["rows"]) == 5
