"""A tuning method says everything about itself, and everything else asks the registry.

Adding a method is one module and one registry line: a toy method registered here (the registry
monkeypatched, no other file touched) is parsed with its options' ranges, named by the CLI, offered by the
studio's picker with widgets built from its schema, copied (or not) per seed by the sweep from its own
``modifies_base``, and served the way its ``serving`` says.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.methods import REGISTRY
from backend.methods.base import Method
from backend.schema import Option

ROOT = Path(__file__).resolve().parents[1]


class Toy(Method):
    """A method that exists only in this test."""

    name = "toy"
    label = "Toy method (tests only)"
    description = "trains nothing; proves a new method needs one module and one registry line"
    default_lr = 0.25
    options = {
        "size": Option(int, 4, min=1, max=16, label="Size", doc="how big; raise it for longer inputs"),
        "style": Option(str, "plain", choices=("plain", "fancy"), label="Style", doc="fancy: never needed",
                        advanced=True),
    }


class SharedToy(Toy):
    name = "toy-shared"
    label = "Toy that leaves the base alone"
    modifies_base = False
    serving = "shared"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, Toy.name, Toy)
    monkeypatch.setitem(REGISTRY, SharedToy.name, SharedToy)
    return Toy


def _config(method: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"eval": "dev.jsonl", "train": "train.jsonl"}, "template": "{text_a} It was {mask}.",
            "verbalizer": {"negative": ["bad"], "positive": ["good"]}, "method": method}


def test_a_registered_method_is_parsed_with_its_options_ranges(toy):
    cfg = RunConfig.from_dict(_config({"name": "toy", "size": 8}))
    assert cfg.method.name == "toy" and cfg.method.options == {"size": 8}
    with pytest.raises(ConfigError, match=r"method\.size: must be at most 16, got 99"):
        RunConfig.from_dict(_config({"name": "toy", "size": 99}))
    with pytest.raises(ConfigError, match=r"method\.style: must be one of plain, fancy"):
        RunConfig.from_dict(_config({"name": "toy", "style": "odd"}))
    with pytest.raises(ConfigError, match=r"method\.r: unknown option for toy"):
        RunConfig.from_dict(_config({"name": "toy", "r": 8}))
    assert toy().parse_options({})["head"] == "words"     # the common options come with every method


def test_the_cli_names_and_checks_a_registered_method(toy, tmp_path, capsys):
    from backend.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_config({"name": "toy", "size": 0})))
    assert main(["train", str(bad), "--no-db"]) == 2
    assert "method.size: must be at least 1, got 0" in capsys.readouterr().err
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(_config({"name": "nope"})))
    assert main(["train", str(unknown), "--no-db"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "toy" in err and "lora" in err


def test_the_studio_catalogue_describes_a_registered_method(toy):
    from backend.services import training

    cat = {m["name"]: m for m in training.methods()}
    assert "toy" in cat and "zero-shot" not in cat          # zero-shot trains nothing: not in the picker
    m = cat["toy"]
    assert m["label"] == Toy.label and m["description"] == Toy.description and m["default_lr"] == 0.25
    opts = {o["key"]: o for o in m["options"]}
    assert {k: opts["size"][k] for k in ("type", "default", "min", "max", "label", "help")} == {
        "type": "int", "default": 4, "min": 1, "max": 16, "label": "Size", "help": "how big; raise it for longer inputs"}
    assert opts["style"]["choices"] == ["plain", "fancy"] and opts["style"]["advanced"] is True
    assert opts["head"]["common"] is True and opts["size"]["common"] is False
    assert training.option_values("toy", {"size": "12", "style": "plain"}) == {"size": 12}


def test_the_train_tab_builds_widgets_from_a_registered_methods_schema(toy, tmp_path):
    import gradio as gr

    from backend.services.testing import make_context
    from studio.app import build_app

    ctx = make_context(tmp_path / "studio")
    try:
        demo = build_app(ctx)
        by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
        size, style = by_id["ps-opt-toy-size"], by_id["ps-opt-toy-style"]
        assert isinstance(size, gr.Number) and (size.minimum, size.maximum) == (1, 16)
        assert size.info == "how big; raise it for longer inputs" and "Size" in size.label
        assert isinstance(style, gr.Dropdown) and [c[1] for c in style.choices] == ["plain", "fancy"]
        assert isinstance(by_id["ps-opt-toy-checkpointing"], gr.Checkbox)
        picker = by_id["ps-train-method"]
        assert (Toy.label, "toy") in [tuple(c) for c in picker.choices]
        # the advanced option sits in a folded accordion; the plain one does not
        assert _inside_accordion(style) and not _inside_accordion(size)
        assert not _inside_accordion(by_id["ps-opt-prompt-tuning-num_tokens"])   # the browser test fills it
    finally:
        ctx.close()


def _inside_accordion(block: Any) -> bool:
    import gradio as gr

    parent = block.parent
    while parent is not None:
        if isinstance(parent, gr.Accordion):
            return not parent.open
        parent = parent.parent
    return False


@dataclass
class _Loaded:
    model: Any


@pytest.mark.parametrize("name, copied", [("toy", True), ("toy-shared", False)])
def test_the_sweep_copies_the_base_per_seed_when_the_method_says_it_modifies_it(toy, monkeypatch, name, copied):
    from backend.sweeps import seeds as sweep

    seen: list[Any] = []

    def fake_run(cfg, *, loaded, seed, **_kw):
        seen.append(loaded.model)
        return SimpleNamespace(seed=seed, metrics={}, wall_s=0.0, status="succeeded", to_dict=lambda: {})

    monkeypatch.setattr("backend.training.run.run_training", fake_run)   # seeds.py imports it where it trains
    base = _Loaded(model={"weights": [1.0]})
    sweep.run_seeds(RunConfig.from_dict(_config({"name": name})), [1, 2], loaded=base,
                    data_for_seed=lambda _cfg: None)
    assert len(seen) == 2
    assert all((m is not base.model) == copied for m in seen) and (seen[0] is not seen[1]) == copied


@pytest.mark.parametrize("name, own_copy", [("toy", True), ("toy-shared", False)])
def test_serving_loads_a_run_the_way_its_method_says(toy, monkeypatch, tmp_path, smol_tok, name, own_copy):
    import torch

    from backend import serving

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"method": name, "kind": "causal", "options": {}}))
    built: list[Any] = []

    def fake_load(_dir, plm, _tok):
        built.append(plm)
        return SimpleNamespace(pm=torch.nn.Linear(1, 1))

    monkeypatch.setattr(serving, "load_trained", fake_load)
    server = serving.MultiRunServer(SimpleNamespace(model=torch.nn.Linear(2, 2), tokenizer=smol_tok, kind="causal"))
    server.attach("a", run)
    assert len(built) == 1 and (built[0] is not server.base) == own_copy


def test_every_registered_method_describes_itself():
    from backend.methods.base import SERVING

    for name, cls in REGISTRY.items():
        assert cls.name == name and cls.label and cls.description, name
        assert cls.serving in SERVING, name
        assert not cls.trains or cls.default_lr > 0, name
        for key, opt in cls.schema().items():
            assert opt.label and opt.doc, f"{name}.{key} needs a label and a help text"
            opt.bounds()
    # a method that does not say otherwise is treated as rewriting the base: never silently shared
    assert Method.modifies_base is True and Method.serving == "own-copy"


def test_the_registry_and_config_parsing_do_not_import_torch():
    code = ("import sys, backend.config, backend.methods\n"
            "from backend.config import RunConfig\n"
            "RunConfig.from_dict({'data': {'eval': 'x'}, 'template': '{mask}', 'verbalizer': 'labels',"
            " 'method': {'name': 'lora', 'r': 4}})\n"
            "heavy = sorted(m for m in ('torch', 'peft', 'transformers') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

