"""A sweep's specification: a base RunConfig, a grid over dotted RunConfig paths, seeds, an optional
random sample of the grid and optional early stopping (ASHA) — read from YAML, JSON or a dict.

Why its own checked format rather than a loop in a script: the studio's sweep designer, ``python -m
backend sweep SPEC.yaml`` and the Ray executor read the same file, and every value is checked against
the same ranges a RunConfig declares (``backend.schema``) before a single run is queued, with the dotted
path of the value in the message (``grid.train.lr[1]: must be greater than 0, got -0.001``). A sweep
that fails at trial 37 of 48 has wasted the first 36.

Grid keys: ``method.name``; a method's option as ``method.<option>`` (applies only to the methods that
declare it); any field of RunConfig's sections (``train.lr``, ``data.shots``, ``eval.batch_size``) and
the top-level ``template``, ``verbalizer``, ``max_length``, ``truncate``. The seeds come from ``seeds``
(each seed is both the few-shot sample's and the training's), never from the grid.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_type_hints

from backend.config import METRICS, SEED, RunConfig, yaml_loader
from backend.errors import ConfigError, StudioError
from backend.schema import check, check_text, unknown_key

MAX_TRIALS = 500            # configurations x seeds: a bigger sweep is a typo or a job for a cluster
MAX_VALUES = 100            # values of one grid key
MAX_GRID = 10_000           # the whole grid, before sampling: it is enumerated to dedupe and draw from
MAX_KEYS = 20
MAX_SEEDS = 100
NAME_MAX = 90               # the sweep's tag ``sweep:<name>`` fits a 100-character tag
SECTIONS = ("data", "train", "eval")
TOP_LEVEL = ("template", "verbalizer", "max_length", "truncate", "model")
# Fields a sweep sets itself (the seed, the run's name and tags, where it writes): not grid keys.
NOT_IN_GRID = {"data.seed": "the seeds come from 'seeds:'", "train.seed": "the seeds come from 'seeds:'",
               "train.seeds": "the seeds come from 'seeds:'", "train.output_dir": "each run writes its own folder"}
SPEC_KEYS = ("name", "base", "grid", "seeds", "sample", "sample_seed", "early_stop")
EARLY_STOP_KEYS = ("kind", "metric", "grace_steps", "reduction_factor")


@dataclass(frozen=True)
class EarlyStop:
    """Asynchronous successive halving: at each rung (``grace_steps`` x ``reduction_factor``^k steps) a
    configuration whose dev ``metric`` (the mean over its seeds there) is below the (1 - 1/reduction_factor)
    quantile of the configurations that reached the rung before it is stopped, all its seeds
    (``backend.sweeps.asha``). Needs dev evaluations (``train.eval_every``) to have anything to compare."""

    kind: str = "asha"
    metric: str = "accuracy"
    grace_steps: int = 10
    reduction_factor: int = 3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EARLY_STOP_BOUNDS: dict[str, tuple[Any, dict[str, Any]]] = {
    "kind": (str, {"choices": ("asha",), "why": "asynchronous successive halving"}),
    "metric": (str, {"choices": METRICS}),
    "grace_steps": (int, {"min": 1, "max": 10_000_000}),
    "reduction_factor": (int, {"min": 2, "max": 100}),
}


@dataclass
class SweepSpec:
    """A checked sweep: ``base`` is a RunConfig dict that parses; ``grid`` maps a dotted path to its
    values in order; ``sample``: how many configurations of the grid to draw (seeded by ``sample_seed``)."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [13])
    sample: int | None = None
    sample_seed: int = 0
    early_stop: EarlyStop | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "grid": self.grid, "seeds": list(self.seeds),
                "sample": self.sample, "sample_seed": self.sample_seed,
                "early_stop": self.early_stop.to_dict() if self.early_stop else None}


def load_spec(source: str | Path | Mapping[str, Any]) -> SweepSpec:
    """A SweepSpec from a YAML/JSON file or a dict; ``base`` may name a config file (relative to the
    spec's folder). Raises ConfigError (field ``sweep``) naming the dotted path of the first wrong value."""
    try:
        return _load(source)
    except ConfigError as exc:
        raise ConfigError(exc.message, row=exc.row, span=exc.span, field="sweep") from None


def _load(source: str | Path | Mapping[str, Any]) -> SweepSpec:
    folder = Path(".")
    if isinstance(source, (str, Path)):
        folder = Path(source).parent
        raw = _read(Path(source))
    else:
        raw = source
    if not isinstance(raw, Mapping):
        raise ConfigError("the sweep spec must be an object with base:, grid:, seeds: (and name:, sample:, "
                          "early_stop:)")
    for key in raw:
        if key not in SPEC_KEYS:
            raise ConfigError(unknown_key(key, SPEC_KEYS))
    base = _base(raw.get("base"), folder)
    seeds = _seeds(raw.get("seeds"), base)
    grid = _grid(raw.get("grid") or {}, base)
    sample = raw.get("sample")
    if sample is not None:
        sample = check(sample, int, "sample", {"min": 1, "max": MAX_TRIALS})
    sample_seed = check(raw.get("sample_seed", 0), int, "sample_seed", SEED)
    spec = SweepSpec(name=_name(raw.get("name")), base=base, grid=grid, seeds=seeds, sample=sample,
                     sample_seed=sample_seed, early_stop=_early_stop(raw.get("early_stop")))
    _check_size(spec)
    return spec


def _read(path: Path) -> Any:
    """The file's object (a RunConfig file's reading rules: UTF-8, JSON or YAML by suffix)."""
    try:
        text = path.read_text(encoding="utf-8-sig")   # a BOM is not part of the spec
    except OSError as exc:
        raise ConfigError(f"cannot read sweep spec {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return parse_text(text, path.name, yaml_ok=path.suffix != ".json")


def parse_text(text: str, what: str = "the sweep spec", *, yaml_ok: bool = True) -> Any:
    """YAML (a superset of JSON) or JSON text -> object; a syntax error names its line."""
    check_text(text, what, 1_000_000)
    if not yaml_ok:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{what} is not valid JSON: {exc.msg}", row=exc.lineno) from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{what} cannot be read: {str(exc)[:200]}") from None
    import yaml

    try:
        return yaml.load(text, Loader=yaml_loader())     # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{what} is not valid YAML: {getattr(exc, 'problem', None) or exc}",
                          row=(mark.line + 1) if mark else None) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{what} cannot be read: {str(exc)[:200]}") from None


def _name(raw: Any) -> str:
    if raw is None or raw == "":
        return time.strftime("sweep-%Y%m%d-%H%M%S", time.gmtime())
    name = check(raw, str, "name", {"max_len": NAME_MAX}).strip()
    if not name or any(c in name for c in ",\n\r\t") or not name.isprintable():
        raise ConfigError(f"name: a short printable name without commas or line breaks, got {raw!r}")
    return name


def _base(raw: Any, folder: Path) -> dict[str, Any]:
    if raw is None:
        raise ConfigError("base: missing — the RunConfig every trial starts from (an object, or a config file)")
    if isinstance(raw, str):
        path = Path(raw) if Path(raw).is_absolute() else folder / raw
        raw = _read(path)
        if not isinstance(raw, Mapping):
            raise ConfigError(f"base: {path.name} must hold a RunConfig object")
    if not isinstance(raw, Mapping):
        raise ConfigError("base: expected a RunConfig object or the path of a config file")
    try:
        cfg = RunConfig.from_dict(dict(raw))
    except ConfigError as exc:
        raise ConfigError(f"base.{exc.message}", row=exc.row, span=exc.span) from None
    except StudioError as exc:          # the template's or label words' own error, under its field
        raise ConfigError(f"base.{exc.field}: {exc.message}", span=exc.span) from None
    return cfg.to_dict()


def _seeds(raw: Any, base: dict[str, Any]) -> list[int]:
    if raw is None:
        train = base.get("train") or {}
        return list(train.get("seeds") or [train.get("seed", 42)])
    seeds = check(raw, list[int], "seeds", {**SEED, "max_items": MAX_SEEDS})
    if not seeds:
        raise ConfigError("seeds: give at least one seed, e.g. [13, 21, 42]")
    if len(set(seeds)) != len(seeds):
        dup = next(s for s in seeds if seeds.count(s) > 1)
        raise ConfigError(f"seeds: {dup} is given twice (the same seed twice is the same run)")
    return seeds


def methods_in(grid: Mapping[str, list[Any]], base: Mapping[str, Any]) -> list[str]:
    """The methods the sweep trains: the grid's ``method.name`` values, else the base's method."""
    return list(grid.get("method.name") or [(base.get("method") or {}).get("name", "zero-shot")])


def _grid(raw: Any, base: dict[str, Any]) -> dict[str, list[Any]]:
    from backend.methods import get_method

    if not isinstance(raw, Mapping):
        raise ConfigError("grid: expected an object mapping dotted config paths to lists of values, "
                          "e.g. {\"train.lr\": [0.001, 0.003]}")
    if len(raw) > MAX_KEYS:
        raise ConfigError(f"grid: at most {MAX_KEYS} keys, got {len(raw)}")
    grid: dict[str, list[Any]] = {}
    # method.name first: the methods decide which method.<option> keys mean something
    for key in sorted(raw, key=lambda k: k != "method.name"):
        values = raw[key]
        if not isinstance(key, str):
            raise ConfigError(f"grid: keys are dotted config paths such as train.lr, got {key!r}")
        where = f"grid.{key[:60]}"
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ConfigError(f"{where}: give at least one value")
        if len(values) > MAX_VALUES:
            raise ConfigError(f"{where}: at most {MAX_VALUES} values, got {len(values)}")
        if key == "method.name":
            for i, v in enumerate(values):
                try:
                    get_method(v)
                except ConfigError as exc:
                    raise ConfigError(f"{where}[{i}]: {exc.message.split(': ', 1)[-1]}") from None
        elif key.startswith("method."):
            _check_option(key[len("method."):], values, methods_in(grid, base), where)
        else:
            _check_field(key, values, where)
        if any(values.count(v) > 1 for v in values):
            raise ConfigError(f"{where}: a value is given twice ({next(v for v in values if values.count(v) > 1)!r})")
        grid[key] = list(values)
    return {k: grid[k] for k in raw}       # the order the user wrote: the order of the key's parts


def _check_option(option: str, values: list[Any], methods: list[str], where: str) -> None:
    from backend.methods import get_method

    schemas = {m: get_method(m).schema() for m in methods}
    owners = [m for m, s in schemas.items() if option in s]
    if not owners:
        known = sorted({k for s in schemas.values() for k in s})
        raise ConfigError(f"grid.method.{unknown_key(option, known, 'no method of this sweep has this option')}")
    for m in owners:
        opt = schemas[m][option]
        for i, v in enumerate(values):
            check(v, opt.type, f"{where}[{i}]", opt.bounds())


def _check_field(key: str, values: list[Any], where: str) -> None:
    from backend.config import DataConfig, EvalOptions, TrainOptions

    if key in NOT_IN_GRID:
        raise ConfigError(f"{where}: not a grid key ({NOT_IN_GRID[key]})")
    parts = key.split(".")
    sections = {"data": DataConfig, "train": TrainOptions, "eval": EvalOptions}
    if len(parts) == 1 and parts[0] in TOP_LEVEL:
        cls, name = RunConfig, parts[0]
    elif len(parts) == 2 and parts[0] in sections:
        cls, name = sections[parts[0]], parts[1]
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError(f"grid.{parts[0]}.{unknown_key(name, [f.name for f in dataclasses.fields(cls)])}")
    else:
        known = [*TOP_LEVEL, "method.name", "method.<option>", *(f"{s}.<field>" for s in SECTIONS)]
        raise ConfigError(f"grid: {unknown_key(key, known, 'not a config path a sweep can vary')}")
    tp = get_type_hints(cls)[name]
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    for i, v in enumerate(values):
        check(v, tp, f"{where}[{i}]", meta)


def _early_stop(raw: Any) -> EarlyStop | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return EarlyStop()
    if not isinstance(raw, Mapping):
        raise ConfigError("early_stop: expected an object like {kind: asha, metric: accuracy, grace_steps: 10, "
                          "reduction_factor: 3}")
    out = {}
    for key, value in raw.items():
        if key not in EARLY_STOP_BOUNDS:
            raise ConfigError("early_stop." + unknown_key(key, EARLY_STOP_KEYS))
        tp, meta = EARLY_STOP_BOUNDS[key]
        out[key] = check(value, tp, f"early_stop.{key}", meta)
    return EarlyStop(**out)


def _check_size(spec: SweepSpec) -> None:
    configs = 1
    for values in spec.grid.values():
        configs *= len(values)
    if configs > MAX_GRID:
        raise ConfigError(f"grid: {configs:,} configurations, over the limit of {MAX_GRID:,} even with sample: "
                          f"(the grid is listed to draw from it); use fewer values per key")
    drawn = min(configs, spec.sample) if spec.sample else configs
    if drawn * len(spec.seeds) > MAX_TRIALS:
        raise ConfigError(f"grid: {drawn:,} configurations x {len(spec.seeds)} seeds = {drawn * len(spec.seeds):,} "
                          f"runs, over the limit of {MAX_TRIALS}; use sample: N to draw N configurations")
    if spec.early_stop is not None:
        train = spec.base.get("train") or {}
        if not train.get("eval_every") and "train.eval_every" not in spec.grid:
            raise ConfigError("early_stop: needs dev evaluations during training to compare runs at each rung; "
                              "set train.eval_every in base (e.g. 10)")
