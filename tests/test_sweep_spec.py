"""Sweep specs and their expansion into trials: checked values with their dotted paths, stable keys,
method options only where the method has them, seeded sampling, the metadata a table is rebuilt from."""
from __future__ import annotations

import json

import pytest

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.sweeps.expand import config_key, configurations, expand, tag
from backend.sweeps.spec import MAX_TRIALS, load_spec

BASE = {"model": "tiny", "data": {"train": "train.jsonl", "eval": "dev.jsonl"}, "template": "{text_a} It was {mask}.",
        "verbalizer": {"neg": ["bad"], "pos": ["good"]}, "method": {"name": "lora", "head": "soft"},
        "train": {"steps": 4, "eval_every": 2}}


def spec(**kw):
    return load_spec({"name": "s1", "base": BASE, **kw})


def test_grid_expands_methods_options_and_seeds_in_order():
    s = spec(grid={"method.name": ["lora", "prompt-tuning"], "method.r": [4, 8], "train.lr": [1e-3, 3e-3]},
             seeds=[13, 21])
    trials = expand(s)
    # lora: 2 ranks x 2 lrs; prompt-tuning has no rank: its two "rank" configurations are one
    assert len(configurations(s)) == 6 and len(trials) == 12
    assert [t.key for t in trials[:3]] == ["method=lora,method.r=4,train.lr=0.001"] * 2 + \
        ["method=lora,method.r=4,train.lr=0.003"]
    assert [t.seed for t in trials[:2]] == [13, 21]
    pt = [t for t in trials if t.config.method.name == "prompt-tuning"]
    assert {t.key for t in pt} == {"method=prompt-tuning,train.lr=0.001", "method=prompt-tuning,train.lr=0.003"}
    assert all("r" not in t.config.method.options and t.config.method.options["head"] == "soft" for t in pt)
    t = trials[1]
    assert t.config.method.options["r"] == 4 and t.config.train.lr == 1e-3
    assert t.config.train.seed == t.config.data.seed == 21 and t.config.train.seeds is None
    assert tag("s1") in t.config.tags
    meta = t.config.to_dict()["sweep"]
    assert meta == {"name": "s1", "key": t.key, "params": t.params, "seeds": [13, 21], "early_stop": None}
    # what storage keeps parses back to the same run
    assert RunConfig.from_dict(json.loads(t.config.to_json())).to_dict() == t.config.to_dict()


def test_key_is_stable_and_readable():
    grid = {"template": ["{text_a} It was {mask}. " * 4, "{text_a} {mask}"], "data.shots": [8]}
    assert config_key({"template": grid["template"][0], "data.shots": 8}, grid) == "template=#1,data.shots=8"
    assert config_key({"method.name": "lora", "train.lr": 0.001}) == "method=lora,train.lr=0.001"
    assert config_key({}) == "base"
    s = spec(grid=grid)
    assert [t.key for t in expand(s)] == ["template=#1,data.shots=8", "template=#2,data.shots=8"]


def test_sample_is_seeded_and_a_subset():
    grid = {"train.lr": [1e-4, 3e-4, 1e-3, 3e-3], "data.shots": [4, 8, 16]}
    a = configurations(spec(grid=grid, sample=5, sample_seed=1))
    b = configurations(spec(grid=grid, sample=5, sample_seed=1))
    c = configurations(spec(grid=grid, sample=5, sample_seed=2))
    full = configurations(spec(grid=grid))
    assert a == b and len(a) == 5 and all(p in full for p in a) and a != c
    assert len(configurations(spec(grid=grid, sample=50))) == 12


def test_seeds_default_to_the_base_config():
    assert spec().seeds == [RunConfig().train.seed]
    assert load_spec({"base": {**BASE, "train": {"seeds": [1, 2]}}}).seeds == [1, 2]
    assert load_spec({"base": BASE}).name.startswith("sweep-")


@pytest.mark.parametrize("raw, message", [
    ({"grid": {"train.lr": [1e-3, -1]}}, "grid.train.lr[1]: must be greater than 0"),
    ({"grid": {"data.shots": [8, "sixteen"]}}, "grid.data.shots[1]: expected an integer"),
    ({"grid": {"method.rr": [1]}}, "grid.method.rr: no method of this sweep has this option — did you mean 'r'?"),
    ({"grid": {"method.r": [0]}}, "grid.method.r[0]: must be at least 1"),
    ({"grid": {"method.name": ["lora", "lorax"]}}, "grid.method.name[1]: unknown method 'lorax'"),
    ({"grid": {"train.seed": [1]}}, "grid.train.seed: not a grid key"),
    ({"grid": {"data.shotz": [1]}}, "grid.data.shotz: unknown key — did you mean 'shots'?"),
    ({"grid": {"foo.bar": [1]}}, "not a config path a sweep can vary"),
    ({"grid": {"train.lr": []}}, "grid.train.lr: give at least one value"),
    ({"grid": {"train.lr": [0.1, 0.1]}}, "grid.train.lr: a value is given twice"),
    ({"grid": ["train.lr"]}, "grid: expected an object"),
    ({"seeds": [1, 1]}, "seeds: 1 is given twice"),
    ({"seeds": [-1]}, "seeds[0]: must be at least 0"),
    ({"seeds": []}, "seeds: give at least one seed"),
    ({"sample": 0}, "sample: must be at least 1"),
    ({"early_stop": {"reduction_factor": 1}}, "early_stop.reduction_factor: must be at least 2"),
    ({"early_stop": {"kind": "hyperband"}}, "early_stop.kind: must be one of asha"),
    ({"early_stop": {"metric": "loss"}}, "early_stop.metric: must be one of accuracy, macro_f1"),
    ({"early_stop": {"grace": 3}}, "early_stop.grace: unknown key — did you mean 'grace_steps'?"),
    ({"frobnicate": 1}, "frobnicate: unknown key"),
    ({"name": "a,b"}, "name: a short printable name"),
    ({"name": "x" * 91}, "name: 91 characters, over the limit of 90"),
    ({"grid": {"train.lr": [1e-3 * (i + 1) for i in range(26)], "data.shots": list(range(1, 21))}},
     f"over the limit of {MAX_TRIALS}"),
    # sample: draws from the listed grid, so the grid itself is capped: 100**5 configurations used to pass
    # with sample: 2 and then hang listing them
    ({"grid": {**{k: [1e-4 * (i + 1) for i in range(100)]
                  for k in ("train.lr", "train.weight_decay", "train.warmup_ratio", "train.max_grad_norm")},
               "train.batch_size": list(range(1, 101))},
      "sample": 2}, "10,000,000,000 configurations, over the limit of 10,000"),
])
def test_bad_values_name_their_dotted_path(raw, message):
    with pytest.raises(ConfigError) as info:
        spec(**raw)
    assert message in str(info.value) and str(info.value).startswith("sweep: ")


def test_bad_base_and_combinations():
    with pytest.raises(ConfigError, match="base: missing"):
        load_spec({"grid": {}})
    with pytest.raises(ConfigError, match=r"base\.train\.steps: must be at least 1"):
        load_spec({"base": {**BASE, "train": {"steps": 0}}})
    with pytest.raises(ConfigError, match=r"sweep: base\.template: unknown key 'placehoder'.*\(characters 0-24\)"):
        load_spec({"base": {**BASE, "template": '{"placehoder": "text_a"} {mask}'}})
    # a template in the grid that cannot compile: said with its configuration before any run is queued
    s = spec(grid={"template": ["{text_a} It was {mask}.", "{text_a} It was great."]})
    with pytest.raises(ConfigError, match=r"configuration template=.*: template: the template has no \{\"mask\"\}"):
        expand(s)
    with pytest.raises(ConfigError, match=r"sweep: base\.verbalizer: class 'neg' has no label words"):
        load_spec({"base": {**BASE, "verbalizer": {"neg": [], "pos": ["good"]}}})
    with pytest.raises(ConfigError, match="early_stop: needs dev evaluations"):
        load_spec({"base": {**BASE, "train": {"steps": 4}}, "early_stop": {"grace_steps": 2}})
    # a method's rules between its options are checked per configuration, naming the configuration
    s = spec(grid={"method.name": ["p-tuning"], "method.encoder": ["lstm"], "method.hidden_size": [32, 33]})
    with pytest.raises(ConfigError, match="configuration method=p-tuning,method.encoder=lstm,"
                                          "method.hidden_size=33: method.hidden_size: must be even"):
        expand(s)


def test_spec_files_yaml_json_and_base_path(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    (tmp_path / "s.yaml").write_text("name: y\nbase: base.json\ngrid:\n  train.lr: [1e-3, 3E-3]   # YAML 1.2 numbers\n"
                                     "seeds: [13, 21]\nearly_stop: {kind: asha, grace_steps: 2}\n")
    s = load_spec(tmp_path / "s.yaml")
    assert s.name == "y" and s.grid == {"train.lr": [0.001, 0.003]} and s.early_stop.grace_steps == 2
    assert len(expand(s)) == 4
    (tmp_path / "s.json").write_text(json.dumps(s.to_dict()))
    assert load_spec(str(tmp_path / "s.json")).to_dict() == s.to_dict()
    (tmp_path / "bad.yaml").write_text("grid: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read sweep spec"):
        load_spec(tmp_path / "missing.yaml")


def test_a_spec_file_with_a_bom_loads(tmp_path):
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"s{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"name": "bom", "base": BASE, "seeds": [13]}).encode())
        assert load_spec(path).name == "bom", suffix
