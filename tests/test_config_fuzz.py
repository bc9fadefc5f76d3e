"""Fuzzing the CLI's config: whatever a RunConfig file holds, parsing either gives a config that can be stored
and read back, or a ConfigError (the template's or label words' own error where they cannot work) naming the problem —
never another exception — and ``python -m backend eval`` on it exits 2 with one line and no traceback."""
from __future__ import annotations

import copy
import json
from dataclasses import fields, is_dataclass
from typing import get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.config import RunConfig
from backend.errors import ConfigError, TemplateError, VerbalizerError
from backend.methods import REGISTRY
from tests.cli_helpers import backend_cli

BASE = {"template": "{text_a} It was {mask}.", "verbalizer": {"neg": ["bad"], "pos": ["good"]},
        "data": {"eval": "builtin:movie-reviews"}}


def _paths(cls: type, prefix: str = "") -> list[str]:
    """Every leaf field of the schema as a dotted path (method options included)."""
    out = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if f.name == "method":
            continue
        if is_dataclass(tp):
            out += _paths(tp, f"{prefix}{f.name}.")
        out.append(f"{prefix}{f.name}")
    return out


PATHS = _paths(RunConfig)
OPTION_KEYS = sorted({k for cls in REGISTRY.values() for k in cls.schema()}) + ["rank", ""]

surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])
texts = st.one_of(st.text(max_size=30), surrogates, st.just("x" * 200_000), st.just("a\0b"),
                  st.sampled_from(["tail", "accuracy", "fp16", "content-free", "lora", "words", "lstm"]))
numbers = st.one_of(st.integers(-10, 10), st.integers(), st.just(5000).map(lambda n: 10 ** n), st.just(-(2 ** 64)),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans())
scalars = st.one_of(st.none(), numbers, texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(texts, st.integers()), inner,
                                                                       max_size=3)), max_leaves=12)


def _set(raw: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value


@st.composite
def configs(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 19)) == 0:
        return draw(values)                                   # not even an object
    raw = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 3))
        if kind <= 1:
            _set(raw, draw(st.sampled_from(PATHS)), draw(values))
        elif kind == 2:
            method = {"name": draw(st.one_of(st.sampled_from(list(REGISTRY)), values))}
            for key in draw(st.lists(st.sampled_from(OPTION_KEYS), max_size=3)):
                method[key] = draw(values)
            raw["method"] = draw(st.one_of(st.just(method), values))
        else:
            raw[draw(st.sampled_from(["data", "eval", "train", "junk"]))] = draw(values)
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_from_dict_only_ever_raises_config_error(raw):
    """A ConfigError, or the template's or label words' own error (with its span) where they cannot work."""
    try:
        cfg = RunConfig.from_dict(raw)
    except (ConfigError, TemplateError, VerbalizerError) as exc:
        assert isinstance(exc, ConfigError) or exc.field in ("template", "verbalizer")
        message = str(exc)
        assert "\n" not in message and len(message) < 2000
        message.encode("utf-8")                               # printable on any terminal
        return
    stored = json.dumps(cfg.to_dict(), ensure_ascii=False)    # what storage keeps on the run
    stored.encode("utf-8")
    assert RunConfig.from_dict(json.loads(stored)).to_dict() == cfg.to_dict()


# ----------------------------------------------------------------------------------- end to end (CLI)

BAD_FILES = {
    "not_json.json": "{\"template\": ",
    "list.json": "[1, 2, 3]",
    "deep.json": "[" * 50_000 + "]" * 50_000,
    "huge_int.json": '{"max_length": ' + "7" * 5000 + "}",
    "nan.json": json.dumps({**BASE, "train": {"lr": float("nan")}}),
    "surrogate.json": json.dumps({**BASE, "template": "{text_a} \ud800 {mask}"}),
    "batch0.json": json.dumps({**BASE, "eval": {"batch_size": 0}}),
    "rank.json": json.dumps({**BASE, "method": {"name": "lora", "rank": 4}}),
    "wrong_shape.json": json.dumps({**BASE, "data": [["eval", "x"]]}),
    "bad.yaml": "template: [unclosed\n",
    "yaml_date.yaml": "template: '{text_a} {mask}'\nverbalizer: {a: [x]}\ndata: {eval: 2020-01-01}\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_eval_on_a_bad_config_exits_2_with_one_line(tmp_path, name):
    path = tmp_path / name
    path.write_text(BAD_FILES[name], encoding="utf-8", errors="surrogatepass")
    proc = backend_cli("eval", str(path), "--no-db", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_eval_on_a_config_that_is_not_utf8_exits_2(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"template": "caf\xe9 {text_a} {mask}"}')
    proc = backend_cli("eval", str(path), "--no-db", timeout=120)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "byte 17" in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1
