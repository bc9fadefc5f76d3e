"""RunConfig's schema: every number has a declared range, every enumeration its choices, and every method
option is checked when the config is parsed (studio, CLI, re-run and queue all parse it), each error naming
the field's dotted path."""
from __future__ import annotations

import copy
import json
from dataclasses import fields

import pytest

from backend.config import DataConfig, EvalOptions, RunConfig, TrainOptions
from backend.errors import ConfigError, TemplateError, VerbalizerError

BASE = {"template": "{text_a} It was {mask}.", "verbalizer": {"neg": ["bad"], "pos": ["good"]},
        "data": {"eval": "builtin:movie-reviews"}}


def _with(path: str, value: object) -> dict:
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


def _error(path: str, value: object) -> str:
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(_with(path, value))
    return str(err.value)


@pytest.mark.parametrize("path, value, expected", [
    ("eval.batch_size", 0, "eval.batch_size: must be at least 1, got 0"),
    ("eval.batch_size", -4, "eval.batch_size: must be at least 1, got -4"),
    ("eval.top_k", -1, "eval.top_k: must be at least 0, got -1"),
    ("train.epochs", -1, "train.epochs: must be greater than 0, got -1.0"),
    ("train.grad_accum", 0, "train.grad_accum: must be at least 1, got 0"),
    ("train.warmup_ratio", -3, "train.warmup_ratio: must be at least 0, got -3.0"),
    ("train.metric", "bogus", "train.metric: must be one of accuracy, macro_f1, got 'bogus'"),
    ("train.eval_every", 0, "train.eval_every: must be at least 1, got 0"),
    ("train.steps", 0, "train.steps: must be at least 1, got 0"),
    ("train.lr", 0, "train.lr: must be greater than 0, got 0.0"),
    ("train.batch_size", 100000, "train.batch_size: must be at most"),
    ("train.mixed_precision", "fp8", "train.mixed_precision: must be one of"),
    ("train.seeds", [1, -2], "train.seeds[1]: must be at least 0, got -2"),
    ("data.seed", -1, "data.seed: must be at least 0"),
    ("data.limit", 0, "data.limit: must be at least 1"),
    ("eval.precision_at", [0], "eval.precision_at[0]: must be at least 1"),
    ("max_length", 4, "max_length: must be at least 8, got 4"),
    ("truncate", "middle", "truncate: must be one of tail, head, balanced, got 'middle'"),
    ("eval.calibration", "platt", "eval.calibration: must be one of content-free, support"),
])
def test_out_of_range_numbers_and_unknown_choices_name_their_path(path, value, expected):
    assert expected in _error(path, value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("path", ["train.lr", "train.warmup_ratio", "train.epochs", "train.max_grad_norm",
                                  "train.weight_decay"])
def test_non_finite_floats_are_rejected(path, value):
    assert f"{path}: must be a finite number" in _error(path, value)


def test_huge_integers_are_reported_without_printing_them():
    msg = _error("train.steps", 10 ** 5000)             # repr() of this raises ValueError in Python 3.11+
    assert msg.startswith("train.steps: must be at most") and len(msg) < 200
    assert "train.lr: must be at most" in _error("train.lr", 10 ** 400)   # float() would overflow


def test_every_number_in_the_schema_declares_its_range():
    for cls in (RunConfig, DataConfig, EvalOptions, TrainOptions):
        for f in fields(cls):
            tp = str(f.type)
            if "int" in tp or "float" in tp:
                assert "min" in f.metadata or "gt" in f.metadata, f"{cls.__name__}.{f.name} has no lower bound"
                assert "max" in f.metadata or "lt" in f.metadata, f"{cls.__name__}.{f.name} has no upper bound"


def test_the_defaults_and_the_readme_config_parse():
    cfg = RunConfig.from_dict(BASE)
    assert cfg.eval.batch_size == 32 and cfg.train.metric == "accuracy"
    readme = {"model": "smollm2-135m-instruct",
              "data": {"eval": "dev.jsonl", "train": "train.jsonl", "columns": {"text_a": "sentence", "label": "label"},
                       "shots": 16, "seed": 13, "limit": 500},
              "template": "Review: {text_a}\nSentiment (positive or negative):{mask}",
              "verbalizer": {"negative": ["negative"], "positive": ["positive"]}, "max_length": 256,
              "truncate": "tail", "method": {"name": "zero-shot"},
              "eval": {"batch_size": 32, "calibration": None, "top_k": 0}}
    assert RunConfig.from_dict(readme).to_dict()["data"]["shots"] == 16


@pytest.mark.parametrize("template, expected, span", [
    ('{"placehoder": "text_a"} {mask}', "did you mean 'placeholder'", (0, 24)),
    ("{text_a} It was great.", "the template has no {\"mask\"}", (0, 22)),
    ("{text_a} {mask", "this '{' is never closed", (9, 14)),
])
def test_a_template_that_cannot_compile_is_refused_with_the_config(template, expected, span):
    """Every way a run comes (CLI, studio, sweep, JSON re-run) parses its config first: a run whose template
    cannot compile is never queued nor recorded, and the message keeps the template's own span."""
    with pytest.raises(TemplateError) as err:
        RunConfig.from_dict({**BASE, "template": template})
    assert err.value.field == "template" and expected in err.value.message and err.value.span == span


@pytest.mark.parametrize("words, expected", [
    ({"neg": [], "pos": ["good"]}, "class 'neg' has no label words"),
    ({"neg": [" "], "pos": ["good"]}, "an empty label word for 'neg'"),
    ({"neg": [3], "pos": ["good"]}, "label word 3 for 'neg' is not text"),
    ({}, "the verbalizer has no classes"),
    (5, "label words must be a dict"),
])
def test_label_words_that_cannot_work_are_refused_with_the_config(words, expected):
    with pytest.raises(VerbalizerError) as err:
        RunConfig.from_dict({**BASE, "verbalizer": words})
    assert err.value.field == "verbalizer" and expected in err.value.message


# ------------------------------------------------------------------------------------ method options

@pytest.mark.parametrize("method, expected", [
    ({"name": "lora", "rank": 4}, "method.rank: unknown option for lora — did you mean 'r'?"),
    ({"name": "lora", "r": 0}, "method.r: must be at least 1, got 0"),
    ({"name": "lora", "dropout": 1.5}, "method.dropout: must be less than 1"),
    ({"name": "lora", "r": "8"}, "method.r: expected an integer, got '8'"),
    ({"name": "lora", "target_modules": [3]}, "method.target_modules[0]: expected a string, got 3"),
    ({"name": "adapter", "style": "fancy"}, "method.style: must be one of houlsby, pfeiffer, got 'fancy'"),
    ({"name": "adapter", "bottleneck": 0}, "method.bottleneck: must be at least 1"),
    ({"name": "prompt-tuning", "num_tokens": 0}, "method.num_tokens: must be at least 1"),
    ({"name": "prompt-tuning", "init": "text"}, "method.init_text: needed when init is 'text'"),
    ({"name": "p-tuning", "encoder": "gru"}, "method.encoder: must be one of lstm, mlp, got 'gru'"),
    ({"name": "prefix-tuning", "num_tokens": 9999}, "method.num_tokens: must be at most 512"),
    ({"name": "zero-shot", "r": 8}, "method.r: unknown option for zero-shot"),
    ({"name": "bitfit", "head": "linear"}, "method.head: must be one of words, soft, got 'linear'"),
    ({"name": "lora", "checkpointing": "yes"}, "method.checkpointing: expected true/false, got 'yes'"),
])
def test_method_options_are_checked_when_the_config_is_parsed(method, expected):
    assert expected in _error("method", method)


def test_the_queue_refuses_bad_method_options_before_a_worker_sees_them():
    from backend.jobs.queue import submit

    class NoStore:
        def create_run(self, *a, **k):  # pragma: no cover - reaching it is the failure
            raise AssertionError("a bad config was queued")

    with pytest.raises(ConfigError, match="method.rank: unknown option for lora"):
        submit(NoStore(), _with("method", {"name": "lora", "rank": 4}))


def test_valid_method_options_keep_their_given_form():
    cfg = RunConfig.from_dict(_with("method", {"name": "lora", "r": 4, "alpha": 8, "target_modules": ["q"]}))
    assert cfg.method.to_dict() == {"name": "lora", "r": 4, "alpha": 8, "target_modules": ["q"]}


def test_method_parse_options_shares_the_declared_schema():
    from backend.methods import REGISTRY, get_method
    from backend.methods.base import COMMON_OPTIONS

    opts = get_method("lora").parse_options({"r": 4})
    assert opts["r"] == 4 and opts["alpha"] == 16 and opts["head"] == "words"
    assert set(COMMON_OPTIONS) <= set(opts)
    for name, cls in REGISTRY.items():
        get_method(name).parse_options({})          # every method's defaults pass its own ranges
        for key, opt in cls.options.items():
            if opt.type in (int, float) or opt.type == (int, float):
                assert opt.min is not None or opt.gt is not None, f"{name}.{key} has no lower bound"


def test_the_studio_builder_reports_an_infinite_max_length_as_a_config_error(tmp_path):
    from backend.services import runconfig
    from backend.services.testing import make_context

    ctx = make_context(tmp_path)
    sel = {"source": "builtin:movie-reviews", "split": "dev"}
    for bad in (float("inf"), float("nan"), "lots"):
        with pytest.raises(ConfigError, match="max length must be a whole number"):
            runconfig.build(ctx, template="{text_a} {mask}", label_words="a: x\nb: y", selection=sel,
                            max_length=bad)
    with pytest.raises(ConfigError, match="max_length: must be at most"):
        runconfig.build(ctx, template="{text_a} {mask}", label_words="a: x\nb: y", selection=sel, max_length=1e12)


def test_a_config_file_with_a_bom_loads(tmp_path):
    """Data files accept a BOM; a JSON config saved by the same editor used to fail 'Unexpected UTF-8 BOM'."""
    import json

    from backend.config import DEMO_CONFIG, load_config

    for suffix in (".json", ".yaml"):
        path = tmp_path / f"run{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps(DEMO_CONFIG).encode())
        assert load_config(path).to_dict() == RunConfig.from_dict(DEMO_CONFIG).to_dict(), suffix


def test_a_yaml_config_reads_1e_3_as_the_number_a_sweep_spec_reads(tmp_path):
    """``lr: 1e-3`` is text to YAML 1.1 (PyYAML's safe_load): a run config said "expected a number" about
    it while a sweep spec, through its own loader, read 0.001."""
    from backend.config import DEMO_CONFIG, load_config
    from backend.sweeps.spec import parse_text

    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(dict(DEMO_CONFIG, train=dict(DEMO_CONFIG.get("train") or {}, lr="LR")))
                    .replace('"LR"', "1e-3"))
    assert load_config(path).train.lr == 0.001
    assert parse_text("train.lr: [1e-3]") == {"train.lr": [0.001]}
