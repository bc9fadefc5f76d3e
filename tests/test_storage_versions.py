"""Versioned templates and verbalizers: numbering, dedupe by content, lineage, diffs, aliases."""
from __future__ import annotations

import json
import re

import pytest

from storage import InvalidInput, NotFound
from tests.storage_helpers import store  # noqa: F401  (fixture: SQLite, then PostgreSQL)


def test_versions_are_numbered_per_name_and_hashed(store):
    v1 = store.save_version("template", "sst2", 'It was {"mask"}.', message="first", author="ann")
    v2 = store.save_version("template", "sst2", 'It was really {"mask"}.', message="stronger")
    other = store.save_version("template", "imdb", 'It was {"mask"}.')
    assert (v1.number, v2.number, other.number) == (1, 2, 1)
    assert v1.sha256 == other.sha256 != v2.sha256
    assert (v1.message, v1.author, v2.parent) == ("first", "ann", 1)
    assert v1.parent is None
    assert [v.number for v in store.list_versions("template", "sst2")] == [1, 2]
    assert store.list_names("template") == ["imdb", "sst2"]
    assert store.list_names("verbalizer") == []


def test_identical_content_returns_the_existing_version(store):
    v1 = store.save_version("template", "t", "a {\"mask\"}\n")
    store.save_version("template", "t", "b {\"mask\"}\n")
    again = store.save_version("template", "t", "a {\"mask\"}\r\n", message="ignored")
    assert again.id == v1.id and again.number == 1 and again.message == ""
    assert len(store.list_versions("template", "t")) == 2


def test_verbalizer_canonical_json_dedupes(store):
    words = {"negative": ["bad"], "positive": ["good", "great"]}
    a = store.save_version("verbalizer", "v", json.dumps(words, sort_keys=True))
    b = store.save_version("verbalizer", "v", json.dumps(dict(reversed(words.items())), sort_keys=True))
    assert a.id == b.id
    assert json.loads(store.get_version("verbalizer", "v").content) == words


def test_get_by_number_alias_and_latest(store):
    for i in range(3):
        store.save_version("template", "t", f"v{i} {{\"mask\"}}")
    assert store.get_version("template", "t").number == 3
    assert store.get_version("template", "t", 2).content == 'v1 {"mask"}'
    assert store.get_version("template", "t", "2").number == 2
    store.set_alias("template", "t", "best", 1)
    assert store.get_version("template", "t", "best").number == 1
    moved = store.set_alias("template", "t", "best", 3)  # aliases move
    assert moved.number == 3 and store.get_version("template", "t", "best").number == 3
    assert store.get_version("template", "t", 3).aliases == ("best",)
    assert store.get_version("template", "t", 1).aliases == ()


def test_explicit_parent_records_the_branch_point(store):
    store.save_version("template", "t", "one")
    store.save_version("template", "t", "two")
    v3 = store.save_version("template", "t", "one, edited", parent=1)
    assert v3.number == 3 and v3.parent == 1


def test_diff_between_any_two_versions(store):
    store.save_version("template", "t", "line a\nline b\n")
    store.save_version("template", "t", "line a\nline c\n")
    d = store.diff_versions("template", "t", 1, 2)
    assert "--- t@v1" in d and "+++ t@v2" in d and "-line b" in d and "+line c" in d
    assert store.diff_versions("template", "t", 2, 2) == ""
    assert "+line b" in store.diff_versions("template", "t", 2, 1)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.get_version("template", "missing"), "no template named 'missing'"),
    (lambda s: s.get_version("template", "t", 9), "has no version 9"),
    (lambda s: s.get_version("template", "t", "prod"), "has no alias 'prod'"),
    (lambda s: s.set_alias("template", "t", "prod", 7), "has no version 7"),
])
def test_missing_things_raise_not_found(store, call, message):
    store.save_version("template", "t", "x")
    with pytest.raises(NotFound, match=message):
        call(store)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.save_version("prompt", "t", "x"), "kind must be one of template, verbalizer"),
    (lambda s: s.save_version("template", "", "x"), "name must be a non-empty string"),
    (lambda s: s.save_version("template", "t", b"x"), "content must be text"),
    (lambda s: s.set_alias("template", "t", "12", 1), "confused with a version number"),
])
def test_bad_input_is_a_clear_error(store, call, message):
    store.save_version("template", "t", "x")
    with pytest.raises(InvalidInput, match=message):
        call(store)


def test_versions_are_immutable_records(store):
    v = store.save_version("template", "t", "x")
    with pytest.raises(AttributeError):
        v.content = "changed"  # type: ignore[misc]


def test_concurrent_saves_get_distinct_numbers(store):
    from concurrent.futures import ThreadPoolExecutor

    contents = [f"edit {i}" for i in range(12)] * 2  # each content saved twice, concurrently
    with ThreadPoolExecutor(4) as pool:
        saved = list(pool.map(lambda c: store.save_version("template", "race", c), contents))
    by_content = {}
    for v in saved:
        assert by_content.setdefault(v.content, v.number) == v.number  # duplicates share a version
    assert sorted(by_content.values()) == list(range(1, 13))


def test_a_saved_revert_becomes_current_until_a_newer_save(store):
    """``current`` (what the editor opens) is shown as an alias only while it is not the newest version."""
    store.save_version("template", "t", "one")
    store.save_version("template", "t", "two")
    assert store.get_version("template", "t", "current").number == 2
    assert store.get_version("template", "t", 2).aliases == ()
    again = store.save_version("template", "t", "one")
    assert again.number == 1 and again.aliases == ("current",)
    assert store.get_version("template", "t", "current").number == 1
    assert store.save_version("template", "t", "two").aliases == ()          # the newest again: no alias
    assert store.get_version("template", "t", 1).aliases == ()
    store.save_version("template", "t", "one")
    v3 = store.save_version("template", "t", "three")
    assert (v3.number, v3.parent, v3.aliases) == (3, 1, ())                   # branched from the revert
    assert store.get_version("template", "t", "current").number == 3



def test_out_of_range_and_non_ascii_numbers_are_not_found(store):
    """Every reference a picker can receive is a version or a NotFound naming it: never SQLite's
    OverflowError, PostgreSQL's "integer out of range" or int()'s ValueError."""
    cases = [   # (label, ref, what the message says)
        ("20 digits", "99999999999999999999", "has no version 99999999999999999999"),   # SQLite: OverflowError
        ("20-digit int", 99999999999999999999, "has no version 99999999999999999999"),
        ("2**63", 2**63, "has no version 9223372036854775808"),
        ("2**63 - 1", 2**63 - 1, "has no version 9223372036854775807"),   # PostgreSQL: integer out of range
        ("2**31", 2**31, "has no version 2147483648"),
        ("'2147483647'", "2147483647", "has no version 2147483647"),
        ("5000 digits", "9" * 5000, "has no version 99999999999999999999… (5000 digits)"),  # int() refuses
        ("10**5000", 10**5000, "has no version too large to write"),   # even str() refuses
        ("'0'", "0", "has no version 0"), ("0", 0, "has no version 0"), ("-1", -1, "has no version -1"),
        ("'²'", "²", "has no alias '²'"),    # isdigit() yet int() refuses: a name, not a number
        ("'١'", "١", "has no alias '١'"),    # an Arabic-Indic one, which int() reads as 1: a name too
        ("'-1'", "-1", "has no alias '-1'"),
    ]
    calls = [("get", lambda ref: store.get_version("template", "t", ref)),
             ("diff", lambda ref: store.diff_versions("template", "t", 1, ref)),
             ("set_alias", lambda ref: store.set_alias("template", "t", "prod", ref))]
    store.save_version("template", "t", "one")
    failures = []
    for label, ref, message in cases:
        for what, call in calls:
            try:
                call(ref)
            except NotFound as exc:
                if message not in exc.message:
                    failures.append(f"{what}({label}): {exc.message!r}")
            except Exception as exc:  # noqa: BLE001  (the bug: any other error)
                failures.append(f"{what}({label}): {type(exc).__name__}: {str(exc)[:120]}")
            else:
                failures.append(f"{what}({label}): no error")
    assert failures == []
    assert store.get_version("template", "t", 1).aliases == ()
    assert store.get_version("template", "t", "01").number == 1   # ASCII digits still name versions


def test_a_new_name_or_alias_is_one_printable_line_of_reasonable_length(store):
    for bad, fragment in (("a\tb", "not printable"), ("two\nlines", "not printable"), ("x" * 201, "at most 200"),
                          ("bad\ud800", "not printable")):
        with pytest.raises(InvalidInput, match=fragment):
            store.save_version("template", bad, "{text_a} {mask}")
    store.save_version("template", "Sentiment — v2 (ünïcode) ../x", "{text_a} {mask}")
    with pytest.raises(InvalidInput, match="not printable"):
        store.set_alias("template", "Sentiment — v2 (ünïcode) ../x", "pr\x07od", 1)
