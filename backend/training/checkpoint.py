"""Resumable checkpoints as safetensors + JSON (no pickle anywhere).

A checkpoint holds the trainable tensors (the whole P-tuning encoder, not just its output), AdamW's
per-parameter state, the scheduler's step, the loop position and the RNG state, so a resumed run takes
the same steps the uninterrupted run would have taken. It is written to a temporary folder, fsynced, and
swapped in by two renames (current -> ``.checkpoint.old``, temp -> current): a process killed at any point
leaves a complete checkpoint under one of those two names, and loading reads whichever exists.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from storage.artifacts import fsync_path

CKPT = "checkpoint"


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous().clone() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``module``'s parameters; every name must exist (a mismatch is a bug or a
    wrong run/config pairing, so it fails loudly)."""
    params = dict(module.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise KeyError(f"saved tensors not in the model: {missing[:3]}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def _optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                key = f"{names[id(p)]}::{k}"
                if torch.is_tensor(v):
                    tensors[key] = v.detach().cpu().contiguous()
                else:
                    scalars[key] = v
    return tensors, scalars


def save_checkpoint(out_dir: Path, module: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, loop_state: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    final = out_dir / CKPT
    tmp = out_dir / f".{CKPT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = {id(p): n for n, p in module.named_parameters() if p.requires_grad}
    save_file(trainable_state(module), str(tmp / "trainable.safetensors"))
    tensors, scalars = _optimizer_tensors(optimizer, names)
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(tensors or {"_empty": torch.zeros(1)}, str(tmp / "optimizer.safetensors"))
    save_file(rng, str(tmp / "rng.safetensors"))
    meta = {"loop": loop_state, "optimizer_scalars": scalars,
            "scheduler": scheduler.state_dict() if scheduler is not None else None}
    (tmp / "state.json").write_text(json.dumps(meta, default=float))   # last: its presence marks "complete"
    for f in tmp.iterdir():
        fsync_path(f)
    fsync_path(tmp)
    old = out_dir / f".{CKPT}.old"
    if not final.exists() and (old / "state.json").exists():
        os.replace(old, final)   # an earlier save died between its renames: old is the live checkpoint
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)   # a kill from here to the next rename leaves old, which _current() reads
    os.replace(tmp, final)
    fsync_path(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _current(out_dir: Path) -> Path | None:
    """The complete checkpoint to resume from: ``checkpoint/``, or ``.checkpoint.old/`` when a save was
    killed between its two renames (without this fallback such a run would restart from step 0 while its
    record says it resumed)."""
    for path in (Path(out_dir) / CKPT, Path(out_dir) / f".{CKPT}.old"):
        if (path / "state.json").exists():
            return path
    return None


def has_checkpoint(out_dir: Path) -> bool:
    return _current(out_dir) is not None


def load_checkpoint(out_dir: Path, module: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the loop state."""
    ckpt = _current(out_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no complete checkpoint under {out_dir}")
    load_trainable_state(module, load_file(str(ckpt / "trainable.safetensors")))
    meta = json.loads((ckpt / "state.json").read_text())
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    scalars = meta["optimizer_scalars"]
    by_name = {n: p for n, p in module.named_parameters() if p.requires_grad}
    for key in set(tensors) | set(scalars):
        if key == "_empty":
            continue
        name, _, field = key.rpartition("::")
        p = by_name[name]
        value = tensors[key].to(p.device) if key in tensors else scalars[key]
        optimizer.state.setdefault(p, {})[field] = value
    if scheduler is not None and meta["scheduler"] is not None:
        scheduler.load_state_dict(meta["scheduler"])
        for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"] = lr   # the scheduler only writes lrs on step(); the next step needs them now
    rng = load_file(str(ckpt / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return meta["loop"]
