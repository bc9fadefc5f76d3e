"""The soft prompt's path through training: its input vectors at the start and at every evaluation.

Why keep them: the resumable checkpoint is overwritten and only the final (or best) weights are saved,
so how far a soft prompt moved, and when, could not be read back afterwards. The vectors are small
(soft tokens x hidden size), so each evaluation adds one tensor ``step_<n>`` to
``final/soft_trajectory.safetensors``, which becomes a run artifact with the trained weights; ``step_0``
is the initialisation itself, exactly as training started from it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TRAJECTORY = "soft_trajectory.safetensors"


def soft_rows(pm: torch.nn.Module) -> torch.Tensor | None:
    """(n, H) input vectors the soft tokens 1..n feed the model (P-tuning: its encoder's output), or None
    when the run has no soft tokens."""
    emb = getattr(pm, "soft_embedding", None)
    n = getattr(getattr(pm, "template", None), "num_soft_tokens", 0)
    if emb is None or not n:
        return None
    ids = torch.arange(1, n + 1, device=pm.plm.get_input_embeddings().weight.device)
    with torch.no_grad():
        return emb(ids).float().cpu()


def record_soft(out_dir: Path, pm: torch.nn.Module, step: int) -> None:
    """Add the soft vectors at ``step`` to the run's trajectory (nothing for runs without soft tokens);
    written to a temporary file and renamed, so a killed process leaves the previous trajectory."""
    rows = soft_rows(pm)
    if rows is None:
        return
    path = Path(out_dir) / "final" / TRAJECTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(path)) if path.exists() else {}
    tensors[f"step_{int(step):09d}"] = rows.contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def read_trajectory(path: Path) -> list[tuple[int, torch.Tensor]]:
    """The recorded (step, vectors) pairs in step order (empty when the file is absent)."""
    path = Path(path)
    if not path.exists():
        return []
    return sorted((int(k.split("_", 1)[1]), v) for k, v in load_file(str(path)).items() if k.startswith("step_"))
