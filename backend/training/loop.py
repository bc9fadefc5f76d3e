"""The training loop: AdamW, linear warmup/decay, gradient accumulation and clipping, evaluation every
N steps, early stopping, best-checkpoint tracking, cancel within one step, exact resume.

Batch order is a pure function of (seed, step): micro-batch ``m`` is batch ``m % n`` of epoch ``m // n``,
whose order is a seeded shuffle of length-sorted batches. Together with the RNG state in the checkpoint
this makes a resumed run take the same steps as an uninterrupted one, and the same config + seed give
the same metrics on CPU.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

from backend.batching import EncodeSettings, collate, length_sorted_batches, split_by_tokens
from backend.cpu_memory import cpu_buffers, mode_for
from backend.evaluate import evaluate
from backend.methods.build import TunedModel
from backend.prompts.encode import Encoded
from backend.prompts.example import Example
from backend.training.checkpoint import (has_checkpoint, load_checkpoint, load_trainable_state, save_checkpoint,
                                         trainable_state)
from backend.training.events import Progress, Sink
from backend.training.options import SOFT_PREFIXES, Resolved
from backend.training.trajectory import record_soft

BEST = "best.safetensors"


@dataclass
class LoopResult:
    status: str                      # "succeeded" | "cancelled"
    steps: int
    best_step: int | None = None
    best_metric: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    start_step: int = 0              # where this process began (a resumed run: its checkpoint's step)
    best_loaded: bool = False        # the weights returned are the best dev evaluation's, not the last step's


@dataclass
class TrainData:
    encoded: list[Encoded]
    labels: list[int]
    dev: Sequence[Example]
    settings: EncodeSettings
    pad_id: int
    eval_batch_size: int = 32


def make_optimizer(tuned: TunedModel, opts: Resolved) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with two groups (soft tokens / head at ``soft_lr``, the rest at ``lr``) and a linear
    warmup-then-decay schedule."""
    soft, rest = [], []
    for name, p in tuned.trainable():
        (soft if name.startswith(SOFT_PREFIXES) else rest).append(p)
    groups = [g for g in ({"params": rest, "lr": opts.lr}, {"params": soft, "lr": opts.soft_lr}) if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=opts.weight_decay)
    warm, total = opts.warmup_steps, opts.total_steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class BatchPlan:
    """Which examples form micro-batch ``m`` (deterministic; see the module docstring)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(length_sorted_batches(self.lengths, batch_size))
        self._cache: tuple[int, list[list[int]]] | None = None

    def __call__(self, m: int) -> tuple[list[int], float]:
        epoch, pos = divmod(m, self.per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, length_sorted_batches(self.lengths, self.batch_size,
                                                        shuffle_seed=self.seed * 1009 + epoch))
        return self._cache[1][pos], epoch + pos / self.per_epoch


def _evaluate(tuned: TunedModel, tokenizer: Any, data: TrainData) -> dict[str, Any]:
    tuned.pm.eval()
    try:
        res = evaluate(tuned.pm, tokenizer, data.dev, settings=data.settings, batch_size=data.eval_batch_size,
                       with_predictions=False)
    finally:
        tuned.pm.train()
    return res.metrics


def train_loop(tuned: TunedModel, tokenizer: Any, data: TrainData, opts: Resolved, *, seed: int,
               sink: Sink, out_dir: Path, accelerator: Any,
               cancel_check: Callable[[], bool] | None = None, resume: bool = False) -> LoopResult:
    pm = tuned.pm
    optimizer, scheduler = make_optimizer(tuned, opts)
    lengths = [e.length for e in data.encoded]
    plan = BatchPlan(lengths, opts.batch_size, seed)
    state: dict[str, Any] = {"step": 0, "best_metric": None, "best_step": None, "bad_evals": 0, "history": []}
    if resume and has_checkpoint(out_dir):
        state = load_checkpoint(out_dir, pm, optimizer, scheduler)
    start_step = state["step"]
    pm_prepared, optimizer_prepared = accelerator.prepare(pm, optimizer)
    labels = torch.tensor(data.labels, dtype=torch.long)
    progress = Progress(sink, opts.total_steps, state["step"])
    sink.emit("train/total_steps", opts.total_steps, state["step"])
    device = accelerator.device
    # Under ``accelerate launch`` each process takes every n-th micro-batch; DDP averages the gradients.
    nproc, rank = accelerator.num_processes, accelerator.process_index
    main = accelerator.is_main_process
    pm.train()
    if main and state["step"] == 0:
        _timed(progress, record_soft, out_dir, pm, 0)     # the initialisation: where drift is measured from (trajectory.py)
    status = "succeeded"
    # CPU: activation buffers kept for the next step or returned to the OS, by the memory there is (backend/cpu_memory.py).
    mode = mode_for(pm, device.type, opts.cpu_memory)
    if mode is not None:
        sink.emit("train/cpu_buffers_kept", float(mode == "fast"), state["step"])
    with cpu_buffers(mode):
        while state["step"] < opts.total_steps:
            if cancel_check is not None and cancel_check():
                status = "cancelled"
                if main and state["step"] % opts.checkpoint_every:   # steps since the last one: keep them
                    _timed(progress, save_checkpoint, out_dir, pm, optimizer, scheduler, state)
                break
            step = state["step"]
            loss_sum, tokens, epoch = 0.0, 0, 0.0
            work: list[tuple[list[int], int]] = []
            for micro in range(opts.grad_accum):
                idx, epoch = plan((step * opts.grad_accum + micro) * nproc + rank)
                # Chunks of the batch within the token budget; summed losses over len(idx) = the batch's mean.
                work += [(chunk, len(idx)) for chunk in
                         split_by_tokens(idx, lengths, opts.micro_batch_tokens, packed=pm.packs_rows)]
            for k, (chunk, size) in enumerate(work):
                # Under DDP only the step's last backward all-reduces: ranks may cut their batches into different
                # numbers of chunks, and one synchronisation per optimizer step is all the step needs.
                with contextlib.nullcontext() if k == len(work) - 1 else accelerator.no_sync(pm_prepared):
                    batch = collate([data.encoded[i] for i in chunk], data.pad_id, device)
                    with accelerator.autocast():
                        logp = pm_prepared(batch)
                        loss = tuned.method.batch_loss(pm, logp, labels[chunk].to(device))
                        loss = loss / (size * opts.grad_accum)
                    accelerator.backward(loss)
                loss_sum += float(loss.detach())
                tokens += int(batch["attention_mask"].sum())
            if opts.max_grad_norm > 0:
                accelerator.clip_grad_norm_([p for _, p in tuned.trainable()], opts.max_grad_norm)
            optimizer_prepared.step()
            scheduler.step()
            optimizer_prepared.zero_grad(set_to_none=True)
            state["step"] = step + 1
            progress.step(state["step"], loss=loss_sum, lr=scheduler.get_last_lr()[0], epoch=epoch, tokens=tokens)
            stop = False
            if opts.eval_every and (state["step"] % opts.eval_every == 0 or state["step"] == opts.total_steps):
                t_eval, saving = time.perf_counter(), progress.saving
                with accelerator.autocast():   # evaluated in the precision it trains in
                    stop = _eval_step(tuned, tokenizer, data, opts, state, progress, out_dir, save=main)
                progress.pause(time.perf_counter() - t_eval - (progress.saving - saving))   # its writes: saved()
            checkpoint_due = state["step"] % opts.checkpoint_every == 0 or state["step"] == opts.total_steps
            if main and (stop or checkpoint_due):
                _timed(progress, save_checkpoint, out_dir, pm, optimizer, scheduler, state)
            if stop:
                sink.emit("train/early_stopped", 1.0, state["step"])
                break
    progress.close(state["step"])
    sink.flush()
    accelerator.wait_for_everyone()     # the main process has written the best weights
    best_loaded = state["best_step"] is not None and (Path(out_dir) / BEST).exists()
    if best_loaded:
        load_trainable_state(pm, load_file(str(Path(out_dir) / BEST)))
    pm.eval()
    return LoopResult(status=status, steps=state["step"], best_step=state["best_step"],
                      best_metric=state["best_metric"], history=state["history"], start_step=start_step,
                      best_loaded=best_loaded)


def _timed(progress: Progress, write: Callable[..., Path | None], *args: Any) -> None:
    """Run ``write`` (which returns what it wrote, a file or a folder, or None) with its time and bytes
    told to ``progress``."""
    t0 = time.perf_counter()
    out = write(*args)
    seconds = time.perf_counter() - t0
    files = [] if out is None else [out] if out.is_file() else [f for f in out.rglob("*") if f.is_file()]
    progress.saved(seconds, sum(f.stat().st_size for f in files))


def _save_best(pm: torch.nn.Module, path: Path) -> Path:
    save_file(trainable_state(pm), str(path))
    return path


def _eval_step(tuned: TunedModel, tokenizer: Any, data: TrainData, opts: Resolved, state: dict[str, Any],
               progress: Progress, out_dir: Path, save: bool = True) -> bool:
    """Evaluate on the dev split, keep the best weights (``save``: the main process only, the weights are
    the same on every rank); True when early stopping says stop."""
    metrics = _evaluate(tuned, tokenizer, data)
    progress.metrics("eval", metrics, state["step"])
    value = float(metrics.get(opts.metric, math.nan))
    state["history"].append({"step": state["step"], opts.metric: value})
    if save:
        _timed(progress, record_soft, out_dir, tuned.pm, state["step"])
    best = state["best_metric"]
    if best is None or value > best:
        state.update(best_metric=value, best_step=state["step"], bad_evals=0)
        if save:
            _timed(progress, _save_best, tuned.pm, Path(out_dir) / BEST)
        return False
    state["bad_evals"] += 1
    return bool(opts.patience) and state["bad_evals"] >= opts.patience
