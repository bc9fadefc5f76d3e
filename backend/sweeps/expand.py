"""A SweepSpec -> its trials: one RunConfig per (configuration, seed), in a stable order.

Why each trial carries ``key`` and ``params`` inside its config (``RunConfig.sweep``) and the tag
``sweep:<name>``: a run is recorded by whoever executes it (the local job queue, the CLI, Ray), and the
sweep's table is rebuilt from the stored runs alone — no second record of "which run was which
configuration" that could drift from the runs. ``key`` names the configuration without the seed
(``method=lora,train.lr=0.001``) so the runs of one configuration group by it.
"""
from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass
from itertools import product
from typing import Any

from backend.config import RunConfig
from backend.errors import ConfigError, StudioError
from backend.sweeps.spec import SweepSpec

LONG = 40           # values longer than this (templates, label words) show as #N in the key


@dataclass(frozen=True)
class Trial:
    key: str                      # the configuration, without the seed
    seed: int
    config: RunConfig             # ready to submit: seeded, named, tagged, with its sweep metadata
    params: dict[str, Any]        # grid key -> value of this configuration (options of other methods left out)


def tag(name: str) -> str:
    """The tag every run of sweep ``name`` carries."""
    return f"sweep:{name}"


def configurations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The grid's distinct configurations (params dicts) in grid order, sampled when ``spec.sample``.

    A ``method.<option>`` value only applies to methods that declare the option; for the others it is
    left out, and the configurations that then coincide are one configuration."""
    from backend.methods import get_method

    keys = list(spec.grid)
    base_method = (spec.base.get("method") or {}).get("name", "zero-shot")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for values in product(*(spec.grid[k] for k in keys)):
        params = dict(zip(keys, values))
        schema = get_method(params.get("method.name", base_method)).schema()
        params = {k: v for k, v in params.items()
                  if not (k.startswith("method.") and k != "method.name" and k[len("method."):] not in schema)}
        key = config_key(params, spec.grid)
        if key not in seen:
            seen.add(key)
            out.append(params)
    if spec.sample and spec.sample < len(out):
        picked = sorted(random.Random(spec.sample_seed).sample(range(len(out)), spec.sample))
        out = [out[i] for i in picked]
    return out


def config_key(params: dict[str, Any], grid: dict[str, list[Any]] | None = None) -> str:
    """``method=lora,train.lr=0.001``: short and stable; a long or structured value (a template, label
    words) shows as its number in the grid's list (``template=#2``)."""
    parts = []
    for k, v in params.items():
        name = "method" if k == "method.name" else k
        parts.append(f"{name}={_show(v, (grid or {}).get(k))}")
    return ",".join(parts) or "base"


def _show(value: Any, values: list[Any] | None) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and len(value) <= LONG and value.isprintable() and not set(value) & set(",={}"):
        return value
    if values is not None and value in values:
        return f"#{values.index(value) + 1}"
    return "#" + hashlib.sha256(repr(value).encode()).hexdigest()[:8]


def apply(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each dotted path of ``params`` set (``method.r`` -> the method's option)."""
    raw = copy.deepcopy(base)
    for k, v in params.items():
        section, _, leaf = k.partition(".")
        if not leaf:
            raw[section] = copy.deepcopy(v)
            continue
        target = raw.setdefault(section, {})
        if section == "method" and leaf == "name" and target.get("name") != v:
            target = raw[section] = {"name": v, **_shared_options(target, v)}
        target[leaf] = copy.deepcopy(v)
    return raw


def _shared_options(old: dict[str, Any], method: str) -> dict[str, Any]:
    """The base method's options the new method also has (a common option such as ``head``)."""
    from backend.methods import get_method

    schema = get_method(method).schema()
    return {k: v for k, v in old.items() if k != "name" and k in schema}


def expand(spec: SweepSpec) -> list[Trial]:
    """Every (configuration, seed) as a Trial, configurations in grid order, seeds in the spec's order
    within each. Raises ConfigError naming the configuration when a combination does not parse."""
    trials = []
    early = spec.early_stop.to_dict() if spec.early_stop else None
    for params in configurations(spec):
        key = config_key(params, spec.grid)
        raw = apply(spec.base, params)
        for seed in spec.seeds:
            one = copy.deepcopy(raw)
            one.setdefault("data", {})["seed"] = seed
            one.setdefault("train", {}).update(seed=seed, seeds=None)
            one["name"] = f"{spec.name} {key} seed={seed}"[:1000]
            one["tags"] = [t for t in one.get("tags") or [] if not t.startswith("sweep:")] + [tag(spec.name)]
            one["sweep"] = {"name": spec.name, "key": key, "params": params, "seeds": list(spec.seeds),
                            "early_stop": early}
            try:
                cfg = RunConfig.from_dict(one)
            except StudioError as exc:     # a template's or label words' error says where in them: str() keeps that
                what = exc.message if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(f"configuration {key}: {what}", field="sweep") from None
            trials.append(Trial(key=key, seed=seed, config=cfg, params=params))
    return trials
