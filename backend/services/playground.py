"""Playground: class probabilities for typed text from several trained runs, side by side.

All runs share one base model held by a ``MultiRunServer`` (prompt-based runs add rows in front of the
frozen model, LoRA / IA3 runs become named adapters; switching runs never reloads the base). The server
gets its own copy of the base model, made once on first use, because attaching PEFT adapters rewrites
the modules of the model it is given and the studio's zero-shot evaluations must keep the plain model.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from backend.errors import ConfigError
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from backend.textcheck import surrogate_at, surrogate_message

MAX_RUNS = 6


@dataclass
class RunsServer:
    server: Any                       # backend.serving.MultiRunServer
    lock: threading.Lock = field(default_factory=threading.Lock)
    attached: set[int] = field(default_factory=set)


def server_for(ctx: StudioContext) -> RunsServer:
    ctx = ctx.root   # one runs server per app, whichever project a session has open
    with ctx.lock:
        if ctx.serving is None:
            from backend.serving import MultiRunServer

            loaded = ctx.model.get()
            with ctx.model.lock:  # copy while no request has hooks on the shared model
                base = copy.copy(loaded)
                base.model = copy.deepcopy(loaded.model)
            ctx.serving = RunsServer(MultiRunServer(base))
        return ctx.serving


def runs(ctx: StudioContext) -> list[str]:
    """Finished trained runs of this base model, as picker labels."""
    from backend.services.runs import choices, run_id_of

    ok = {r.id for r in ctx.store.list_runs(status="succeeded", limit=200, project=ctx.project)
          if (r.config or {}).get("model") == ctx.model.spec}
    return [c for c in choices(ctx, status="succeeded", trained_only=True) if run_id_of(c) in ok]


def attach(ctx: StudioContext, rs: RunsServer, run_id: int) -> None:
    """Attach a finished trained run of this base model to the server (once; later calls reuse it)."""
    from backend.models.hashing import refuse_other_revision
    from backend.serving import materialize_run
    from backend.workbench.record import read_ensemble

    if run_id in rs.attached:
        return
    info = ctx.run(run_id)
    if info.status != "succeeded":
        raise ConfigError(f"run #{run_id} is {info.status}; only finished runs can be served", field="run")
    if (info.config or {}).get("model") != ctx.model.spec:
        raise ConfigError(f"run #{run_id} was trained on {info.config.get('model')!r}, not on the loaded base "
                          f"model {ctx.model.spec!r}", field="run")
    refuse_other_revision(info.model_revision, ctx.model.get().revision, f"run #{run_id}", ctx.model.spec,
                          "its weights would be scored on another model than they learned on", field="run")
    spec = read_ensemble(ctx.store, run_id) if info.method == "ensemble" else None
    if spec is not None:   # a recorded ensemble: its members are prompts on the same base, nothing to copy
        rs.server.attach_ensemble(str(run_id), spec)
    else:
        rs.server.attach(str(run_id), materialize_run(ctx.store, run_id, ctx.data_dir / "serving"))
    rs.attached.add(run_id)


@service("playground")
def predict(ctx: StudioContext, text: str, run_ids: Sequence[int], text_b: str = "") -> dict[str, Any]:
    """Each run's class probabilities for ``text`` (runs are attached on first use, then reused)."""
    if not (text or "").strip():
        return user_error("type some text to classify", "text")
    for name, value in (("text", text), ("text_b", text_b or "")):
        at = surrogate_at(value)  # here, before a tokenizer raises a TypeError on it
        if at is not None:
            return user_error(surrogate_message(value, at), name)
    ids = [int(i) for i in run_ids]
    if not ids:
        return user_error("pick at least one trained run", "runs")
    if len(ids) > MAX_RUNS:
        return user_error(f"compare at most {MAX_RUNS} runs at once", "runs")
    infos = ctx.runs(ids)   # all of this project's, before any is attached or scored
    rs = server_for(ctx)
    out = []
    with rs.lock:
        for run_id, info in zip(ids, infos):
            attach(ctx, rs, run_id)
            pred = rs.server.predict(str(run_id), [text], text_b or None)[0]
            out.append({"run_id": run_id, "method": info.method, "name": (info.config or {}).get("name"),
                        "predicted": pred["predicted"], "probs": pred["probs"]})
    return {"text": text, "results": out}
