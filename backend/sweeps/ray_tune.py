"""A sweep on a Ray cluster through Ray Tune: Tune places the trials and its ASHA scheduler decides which
stop early; every trial is one ordinary recorded run, the same records a local sweep writes.

How the two fit: the sweep's runs are queued in the store first (``backend.sweeps.local.queue_sweep``,
so the studio's table shows the whole sweep at once), one Tune trial per run. A trial starts its run
from its own process (queued -> running, like a Ray task of ``backend.jobs.ray_executor``), trains it
with the job child's code (heartbeats, metric events, artifacts, end status) and reports each dev
evaluation of the sweep's metric to Tune (``step``, metric), which is what ASHA ranks.

Why ASHA's STOP is carried out through the store and not by Tune killing the trial's actor: killed, a
run could not record its own end (last metric events, checkpoint, ``cancelled``), and its record is
the truth. So the scheduler's decision (Tune's rungs and cut) is written on the run exactly as the local
supervisor writes it (``asha/*`` events, then the cancel request: ``backend.sweeps.asha``); the run ends
itself ``cancelled`` before its next step and the trial returns. The table (``backend.sweeps.table``)
therefore reads the same whichever executor ran the sweep. As the local rule does, Tune's scheduler judges
*configurations*, not single seeds: a configuration reaches a rung with its first seed there, its value is
the mean over its seeds that have reported at or past the rung by then, and a losing configuration's seeds
all stop together (queued ones cancelled), so the table's mean over a configuration's finished seeds is
never the survivors' mean. Two differences remain, both Tune's bracket's: it records a configuration once
per rung (the local rule takes the decision again as more seeds arrive), and its cut is the quantile of
the configurations recorded there before this one (the local rule counts the configuration itself too),
so the two can differ on a near tie.

Runs are ``queued`` until their trial starts: a local worker sharing the store may take one first; it
then runs there, recorded the same way, without Tune (its trial sees that and ends at once).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from backend.sweeps.asha import WORST, Stop, stop_events
from backend.sweeps.spec import SweepSpec

TUNE_QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0",                  # verbose=0 then prints nothing
                  "TUNE_DISABLE_SIGINT_HANDLER": "1"}          # Ctrl-C is ours: runs end cancelled, recorded
EXECUTOR = "ray-tune"       # RunConfig.sweep["executor"]: Tune's ASHA decides for these runs, not the local one


class TuneReport:
    """A training sink: each dev evaluation of ``metric`` goes to Tune (ASHA's input). NaN is reported
    as the local rule's worst value, so both rank a diverged run last."""

    def __init__(self, metric: str, report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.key = f"eval/{metric}"
        self.metric = metric
        self._report = report

    def emit(self, key: str, value: float, step: int) -> None:
        if key != self.key:
            return
        if self._report is None:
            from ray import tune

            self._report = tune.report
        value = WORST if value is None or math.isnan(value) else float(value)
        self._report({"step": int(step), self.metric: value})

    def flush(self) -> None:
        return None


def trial(config: dict[str, Any], *, db: str, artifacts: str, submitted_by: str, metric: str) -> None:
    """One Tune trial (in a Ray worker): start run ``config["run"]`` and train it, reporting to Tune.
    Every outcome is on the run's record, so nothing is raised to Tune."""
    from storage import open_store

    from backend.config import RunConfig
    from backend.errors import StudioError
    from backend.jobs.child import CancelFlag, train_recorded
    from backend.jobs.paths import run_dir
    from backend.jobs.ray_executor import start_queued
    from backend.liveness import keep_alive

    run_id = int(config["run"])
    store = open_store(db, Path(artifacts))
    try:
        if not start_queued(store, run_id, submitted_by, what="a Ray Tune trial"):
            return
        info = store.get_run(run_id)
        out = run_dir(store, run_id, info.config)
        with keep_alive(store, run_id):
            try:
                cfg = RunConfig.from_dict(info.config)
                cfg.train.output_dir = str(out)
                train_recorded(store, run_id, cfg, out_dir=out, echo=TuneReport(metric),
                               cancel_check=CancelFlag(store, run_id))
            except StudioError as exc:
                if store.get_run(run_id).status == "running":
                    store.set_status(run_id, "failed", error=str(exc))
            except Exception:  # noqa: BLE001 - train_recorded has recorded it on the run
                pass
    finally:
        store.close()


class Local:
    """A reference that means something in this process only (the store, callbacks). Tune pickles its
    scheduler and callbacks with the experiment's state (to resume an experiment, which sweeps never
    do: a run resumes through its own record); pickled, this becomes empty instead of failing."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.value = None


def asha_scheduler(rule: dict[str, Any], max_steps: int, on_stop: Callable[[int, Stop], None],
                   configs: dict[int, str] | None = None) -> Any:
    """Tune's ASHAScheduler on the ``step`` of each report, judging *configurations*: ``configs`` maps each
    run id to its configuration's key (a run missing there is its own configuration). A configuration
    reaches a rung with its first seed there, and its value is the mean over its seeds that have reported
    at or past the rung by then; Tune's bracket records it once per rung and computes the cut. A STOP
    becomes ``on_stop(run_id, Stop)`` for every run of the configuration (they are then asked to stop
    through the store, queued ones included) while Tune is told to continue: each trial ends when its run
    does. ``max_steps``: the longest run's steps (the last rung is below it)."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class StoreASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            self._judge(trial, result)
            return TrialScheduler.CONTINUE

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
            self._judge(trial, result, last=True)   # what Tune's own does (record the last result), per configuration
            self._trial_info.pop(trial.trial_id, None)

        def _judge(self, trial: Any, result: dict[str, Any], last: bool = False) -> None:
            bracket = self._trial_info.get(trial.trial_id)
            if bracket is None or result.get("step") is None or result.get(self.metric_name) is None:
                return
            run_id, step = int(trial.config["run"]), int(result["step"])
            key = self.configs.get(run_id, f"run {run_id}")
            self.evals.setdefault(key, {}).setdefault(run_id, []).append((step, float(result[self.metric_name])))
            unit = _Unit(key)
            found = _rung_and_cut(bracket, step, key)
            if found is None:      # below the first rung, or this rung's value for the configuration is recorded
                return
            rung = found[0]
            there = [min(e for e in evals if e[0] >= rung)[1] for evals in self.evals[key].values()
                     if any(e[0] >= rung for e in evals)]
            value = sum(there) / len(there)
            if bracket.on_result(unit, step, self._metric_op * value) != TrialScheduler.STOP or last \
                    or self.on_stop.value is None:
                return
            seeds = len(there) if sum(1 for k in self.configs.values() if k == key) > 1 else 0
            for other in [r for r, k in self.configs.items() if k == key] or [run_id]:
                mine = [s for s, _ in self.evals[key].get(other, []) if s >= rung]
                at = min(mine) if mine else max((s for s, _ in self.evals[key].get(other, [])), default=0)
                self.on_stop.value(other, Stop(run_id=other, step=at, rung=int(rung), value=value, cut=found[1],
                                               metric=self.metric_name, seeds=seeds))

    grace = int(rule.get("grace_steps", 10))
    metric = rule.get("metric", "accuracy")
    sched = StoreASHA(time_attr="step", metric=metric, mode="max", grace_period=grace,
                      max_t=max(max_steps, grace), reduction_factor=int(rule.get("reduction_factor", 3)),
                      stop_last_trials=False)
    sched.metric_name, sched.on_stop = metric, Local(on_stop)
    sched.configs, sched.evals = dict(configs or {}), {}
    return sched


class _Unit:
    """What Tune's bracket records a value under: a configuration (the bracket reads ``trial_id`` only)."""

    def __init__(self, key: str) -> None:
        self.trial_id = key


def _rung_and_cut(bracket: Any, step: Any, unit_id: str) -> tuple[float, float | None] | None:
    """The rung a result at ``step`` reaches for the first time for ``unit_id`` and that rung's cut so far,
    as Tune's bracket computes them (read before the bracket records this result); the cut is None while
    nothing is recorded there."""
    if bracket is None or step is None:
        return None
    for milestone, recorded in bracket._rungs:       # highest rung first, as the bracket walks them
        if step >= milestone and unit_id in recorded:
            return None                              # decided at this rung already (the bracket stops here too)
        if step < milestone:
            continue
        cut = bracket.cutoff(recorded)
        return milestone, None if cut is None else float(cut)
    return None


def stop_run(store: Any) -> Callable[[int, Stop], None]:
    """What a STOP does: the reason on the run (``asha/*`` events), then the cancel request (a queued run is
    cancelled at once; its trial then finds it so and ends)."""
    def apply(run_id: int, stop: Stop) -> None:
        if store.get_run(run_id).status not in ("queued", "running"):   # it has just ended: nothing to stop
            return
        store.append_metrics(run_id, stop_events(stop, time.time()))
        store.request_cancel(run_id, why=stop.reason)
    return apply


def run_sweep_ray(store: Any, spec: SweepSpec, address: str | None = None, *, stop: Callable[[], bool] | None = None,
                  on_change: Callable[[list[dict[str, Any]]], None] | None = None, project: str | None = None,
                  num_cpus: int | None = None) -> dict[str, Any]:
    """Queue the sweep, run every trial through Ray Tune (``address``: a cluster; None starts a local
    instance) and wait for the end. ``stop()`` true: every run of the sweep is asked to stop (queued ones
    are cancelled at once). ``on_change`` gets the table when a run's status changed. Returns the run
    ids and the table, as ``backend.sweeps.local.run_sweep`` does."""
    from backend.errors import ConfigError
    from backend.jobs.ray_executor import connect, ray_module, resources_of, shortfall, submitter_name
    from backend.jobs.paths import runs_root
    from backend.sweeps.expand import expand
    from backend.sweeps.local import queue_sweep, sweep_runs
    from backend.sweeps.table import rows

    connect(address, num_cpus=num_cpus)
    from ray import tune

    for key, value in TUNE_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    trials = expand(spec)
    for t in trials:        # a trial the whole cluster cannot place would wait for ever: refused before queueing
        short = shortfall(ray_module(), resources_of(t.config.to_dict()))
        if short is not None:
            raise ConfigError(f"configuration {t.key}: {short}", field="sweep")
    for t in trials:
        t.config.sweep = {**(t.config.sweep or {}), "executor": EXECUTOR}
    ids = queue_sweep(store, spec, project=project, trials=trials)
    request = {run_id: resources_of(t.config.to_dict()) for run_id, t in zip(ids, trials)}
    rule = spec.early_stop.to_dict() if spec.early_stop else None
    metric = (rule or {}).get("metric", "accuracy")
    fn = tune.with_parameters(trial, db=store.url, artifacts=str(store.artifacts.root),
                              submitted_by=f"ray-tune:{submitter_name()}", metric=metric)
    fn = tune.with_resources(fn, lambda cfg: {"cpu": request[cfg["run"]]["num_cpus"],
                                              "gpu": request[cfg["run"]]["num_gpus"]})
    scheduler = None
    if rule is not None:
        scheduler = asha_scheduler(rule, max(t.config.train.steps or 1 for t in trials), stop_run(store),
                                   configs={run_id: t.key for run_id, t in zip(ids, trials)})
    watch = _watch_callback(tune, store, spec.name, stop, on_change)
    from ray.tune.progress_reporter import TrialProgressCallback

    class Silent(TrialProgressCallback):   # in place of Tune's own, which prints every trial's end
        def _print(self, msg: str) -> None:
            return None

    tuner = tune.Tuner(fn, param_space={"run": tune.grid_search(ids)},
                       tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1, reuse_actors=True),
                       run_config=tune.RunConfig(name=f"sweep-{spec.name}"[:100], verbose=0,
                                                 callbacks=[watch, Silent()],
                                                 storage_path=str(runs_root(store) / "ray-tune")))
    try:
        tuner.fit()
    finally:
        for r in sweep_runs(store, spec.name):
            if r.status == "queued":          # its trial never started (stopped, or Tune failed)
                store.request_cancel(r.id)
    return {"sweep": spec.name, "runs": ids, "table": rows(sweep_runs(store, spec.name))}


def _watch_callback(tune: Any, store: Any, name: str, stop: Callable[[], bool] | None,
                    on_change: Callable[[list[dict[str, Any]]], None] | None) -> Any:
    """A Tune callback in the driver: Ctrl-C becomes a cancel request on every run of the sweep; the
    table goes to ``on_change`` when a status changed (at most once a second); a trial that ended
    leaving its run ``running`` (its worker died) fails the run with the reason."""

    class Watch(tune.Callback):
        def __init__(self, here: Local) -> None:     # an argument, not a closure: the class is pickled by value
            self.here = here
            self.asked = False
            self.seen: dict[int, str] = {}
            self.last = 0.0

        def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
            if self.here.value is not None:
                self._step(*self.here.value)

        def _step(self, store: Any, name: str, stop: Any, on_change: Any) -> None:
            from backend.sweeps.local import sweep_runs
            from backend.sweeps.table import ACTIVE, rows

            if stop is not None and stop() and not self.asked:
                self.asked = True
                for r in sweep_runs(store, name):
                    if r.status in ACTIVE:
                        store.request_cancel(r.id)
            if on_change is not None and time.monotonic() - self.last >= 1.0:
                self.last = time.monotonic()
                runs = sweep_runs(store, name)
                now = {r.id: r.status for r in runs}
                if now != self.seen:
                    self.seen = now
                    on_change(rows(runs))

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            if self.here.value is not None:
                _settle(self.here.value[0], int(trial.config["run"]),
                        "its Ray Tune trial ended without recording an end")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            if self.here.value is not None:
                _settle(self.here.value[0], int(trial.config["run"]),
                        "its Ray Tune trial failed (its worker process died, or Ray could not start it)")

    return Watch(Local((store, name, stop, on_change)))


def _settle(store: Any, run_id: int, reason: str) -> None:
    """A trial's run left ``running`` is failed with ``reason``; an end another process recorded meanwhile
    stands (``fail_if_running``: raising here would stop Ray Tune's callbacks)."""
    from backend.jobs.child import fail_if_running

    fail_if_running(store, run_id, lambda info: f"process gone: {reason} (host {info.host}, pid {info.pid})")
