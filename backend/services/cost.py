"""The Train tab's cost card: what a run will take before it starts (trainable parameters, steps, tokens)
and how long it should take on this machine, in the parts a run spends its time on: training steps, dev
evaluations, writing weights, and its process's start and finish. Each part says where its figure comes
from: an earlier run here of the same method and model (its recorded rates), else timed now.

The card never trains or writes in the studio's model: it times a deep copy, and its disk timing writes
into a temporary folder under the runs root that is removed.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.jobs.paths import runs_root
from backend.services.context import StudioContext
from backend.services.results import service


@service("train")
def plan(ctx: StudioContext, cfg: RunConfig) -> dict[str, Any]:
    """The cost card before starting: trainable parameters and %, steps, tokens per epoch, and the time
    it should take here: the training steps (at this machine's rate on earlier runs of the method, else
    one batch timed now), every dev evaluation the run will make and its final one (timed now on dev
    rows: on a small dataset evaluating can take as long as training), the weights it writes (checkpoints,
    best weights, the final ones into the store: a full fine-tuning's are most of a gigabyte each, timed
    now on this disk) and its process's start and finish (model load, lineage; from earlier runs here)."""
    from backend.methods.build import build_tuned_model
    from backend.training.options import resolve
    from backend.training.run import load_run_data

    from backend.pipeline import build_verbalizer, check_model
    from backend.services.data import confine_config, confine_output

    confine_output(ctx, confine_config(ctx, cfg))   # the card times writes in the run's folder
    loaded = ctx.model.get()
    check_model(cfg, loaded)
    data = load_run_data(cfg)

    verb = build_verbalizer(cfg.verbalizer, data.classes or [], list(data.train) + list(data.dev),
                            files=True)
    with ctx.model.lock:  # the copy must not catch another request's temporary hooks
        plm = copy.deepcopy(loaded.model)
    tuned = build_tuned_model(plm, loaded.tokenizer, loaded.kind, cfg.template, verb, cfg.method.name,
                              cfg.method.options, seed=cfg.train.seed)
    counts = tuned.counts()
    opts = resolve(cfg.train, cfg.method.name, len(data.train))
    tokens = _tokens(ctx, tuned.pm.template, data.train, cfg, loaded.kind)
    steps_per_epoch = max(1, -(-len(data.train) // (opts.batch_size * opts.grad_accum)))
    epochs = opts.total_steps / steps_per_epoch
    speed, source = _throughput(ctx, cfg, loaded.model_id)
    if speed is None:
        speed, source = _measure(tuned, loaded, data.train[:opts.batch_size], cfg, opts), "measured on one batch now"
    train_tokens = tokens * epochs
    train_s = train_tokens / speed if speed else None
    evaluations = -(-opts.total_steps // opts.eval_every) if opts.eval_every else 0
    dev = data.dev[:cfg.train.eval_limit] if cfg.train.eval_limit else data.dev
    final = data.test if data.test is not None else data.dev
    eval_rows = evaluations * len(dev) + len(final)
    eval_s = None
    if eval_rows:
        eval_tokens = (evaluations * _mean_length(ctx, tuned.pm.template, dev, cfg, loaded.kind) * len(dev)
                       + _mean_length(ctx, tuned.pm.template, final, cfg, loaded.kind) * len(final))
        eval_speed = _measure_eval(ctx, tuned, list(final[:cfg.eval.batch_size]), cfg)
        eval_s = eval_tokens / eval_speed if eval_speed else None
    rest = _writes_and_start(ctx, cfg, tuned, opts, evaluations, loaded.model_id)
    seconds = (None if train_s is None or (eval_rows and eval_s is None)
               else train_s + (eval_s or 0.0) + rest["saving_s"] + (rest["start_s"] or 0.0))
    return {"trainable": counts["trainable"], "total": counts["total"], "percent": counts["percent"],
            "train_examples": len(data.train), "dev_examples": len(data.dev), "tokens_per_epoch": tokens,
            "steps": opts.total_steps, "epochs": epochs, "lr": opts.lr, "batch_size": opts.batch_size,
            "tokens_per_s": speed, "speed_source": source, "train_s": train_s, "evaluations": evaluations,
            "eval_rows": eval_rows, "eval_s": eval_s, **rest, "estimated_s": seconds, "device": str(loaded.device)}


def _tokens(ctx: StudioContext, template: Any, examples: list[Any], cfg: RunConfig, kind: str) -> int:
    from backend.batching import EncodeSettings, encode_examples

    settings = EncodeSettings(profile=kind, max_length=cfg.max_length, truncate=cfg.truncate)
    return sum(e.length for e in encode_examples(template, examples, ctx.model.tokenizer, settings,
                                                 ctx.model.info))


LENGTH_SAMPLE = 256   # rows encoded to know a split's mean length (a dev split can have thousands)


def _mean_length(ctx: StudioContext, template: Any, examples: Any, cfg: RunConfig, kind: str) -> float:
    """Mean tokens per row of ``examples``, from an evenly spread sample of at most LENGTH_SAMPLE rows."""
    rows = list(examples)
    if not rows:
        return 0.0
    sample = rows[::max(1, len(rows) // LENGTH_SAMPLE)][:LENGTH_SAMPLE]
    return _tokens(ctx, template, sample, cfg, kind) / len(sample)


def _throughput(ctx: StudioContext, cfg: RunConfig, model_id: str) -> tuple[float | None, str]:
    """Tokens/s of the training steps alone (dev evaluations and writes left out: the card adds the run's
    own) of the latest finished run of the same model and method on this store; runs recorded before
    writes were kept apart (no ``train/saving_s``) are passed over: their checkpoints were in that rate."""
    r = _earlier_run(ctx, cfg, model_id, lambda m: bool(m.get("train/step_tokens_per_s")) and "train/saving_s" in m)
    return (float(r.metrics["train/step_tokens_per_s"]), f"run #{r.id} on this machine") if r else (None, "")


def ran_here(r: Any) -> bool:
    """Whether run ``r`` ran on this machine: a card says "on this machine", and a shared database also
    holds runs of CLI or Ray workers elsewhere (a GPU's rate would price a CPU run). A run recorded before
    hosts carried their pid namespace says the bare hostname."""
    import socket

    from storage.runs import machine

    return r.host in (machine(), socket.gethostname())


def _earlier_run(ctx: StudioContext, cfg: RunConfig, model_id: str, recorded: Callable[[dict[str, Any]], bool]) -> Any:
    """The latest finished run of this method and model here whose metrics ``recorded`` accepts, or None."""
    for r in ctx.store.list_runs(status="succeeded", method=cfg.method.name, limit=20):
        if r.model_id == model_id and ran_here(r) and recorded(r.metrics):
            return r
    return None


def _writes_and_start(ctx: StudioContext, cfg: RunConfig, tuned: Any, opts: Any, evaluations: int,
                      model_id: str) -> dict[str, Any]:
    """What a run spends besides its steps and evaluations: writing its weights (``writes`` times their
    size, at the rate the method's last run wrote them, else timed now) and its process's start and finish
    (from earlier runs that started the same way); ``starts_job_server``: priced from warm starts only
    while this one will wait for the job server."""
    from backend.jobs import warm

    writes = _writes(opts, evaluations)
    write_s, attach_s = _measure_writes(tuned, runs_root(ctx.store, cfg.to_dict()))
    write_s, write_source = _write_rate(ctx, cfg, model_id) or (write_s, "timed now on this disk")
    cold = not (warm.available() and warm.started())   # its process will import torch itself, or wait for the server
    start_s, start_source, alike = _start_finish(ctx, model_id, write_s + attach_s, cold)
    return {"writes": writes, "saving_s": _trainable_bytes(tuned) * (writes * write_s + attach_s),
            "saving_source": write_source, "start_s": start_s, "start_source": start_source,
            "starts_job_server": cold and not alike and warm.available()}


WRITE_SAMPLE = (16 << 20, 64 << 20)   # bytes written to time this disk: enough to see its rate, not a gigabyte
STATE_COPIES = 3                       # a checkpoint: the trained weights and AdamW's two moments of each


def _writes(opts: Any, evaluations: int) -> int:
    """How many times a run writes its trained weights' size: each checkpoint (the loop's every
    ``checkpoint_every`` steps and its last), the best weights at each evaluation (at most; only a better
    one writes), and the final weights."""
    checkpoints = opts.total_steps // opts.checkpoint_every + (1 if opts.total_steps % opts.checkpoint_every else 0)
    return STATE_COPIES * checkpoints + evaluations + 1


def _trainable_bytes(tuned: Any) -> int:
    return sum(p.numel() * p.element_size() for _, p in tuned.trainable())


def _write_rate(ctx: StudioContext, cfg: RunConfig, model_id: str) -> tuple[float, str] | None:
    """Seconds per byte of the loop's writes in the latest finished run of this method and model here: a
    full fine-tuning's checkpoints (1.6 GB each) write at about half the rate a sample of 64 MB shows."""
    r = _earlier_run(ctx, cfg, model_id, lambda m: bool(m.get("train/saved_bytes") and m.get("train/saving_s")))
    return (r.metrics["train/saving_s"] / r.metrics["train/saved_bytes"], f"at run #{r.id}'s rate") if r else None


def _measure_writes(tuned: Any, root: Path) -> tuple[float, float]:
    """Seconds per byte of writing trained weights as the loop does (a copy, then safetensors) and of
    attaching a file to the store (a SHA-256 read and a copy), timed now next to where the run will write,
    on 16-64 MB of the model's own trainable tensors (padded with zeros when they are fewer)."""
    import hashlib
    import shutil
    import tempfile

    import torch
    from safetensors.torch import save_file

    total = _trainable_bytes(tuned)
    want = min(max(total, WRITE_SAMPLE[0]), WRITE_SAMPLE[1])
    sample: dict[str, Any] = {}
    size = 0
    for name, p in tuned.trainable():
        if size >= want:
            break
        flat = p.detach().reshape(-1)[:max(1, (want - size) // p.element_size())]
        sample[name] = flat
        size += flat.numel() * flat.element_size()
    if size < want:
        sample["_pad"] = torch.zeros((want - size) // 4)
        size = want
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".cost-card-", dir=root) as tmp:
            path = Path(tmp) / "w.safetensors"
            t0 = time.perf_counter()
            save_file({k: v.clone() for k, v in sample.items()}, str(path))
            t1 = time.perf_counter()
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            shutil.copyfile(path, Path(tmp) / "copy")
            t2 = time.perf_counter()
    except OSError as exc:    # the run would fail writing its first checkpoint there: say so before it starts
        raise ConfigError(f"the run's folder {root} cannot be written: {exc.strerror or exc}",
                          field="train.output_dir") from exc
    return (t1 - t0) / size, (t2 - t1) / size


START_SAMPLE = 5   # earlier runs whose start and finish are looked at (the shortest: see _start_finish)


def _start_finish(ctx: StudioContext, model_id: str, final_per_byte: float,
                  cold: bool = False) -> tuple[float | None, str, bool]:
    """Seconds of a run outside its loop and final evaluation (the process's start, loading the model,
    encoding, lineage, status) as the latest finished runs of this model here took them: their wall time
    less their loop, final evaluation and final weights' writing (priced at this disk's rate by their size,
    which differs between methods). The shortest of those that started as this one will (``cold``: its
    process imports torch itself or waits for the job server to; ``run/cold_start``; the job server's
    first run less its wait, ``run/job_server_s``, counts as a warm start too), or of any when none did;
    the third value says whether they did. None before any such run: the card says it leaves it out."""
    from backend.jobs.runner import COLD_START, SERVER_WAIT

    seen: list[tuple[int, float, float | None]] = []
    for r in ctx.store.list_runs(status="succeeded", limit=50):
        m = r.metrics
        if r.model_id != model_id or not ran_here(r) or "train/loop_s" not in m or not r.started_at \
                or not r.finished_at:
            continue
        final_write = m.get("params/trainable", 0.0) * 4 * final_per_byte
        outside = (r.finished_at - r.started_at) - m["train/loop_s"] - m.get("final/seconds", 0.0) - final_write
        seen.append((r.id, max(outside, 0.0), m.get(COLD_START)))     # None: recorded before runs said
        if m.get(SERVER_WAIT):    # the job server's first run: less that wait, it is a warm start
            seen.append((r.id, max(outside - m[SERVER_WAIT], 0.0), 0.0))
        if len({i for i, _, _ in seen}) == START_SAMPLE:
            break
    alike = [x for x in seen if x[2] is not None and bool(x[2]) == cold]
    pool = alike or seen
    if not pool:
        return None, "", False
    ids = list(dict.fromkeys(i for i, _, _ in pool))
    source = f"the shortest of run{'s' if len(ids) > 1 else ''} {', '.join(f'#{i}' for i in ids)} on this machine"
    kinds = {bool(k) for _, _, k in pool if k is not None}
    if alike:
        source += f", which started {'cold' if cold else 'warm'} as this one will"
    elif len(kinds) == 1:   # all of them started the other way: a cold start here takes seconds more than a warm one
        source += f", which started {'cold' if kinds.pop() else 'warm'}; this one will start {'cold' if cold else 'warm'}"
    return min(s for _, s, _ in pool), source, bool(alike)


def _measure(tuned: Any, loaded: Any, batch_examples: list[Any], cfg: RunConfig, opts: Any) -> float | None:
    """Tokens per second of one training step on a real batch (forward, backward and the loop's own
    optimizer step, which is most of a full fine-tuning's step), timed after an untimed first step (its
    buffer allocation and kernel choice made one configuration of a sweep look 25% slower than the same
    work at another learning rate). The copy's weights move: it is thrown away after the card."""
    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.prompts.encode import describe_tokenizer
    from backend.training.loop import make_optimizer

    if not batch_examples:
        return None
    settings = EncodeSettings(profile=loaded.kind, max_length=cfg.max_length, truncate=cfg.truncate)
    info = describe_tokenizer(loaded.tokenizer)
    encs = encode_examples(tuned.pm.template, batch_examples, loaded.tokenizer, settings, info)
    batch = collate(encs, info.pad_id, loaded.device)
    optimizer = make_optimizer(tuned, opts)[0] if tuned.trainable() else None
    tuned.pm.train()
    elapsed = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        scores = tuned.pm(batch)
        if scores.requires_grad:
            scores.sum().backward()
            if optimizer is not None:
                optimizer.step()
        elapsed = time.perf_counter() - t0
        tuned.pm.zero_grad(set_to_none=True)
    return sum(e.length for e in encs) / elapsed if elapsed > 0 else None


def _measure_eval(ctx: StudioContext, tuned: Any, examples: list[Any], cfg: RunConfig) -> float | None:
    """Tokens per second of the run's own evaluation (``backend.evaluate``, no gradients) on up to one
    evaluation batch of ``examples``: a whole batch, since a smaller one runs slower per token (SmolLM2, demo
    rows: 16 rows priced the run's evaluations 19% dearer than 32)."""
    from backend.batching import EncodeSettings
    from backend.evaluate import evaluate

    if not examples:
        return None
    loaded = ctx.model.get()
    settings = EncodeSettings(profile=loaded.kind, max_length=cfg.max_length, truncate=cfg.truncate)
    tuned.pm.eval()
    evaluate(tuned.pm, loaded.tokenizer, examples[:2], settings=settings, with_predictions=False)   # untimed: first call
    seconds = evaluate(tuned.pm, loaded.tokenizer, examples, settings=settings, batch_size=cfg.eval.batch_size,
                       with_predictions=False).metrics["seconds"]
    tokens = _tokens(ctx, tuned.pm.template, examples, cfg, loaded.kind)
    return tokens / seconds if seconds > 0 else None
