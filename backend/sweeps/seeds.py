"""Few-shot seeds sweep: the same config on K-per-class samples drawn with several seeds -> mean ± std.

Few-shot results swing by several points between samples, so one seed says little; ``--seeds
13,21,42,87,100`` (LM-BFF's protocol) runs each sample with the matching training seed and reports the
spread. Each seed is a trial of a one-configuration sweep (``seed_trials``), so its runs are tagged
``sweep:<name>`` and the sweep table summarises them like any sweep's. The base model is loaded once; a
method that modifies the PLM in place (its class says so: ``modifies_base``; PEFT, adapters, BitFit,
full) gets a fresh copy per seed.
"""
from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.methods import get_method
from backend.sweeps.expand import Trial, expand
from backend.sweeps.spec import SweepSpec

if TYPE_CHECKING:   # imported where a seed trains: ``train --seeds 13,-1`` is refused before torch loads
    from backend.training.events import Sink
    from backend.training.run import RunData, TrainResult


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    if not isinstance(text, str):
        return [int(s) for s in text]
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers such as 13,21,42, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds: no seeds given")
    return seeds


def summarize(results: Sequence[TrainResult], keys: Sequence[str] = ("accuracy", "macro_f1")) -> dict[str, Any]:
    """Mean ± std per metric over the seeds that have a score. ``n`` and ``seeds`` count only those: a
    seed cancelled before its final evaluation has no metrics, and counting it would claim a spread over
    more samples than were measured (``unscored`` names it). ``std`` is None below two values: one seed
    has no spread, and "± 0.0" would read as a perfectly stable result."""
    has_score = [r.status == "succeeded" and any(k in r.metrics for k in keys) for r in results]
    scored = [r for r, ok in zip(results, has_score) if ok]
    out: dict[str, Any] = {"n": len(scored), "seeds": [r.seed for r in scored],
                           "unscored": [{"seed": r.seed, "status": r.status}
                                        for r, ok in zip(results, has_score) if not ok]}
    for k in keys:
        vals = [r.metrics[k] for r in scored if k in r.metrics]
        if vals:
            out[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
                      "n": len(vals), "values": vals}
    out["wall_s"] = {"total": sum(r.wall_s for r in results),
                     "mean": statistics.fmean(r.wall_s for r in results) if results else 0.0}
    return out


def seed_trials(config: RunConfig, seeds: Sequence[int], name: str | None = None) -> list[Trial]:
    """The seeds sweep as a sweep (``backend.sweeps``): one configuration (its method), one trial per seed,
    tagged and described like any sweep's runs so the sweep table reads them; each seed writes into its
    own ``seed-<n>`` folder of ``train.output_dir``."""
    base = config.to_dict()
    base["train"]["seeds"] = None
    spec = SweepSpec(name=name or time.strftime("seeds-%Y%m%d-%H%M%S", time.gmtime()), base=base,
                     grid={"method.name": [config.method.name]}, seeds=list(seeds))
    trials = expand(spec)
    for t in trials:
        if config.train.output_dir:
            t.config.train.output_dir = str(Path(config.train.output_dir) / f"seed-{t.seed}")
    return trials


def run_seeds(config: RunConfig, seeds: Sequence[int], *, loaded: Any = None,
              data_for_seed: Callable[[RunConfig], RunData] | None = None,
              sink_for_seed: Callable[[int], Sink | None] | None = None,
              cancel_check: Callable[[], bool] | None = None, store: Any = None,
              project: str | None = None) -> dict[str, Any]:
    """Run ``config`` once per seed (few-shot sample and training seed); returns per-seed results and
    the mean ± std summary. ``data_for_seed`` overrides data loading (default: the config's data). With a
    ``store`` each seed is a recorded run (tagged ``sweep``), with its lineage like any other run."""
    from backend.training.run import _load_model, load_run_data, run_training

    method = get_method(config.method.name)
    own_base = loaded is None     # loaded here: only these seeds use it, all in the config's one precision
    loaded = loaded or _load_model(config)
    results: list[TrainResult] = []
    for trial in seed_trials(config, seeds):
        cfg, seed = trial.config, trial.seed
        data = (data_for_seed or load_run_data)(cfg)
        this, own = loaded, method.modifies_base or own_base
        if method.modifies_base:                          # a seed that changes the base gets its own copy
            this = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))
        sink = sink_for_seed(seed) if sink_for_seed else None
        if store is None:
            res = run_training(cfg, sink=sink, cancel_check=cancel_check, loaded=this, data=data, seed=seed,
                               owns_model=own)
        else:
            res = _recorded(store, cfg, sink, cancel_check, this, data, seed, project, own)
        results.append(res)
        if res.status == "cancelled":
            break
    return {"method": config.method.name, "summary": summarize(results),
            "runs": [r.to_dict() for r in results]}


def _recorded(store: Any, cfg: RunConfig, sink: Sink | None, cancel_check: Callable[[], bool] | None,
              loaded: Any, data: RunData, seed: int, project: str | None, owns_model: bool) -> TrainResult:
    """One seed as a run in ``store``, trained here the way a job child trains (``train_recorded``)."""
    from backend.jobs.child import CancelFlag, train_recorded
    from backend.liveness import keep_alive
    from backend.jobs.paths import run_dir
    from backend.jobs.queue import submit

    run_id = submit(store, cfg, tags=["sweep"], project=project, status="running")   # no worker may claim it
    if not cfg.train.output_dir:
        cfg.train.output_dir = str(run_dir(store, run_id, cfg.to_dict()))
    with keep_alive(store, run_id):
        return train_recorded(store, run_id, cfg, out_dir=Path(cfg.train.output_dir), echo=sink,
                              cancel_check=CancelFlag(store, run_id, also=cancel_check), loaded=loaded,
                              data=data, seed=seed, owns_model=owns_model)
