"""Training from the studio: the method catalogue with per-method options, the CLI command, submitting to the job runner, live progress read back from storage, cancel, resume, queue.

Training itself never runs in the studio process: ``ctx.jobs`` hands the RunConfig to the job runner
(a separate process that writes metric events to storage), and the page polls storage — so leaving or
refreshing the page loses nothing, and a second browser sees the same run. The cost card before a run
starts: ``backend.services.cost``.
"""
from __future__ import annotations

import json
import time
from typing import Any

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.services.context import StudioContext
from backend.services.results import service, user_error

DEFAULT_METHOD = "prompt-tuning"
# Defaults that learn on a small dataset in a few minutes on a CPU (the methods pick their own lr).
DEFAULT_TRAIN = {"steps": 60, "batch_size": 8, "eval_every": 10}   # the seed: the project's one seed
ACTIVE = ("queued", "running")
CURVES = ("train/loss", "eval/accuracy", "eval/macro_f1")   # what the live chart draws


def methods() -> list[dict[str, Any]]:
    """The picker's catalogue, asked of the registry (its order): every method that trains, as its class
    describes itself (``Method.describe``: label, description, default lr, model kinds, and each option's
    type, default, range or choices, label, help, advanced, common)."""
    from backend.methods import REGISTRY

    return [cls.describe() for cls in REGISTRY.values() if cls.trains]


def option_values(method: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Form values -> method options: blanks mean "the default", lists are typed comma-separated."""
    schema = {o["key"]: o for m in methods() if m["name"] == method for o in m["options"]}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        spec = schema.get(key)
        if spec is None or value is None or (isinstance(value, str) and not value.strip()):
            continue
        if spec["type"] == "list":
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        elif spec["type"] == "int":
            value = int(value)
        elif spec["type"] == "float":
            value = float(value)
        if value != spec["default"]:
            out[key] = value
    return out


def command(ctx: StudioContext, cfg: RunConfig) -> str:
    """"Copy as command": any studio user sees it, so the database URL is shown without its password."""
    from storage.paths import redact_url

    from backend.services.runconfig import command as cli_command

    return cli_command(cfg, redact_url(ctx.store.url))


@service("train")
def submit(ctx: StudioContext, cfg: RunConfig, parent_run_id: int | None = None) -> dict[str, Any]:
    """Queue ``cfg`` with the job runner; returns the new run id at once (training runs elsewhere).
    ``parent_run_id``: the run it was made from (re-run with changes, a sweep row trained on all data)."""
    if cfg.method.name == "zero-shot":
        raise ConfigError("zero-shot has nothing to train: use the Evaluate tab", field="method")
    if ctx.jobs is None:
        return user_error("training is not available yet: this build has no job runner", "train")
    from backend.services.data import confine_config, confine_output

    confine_output(ctx, confine_config(ctx, cfg))
    _check_studio_model(ctx, cfg)
    run_id = ctx.jobs.submit(cfg, parent_run_id=parent_run_id)   # recorded like every run (backend.recording): versions now, the rest when it starts
    return {"run_id": run_id, "message": f"Run #{run_id} queued."}


def _check_studio_model(ctx: StudioContext, cfg: RunConfig) -> None:
    """The studio trains its own base model only: a config naming another (say a folder on the server)
    is refused, so the run's recorded model is the one it trains; the studio's spec is what is recorded."""
    names = {ctx.model.spec}
    if ctx.model.status()["state"] == "ready":
        names.add(ctx.model.get().model_id)
    if cfg.model not in names:
        raise ConfigError(f"the config asks for model {cfg.model!r}, but this studio trains {ctx.model.spec!r}; "
                          f"set \"model\": {ctx.model.spec!r}, or train the config with python -m backend train",
                          field="model")
    cfg.model = ctx.model.spec


@service("rerun")
def submit_json(ctx: StudioContext, text: str, parent: Any = None) -> dict[str, Any]:
    """Re-run with changes: a config edited as JSON; zero-shot configs are evaluated right here.
    ``parent``: the run whose config was opened for editing, recorded as the new run's parent (one of this
    project's runs), so "what was this made from" is answerable after the edit."""
    if not isinstance(text, str):  # the client sends the box's value: json.loads would raise TypeError
        raise ConfigError(f"the config to re-run must be JSON text, got {type(text).__name__}")
    parent_run_id = ctx.run(parent).id if parent not in (None, "") else None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", row=exc.lineno) from None
    cfg = RunConfig.from_dict(raw)
    if cfg.method.name == "zero-shot":
        from backend.services.evaluate import zero_shot

        res = zero_shot(ctx, cfg, parent_run_id=parent_run_id)
        if "error" in res:
            return res
        return {"run_id": res["run_id"], "message": f"Evaluated as run #{res['run_id']}."}
    return submit(ctx, cfg, parent_run_id=parent_run_id)


@service("train")
def cancel(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    ctx.run(run_id)   # one of this project's runs
    if ctx.jobs is not None:
        ctx.jobs.cancel(int(run_id))
    else:  # no runner here: the flag in the database still stops a run another worker executes
        ctx.store.request_cancel(int(run_id))
    return {"run_id": int(run_id), "message": f"Cancel requested for run #{run_id}."}


@service("train")
def resume(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    if ctx.jobs is None:
        return user_error("resuming is not available yet: this build has no job runner", "train")
    ctx.run(run_id)   # one of this project's runs
    new_id = ctx.jobs.resume(int(run_id))
    return {"run_id": new_id, "message": f"Run #{run_id} resumes as run #{new_id}."}


@service("train")
def progress(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    """Where a run stands, from storage: status, step / total, loss, ETA, the curves and a log."""
    r = ctx.run(run_id)
    events = ctx.store.get_metrics(r.id)
    curves: dict[str, list[list[float]]] = {}
    last: dict[str, float] = {}
    step = 0
    for ev in events:
        curves.setdefault(ev["key"], []).append([ev["step"], ev["value"]])
        last[ev["key"]] = ev["value"]
        if ev["key"] == "train/loss":
            step = max(step, int(ev["step"]))
    total = int(last.get("train/total_steps", 0)) or int((r.config.get("train") or {}).get("steps") or 0)
    log = [f"{time.strftime('%H:%M:%S', time.localtime(h.at))} {h.status}" + (f": {h.note}" if h.note else "")
           for h in r.history]
    if ctx.jobs is not None:
        tail = ctx.jobs.log_tail(r.id)
        if tail:
            log += ["", "--- process output (last lines) ---", *tail]
    return {"run_id": r.id, "status": r.status, "method": r.method, "step": step, "total_steps": total,
            "fraction": min(1.0, step / total) if total else (1.0 if r.status == "succeeded" else 0.0),
            "loss": last.get("train/loss"), "eta_s": last.get("train/eta_s") if r.status == "running" else None,
            "tokens_per_s": last.get("train/tokens_per_s"), "run_error": r.error, "log": log,
            "curves": {k: v for k, v in curves.items() if k in CURVES},
            "metric": (r.config.get("train") or {}).get("metric") or "accuracy",   # the one the best step is by
            "final": {k[len("final/"):]: v for k, v in last.items() if k.startswith("final/")},
            "done": r.status not in ACTIVE}


@service("train")
def queue(ctx: StudioContext) -> dict[str, Any]:
    """Queued and running runs, oldest first (the order the runner takes them)."""
    rows = []
    for status in ACTIVE:
        for r in ctx.store.list_runs(status=status, limit=100, newest_first=False):
            rows.append({"id": r.id, "status": r.status, "method": r.method,
                         "name": (r.config or {}).get("name"), "created_at": r.created_at})
    return {"runs": sorted(rows, key=lambda x: x["id"])}


def latest_training_run(ctx: StudioContext) -> int | None:
    """The run the Train tab should show on load: an active one, else the newest trained one."""
    from backend.services.runs import is_trained

    for status in ("running", "queued", None):
        for r in ctx.store.list_runs(status=status, limit=20, project=ctx.project):
            if is_trained(r.method):
                return r.id
    return None
