"""Sweeps from the studio: the designer's form -> a checked SweepSpec, the cost of the whole sweep, one
click to queue it, the live table (mean ± std per configuration), Pareto data, CSV, stopping a
configuration, and "train this one on all data".

The form makes the same spec file ``python -m backend sweep`` reads (``spec_text`` shows it), and the
runs are queued through the studio's job runner like any training: the table is rebuilt from the stored
runs on every poll, so a reload or a second browser shows the same sweep.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any

from backend.config import RunConfig, yaml_loader
from backend.errors import ConfigError, StudioError
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from backend.sweeps.spec import SweepSpec, load_spec
from backend.sweeps.table import sweep_of

PLANNED = 8             # configurations whose cost is measured; the rest are estimated from those
TEMPLATE_SEPARATOR = re.compile(r"^\s*---\s*$", re.M)
MAX_FORM_TEXT = 100_000


def _numbers(text: Any, what: str, kind: type) -> list[Any]:
    """``"0.001, 3e-3"`` -> [0.001, 0.003]; a clear error naming the field and the bad item."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or (kind is int and text != int(text)):
            raise ConfigError(f"{what}: expected {'a number' if kind is float else 'a whole number'}, got {text!r}",
                              field="sweep")
        return [kind(text)]
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected comma-separated numbers, got {type(text).__name__}", field="sweep")
    out = []
    for i, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(item) if kind is float else int(item)
        except ValueError:
            raise ConfigError(f"{what}: item {i + 1} ({item[:40]!r}) is not {'a number' if kind is float else 'a whole number'}",
                              field="sweep") from None
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{what}: item {i + 1} must be a finite number", field="sweep")
        out.append(value)
    return out


def _options(text: Any) -> dict[str, list[Any]]:
    """``"r=4,8; num_tokens=10,20"`` -> {"method.r": [4, 8], "method.num_tokens": [10, 20]} (values typed
    as YAML would: numbers, true/false, text)."""
    if not isinstance(text, str) or not text.strip():
        return {}
    import yaml

    out: dict[str, list[Any]] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        key, sep, values = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"method options: write option=value,value; ... (got {part[:60]!r})", field="sweep")
        items = []
        for v in (v.strip() for v in values.split(",") if v.strip()):
            try:
                items.append(yaml.load(v, Loader=yaml_loader()))     # noqa: S506 - a SafeLoader subclass
            except yaml.YAMLError:
                items.append(v)
            except (ValueError, RecursionError):    # a 5,000-digit number; brackets deeper than the stack
                raise ConfigError(f"method options: {key.strip()}: cannot read the value {v[:40]!r}",
                                  field="sweep") from None
        out[f"method.{key.strip()}"] = items
    return out


def form_spec(base: RunConfig, *, name: str = "", methods: Any = None, lrs: Any = "", shots: Any = "",
              seeds: Any = "13, 21, 42", options: Any = "", templates: Any = "", verbalizers: Any = "",
              sample: Any = 0, asha: Any = False, grace_steps: Any = 10, reduction_factor: Any = 3) -> SweepSpec:
    """The designer's fields -> a checked SweepSpec on ``base`` (the Train tab's config). Empty fields
    keep the base's value; ``templates``: more templates, ``verbalizers``: more label words (the
    Verbalizer tab's text format), each separated by lines of ``---``."""
    for what, value in (("name", name), ("learning rates", lrs), ("shots", shots), ("seeds", seeds),
                        ("method options", options), ("templates", templates), ("label words", verbalizers)):
        if isinstance(value, str) and len(value) > MAX_FORM_TEXT:
            raise ConfigError(f"{what}: {len(value):,} characters, over the limit of {MAX_FORM_TEXT:,}", field="sweep")
    grid: dict[str, list[Any]] = {}
    methods = [m for m in (methods if isinstance(methods, list) else [methods] if methods else []) if m]
    if methods:
        grid["method.name"] = methods
    grid.update(_options(options))
    if (values := _numbers(lrs, "learning rates", float)):
        grid["train.lr"] = values
    if (values := _numbers(shots, "shots", int)):
        grid["data.shots"] = values
    extra = [t.strip("\n") for t in TEMPLATE_SEPARATOR.split(templates)] if isinstance(templates, str) else []
    extra = [t for t in extra if t.strip() and t.strip("\n") != base.template]
    if extra:
        grid["template"] = [base.template, *extra]
    if (words := _more_label_words(verbalizers, base.verbalizer)):
        grid["verbalizer"] = [base.verbalizer, *words]
    raw: dict[str, Any] = {"base": _base(base), "grid": grid, "seeds": _numbers(seeds, "seeds", int) or None}
    if isinstance(name, str) and name.strip():
        raw["name"] = name.strip()
    count = _numbers(sample, "sample", int)
    if count and count[0]:
        raw["sample"] = count[0]
    if asha:
        raw["early_stop"] = {"kind": "asha", "metric": base.train.metric,
                             "grace_steps": (_numbers(grace_steps, "grace steps", int) or [10])[0],
                             "reduction_factor": (_numbers(reduction_factor, "reduction factor", int) or [3])[0]}
    return load_spec(raw)


def _more_label_words(text: Any, base: Any) -> list[Any]:
    """The designer's "more label words" blocks -> verbalizer specs, each checked now (an error names
    its block) and, where the base names its classes, for the same classes: a block that named other
    classes would only fail once its runs start. Blocks equal to the base's are dropped."""
    from backend.prompts.verbalizer import parse_verbalizer
    from backend.services.versions import parse_label_words

    blocks = [b for b in TEMPLATE_SEPARATOR.split(text) if b.strip()] if isinstance(text, str) else []
    try:
        classes = set(parse_verbalizer(base).classes or ())
    except StudioError:
        classes = set()      # the base's own problem is reported where the base is checked
    out: list[Any] = []
    for number, block in enumerate(blocks, 1):
        try:
            spec = parse_label_words(block)
            named = set(parse_verbalizer(spec).classes or ())
        except StudioError as exc:
            raise ConfigError(f"more label words, block {number}: {exc.message}", field="sweep") from None
        if classes and named and named != classes:
            raise ConfigError(f"more label words, block {number}: classes {sorted(named)} are not the Verbalizer "
                              f"tab's {sorted(classes)}", field="sweep")
        if spec != base and spec not in out:
            out.append(spec)
    return out


def _base(cfg: RunConfig) -> dict[str, Any]:
    base = cfg.to_dict()
    base.pop("sweep", None)
    return base


def spec_text(spec: SweepSpec) -> str:
    """The spec as YAML: what ``python -m backend sweep`` reads."""
    import yaml

    return yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True, width=110)


def _cost_key(cfg: RunConfig) -> str:
    """Configurations that differ only in learning rate or seed do the same work: one cost card serves
    them all (timed apart, they differed by the machine's noise alone). Its name, tags and sweep
    record only name the configuration."""
    import json

    d = {k: v for k, v in copy.deepcopy(cfg.to_dict()).items() if k not in ("name", "tags", "sweep")}
    d.get("train", {}).pop("lr", None)
    d.get("train", {}).pop("seed", None)
    return json.dumps(d, sort_keys=True, default=str)


def _steps(ctx: StudioContext, cfg: RunConfig, train_rows: dict[str, int]) -> int:
    """A configuration's training steps as its run will resolve them (``training.options.resolve``, what
    the measured cost cards use): by epochs they follow its own training rows, which ``data.shots``
    changes from one configuration to the next, so its data is loaded (once per distinct data setting,
    kept in ``train_rows``). With ``train.steps`` set nothing is loaded."""
    import json

    from backend.services.data import confine_config
    from backend.training.options import resolve
    from backend.training.run import load_run_data

    n_train = 0
    if cfg.train.steps is None:
        key = json.dumps(cfg.to_dict()["data"], sort_keys=True, default=str)
        if key not in train_rows:
            train_rows[key] = len(load_run_data(confine_config(ctx, copy.deepcopy(cfg))).train)
        n_train = train_rows[key]
    return resolve(cfg.train, cfg.method.name, n_train).total_steps


@service("sweep")
def plan(ctx: StudioContext, spec: SweepSpec) -> dict[str, Any]:
    """The whole sweep's cost before it starts: runs, configurations, steps and the time on this machine.
    The first ``PLANNED`` configurations get their own cost card (``services.cost.plan``: timed); the
    others are an extrapolation, their own step count times the measured configurations' mean time per
    step, and their rows say so (``measured`` False): timing every configuration of a large grid would
    cost minutes before the sweep starts."""
    from backend.services.cost import plan as run_plan
    from backend.sweeps.expand import expand

    trials = expand(spec)
    configs: dict[str, RunConfig] = {}
    for t in trials:
        configs.setdefault(t.key, t.config)
    rows, per_step = [], []
    cards: dict[str, dict[str, Any]] = {}
    train_rows: dict[str, int] = {}
    for i, (key, cfg) in enumerate(configs.items()):
        if i < PLANNED:
            same_work = _cost_key(cfg)
            card = cards.get(same_work) or run_plan(ctx, cfg)
            if "error" in card:
                card["error"]["message"] = f"configuration {key}: {card['error']['message']}"
                return card
            cards[same_work] = card
            rows.append({"key": key, "steps": card["steps"], "trainable": card["trainable"],
                         "estimated_s": card["estimated_s"], "measured": True})
            if card["estimated_s"] is not None:
                per_step.append(card["estimated_s"] / max(card["steps"], 1))
        else:
            steps = _steps(ctx, cfg, train_rows)
            rows.append({"key": key, "steps": steps, "trainable": None, "measured": False,
                         "estimated_s": (sum(per_step) / len(per_step)) * steps if per_step else None})
    seeds = len(spec.seeds)
    known = [r["estimated_s"] for r in rows if r["estimated_s"] is not None]
    return {"name": spec.name, "runs": len(trials), "configurations": len(configs), "seeds": seeds,
            "steps": sum(r["steps"] for r in rows) * seeds,
            "estimated_s": sum(known) * seeds if len(known) == len(rows) else None,
            "measured": min(len(rows), PLANNED), "asha": spec.early_stop is not None,
            "concurrency": getattr(getattr(ctx.jobs, "worker", None), "concurrency", 1), "rows": rows}


@service("sweep")
def start(ctx: StudioContext, spec: SweepSpec) -> dict[str, Any]:
    """Queue every trial with the studio's job runner (each checked the way a single training is)."""
    from backend.services.training import submit
    from backend.sweeps.local import check_new, queue_sweep

    if ctx.jobs is None:
        return user_error("sweeps need the job runner, and this build has none", "sweep")
    if any(t == "zero-shot" for t in spec.grid.get("method.name", [])):
        raise ConfigError("zero-shot has nothing to train: leave it out of the sweep's methods", field="sweep")
    check_new(ctx.store, spec)

    def one(cfg: RunConfig) -> int:
        res = submit(ctx, cfg)
        if "error" in res:
            raise ConfigError(res["error"]["message"], field=res["error"].get("field") or "sweep")
        return int(res["run_id"])

    ids = queue_sweep(ctx.store, spec, submit=one)
    return {"name": spec.name, "run_ids": ids,
            "message": f"Sweep {spec.name}: {len(ids)} runs queued (runs #{ids[0]}-#{ids[-1]})."}


def names(ctx: StudioContext, limit: int = 2000) -> list[str]:
    """The project's sweep names, newest first, from its runs' tags."""
    seen: dict[str, None] = {}
    for r in ctx.store.list_runs(limit=limit, project=ctx.project):
        for tag in r.tags:
            if tag.startswith("sweep:"):
                seen.setdefault(tag[len("sweep:"):], None)
    return list(seen)


def _runs(ctx: StudioContext, name: Any) -> list[Any]:
    from backend.sweeps.local import sweep_runs

    if not isinstance(name, str) or not name.strip():
        raise ConfigError("pick a sweep first", field="sweep")
    runs = sweep_runs(ctx.store, name.strip())
    if not runs:
        raise ConfigError(f"no sweep named {name.strip()[:100]!r} in this database", field="sweep")
    if not any(r.project == ctx.project for r in runs):   # a sweep's runs are all in the project it started in
        raise ConfigError(f"sweep {name.strip()[:100]!r} belongs to project {runs[0].project!r}, not "
                          f"{ctx.project!r}: switch project on the Start tab to see it", field="sweep")
    return runs


@service("sweep")
def table(ctx: StudioContext, name: str) -> dict[str, Any]:
    """The live table: one row per configuration, best first; ``active`` while any run is queued or running."""
    from backend.sweeps.pareto import COST_AXES, front
    from backend.sweeps.table import rows

    table_rows = rows(_runs(ctx, name))
    return {"name": name.strip(), "rows": table_rows, "active": any(r["active"] for r in table_rows),
            "fronts": {axis: front(table_rows, axis) for axis in COST_AXES}}


@service("sweep")
def configuration(ctx: StudioContext, name: str, key: str) -> dict[str, Any]:
    """One configuration's runs (what a clicked point or row opens)."""
    runs = [r for r in _runs(ctx, name) if sweep_of(r).get("key") == key]
    if not runs:
        raise ConfigError(f"sweep {name[:100]!r} has no configuration {str(key)[:200]!r}", field="sweep")
    from backend.sweeps.asha import early_stop_metric, stop_reason

    sweep = sweep_of(runs[0])
    metric = early_stop_metric(sweep)   # what the stop reasons compared
    return {"name": name, "key": key, "params": sweep.get("params") or {}, "metric": metric,
            "runs": [{"id": r.id, "seed": r.seed, "status": r.status, "final": r.metrics.get(f"final/{metric}"),
                      "last_eval": r.metrics.get(f"eval/{metric}"), "reason": stop_reason(r.metrics, metric)}
                     for r in runs]}


@service("sweep")
def stop(ctx: StudioContext, name: str, key: str) -> dict[str, Any]:
    """Stop every queued or running run of one configuration (the rest of the sweep goes on)."""
    from backend.sweeps.supervise import stop_configuration

    conf = configuration(ctx, name, key)     # an unknown sweep or key is a clear error, not "0 runs stopped"
    if "error" in conf:
        return conf
    ids = stop_configuration(ctx.store, name.strip(), key)
    if not ids:
        return {"stopped": [], "message": f"Nothing to stop: every run of {key} has already ended."}
    return {"stopped": ids, "message": f"Stopping {key}: runs {', '.join(f'#{i}' for i in ids)}."}


@service("sweep")
def export_csv(ctx: StudioContext, name: str) -> dict[str, Any]:
    """The table as a CSV file in the studio's exports folder."""
    from backend.sweeps.table import rows, to_csv

    runs = _runs(ctx, name)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip())[:80] or "sweep"
    path = ctx.exports_dir / f"sweep-{safe}.csv"
    path.write_text(to_csv(rows(runs)), encoding="utf-8")
    return {"path": str(path), "message": f"Table written ({path.name})."}


@service("sweep")
def train_on_all(ctx: StudioContext, name: str, key: str) -> dict[str, Any]:
    """Queue the configuration once more on all the training data (no K-shot sample), seeded with the
    sweep's first seed, as an ordinary run outside the sweep."""
    from backend.services.training import submit

    conf = configuration(ctx, name, key)
    if "error" in conf:
        return conf
    run = next(r for r in _runs(ctx, name) if sweep_of(r).get("key") == key)
    raw = copy.deepcopy(run.config)
    raw.pop("sweep", None)
    raw["tags"] = [t for t in raw.get("tags") or [] if not t.startswith("sweep:")] + [f"from-sweep:{name.strip()}"[:200]]
    raw["data"]["shots"] = None
    raw["name"] = f"{key} on all data"[:1000]
    res = submit(ctx, RunConfig.from_dict(raw), parent_run_id=run.id)   # made from this configuration's run
    if "error" in res:
        return res
    return {"run_id": res["run_id"], "message": f"{key} on all the training data: run #{res['run_id']} queued "
            "(its dev score is on the rows the sweep chose it by: optimistic)."}
