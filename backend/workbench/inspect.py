"""Soft-prompt inspector: what each trained soft token is closest to, and how far it moved.

For every soft token of a trained run (a template's ``{soft}`` tokens, prompt tuning's prepended tokens,
the output of P-tuning's encoder), the vocabulary rows nearest to it by cosine and its drift from its
initialisation (cosine to the initial vector and the relative L2 change), and the drift over training:
the vectors recorded at the start and at every evaluation (``backend.training.trajectory``). Runs
trained before the trajectory was kept get their initial vectors rebuilt the way training built them (the
run's method options and training seed). Prefix tuning trains keys and values per layer, not input
vectors: it has nothing to read as tokens and is refused with that reason.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from backend.errors import ConfigError


def soft_vectors(pm: Any) -> torch.Tensor:
    """(n, H) input vectors the soft tokens 1..n feed the model (P-tuning: its encoder's output)."""
    from backend.training.trajectory import soft_rows

    rows = soft_rows(pm)
    if rows is None:
        raise ConfigError("this run has no soft tokens to inspect (prefix tuning trains per-layer keys and "
                          "values, LoRA and other deltas change weights, not input vectors)")
    return rows


def nearest_tokens(vectors: torch.Tensor, embedding: torch.Tensor, tokenizer: Any,
                   k: int = 5) -> list[list[dict[str, Any]]]:
    """Per vector, the ``k`` vocabulary rows with the highest cosine similarity."""
    emb = torch.nn.functional.normalize(embedding.detach().float().cpu(), dim=-1)
    sims = torch.nn.functional.normalize(vectors.float(), dim=-1) @ emb.T
    top = sims.topk(min(k, emb.shape[0]), dim=-1)
    return [[{"token": tokenizer.convert_ids_to_tokens(int(t)), "id": int(t), "cosine": float(s)}
             for s, t in zip(vals.tolist(), idx.tolist())] for vals, idx in zip(top.values, top.indices)]


def drift(trained: torch.Tensor, initial: torch.Tensor) -> list[dict[str, float]]:
    """Per soft token: cosine to its initial vector and ||trained - initial|| / ||initial||."""
    if trained.shape != initial.shape:
        raise ConfigError(f"trained soft tokens {tuple(trained.shape)} and initial ones {tuple(initial.shape)} differ")
    cos = torch.nn.functional.cosine_similarity(trained.float(), initial.float(), dim=-1)
    rel = (trained.float() - initial.float()).norm(dim=-1) / initial.float().norm(dim=-1).clamp_min(1e-12)
    return [{"cosine_to_init": float(c), "relative_change": float(r)} for c, r in zip(cos, rel)]


def inspect_run(run_dir: Path, loaded: Any, k: int = 5) -> dict[str, Any]:
    """Inspect the soft tokens of the trained run saved in ``run_dir`` on ``loaded``'s base model."""
    from backend.methods.build import build_tuned_model
    from backend.prompts.verbalizer import parse_verbalizer
    from backend.training.artifacts import load_trained, read_run_meta

    from backend.training.trajectory import TRAJECTORY, read_trajectory

    meta = read_run_meta(run_dir)
    trained = soft_vectors(load_trained(run_dir, copy.deepcopy(loaded.model), loaded.tokenizer).pm)
    path = read_trajectory(Path(meta["_dir"]) / TRAJECTORY)
    if path and path[0][0] == 0:
        init, init_from = path[0][1], "recorded when training started"
    else:   # a run trained before trajectories were kept: rebuilt from its options and seed
        v = meta["verbalizer"]
        verb = parse_verbalizer(v, meta["classes"]) if "label_words" in v else parse_verbalizer(v)
        seed = int((meta["config"].get("train") or {}).get("seed", 0))
        init = soft_vectors(build_tuned_model(copy.deepcopy(loaded.model), loaded.tokenizer, meta["kind"],
                                              meta["config"]["template"], verb, meta["method"], meta["options"],
                                              seed=seed).pm)
        init_from = "rebuilt from the run's options and seed"
    emb = loaded.model.get_input_embeddings().weight
    near, moved, start = nearest_tokens(trained, emb, loaded.tokenizer, k), drift(trained, init), \
        nearest_tokens(init, emb, loaded.tokenizer, 1)
    return {"method": meta["method"], "soft_tokens": len(near), "initialisation": init_from,
            "tokens": [{"index": i + 1, "nearest": n, "initial_nearest": s[0], **d}
                       for i, (n, d, s) in enumerate(zip(near, moved, start))],
            "trajectory": drift_over_training(path, init)}


def drift_over_training(path: list[tuple[int, torch.Tensor]], init: torch.Tensor) -> list[dict[str, Any]]:
    """Per recorded step (the start and every evaluation): the soft tokens' mean and largest relative
    change from ``init`` and their mean cosine to it."""
    out = []
    for step, vectors in path:
        d = drift(vectors, init)
        rel = [x["relative_change"] for x in d]
        out.append({"step": step, "mean_relative_change": sum(rel) / len(rel), "max_relative_change": max(rel),
                    "mean_cosine_to_init": sum(x["cosine_to_init"] for x in d) / len(d)})
    return out
