"""Soft-prompt ensembles (Lester et al. 2021, "prompt ensembling"): several soft prompts trained on one
frozen base model, evaluated in one batch and combined into one prediction.

Why one batch: the prompts differ only in their soft vectors, so each row is replicated once per prompt
and every replica gets its own soft-token ids (prompt p's token s becomes id ``p * n + s`` in one stacked
table); one forward over P x N rows scores all prompts, as the paper does, instead of P passes.
Combined by ``mean`` (the mean class probability) or ``majority`` (each prompt votes its top class; the
vote shares are the answer, ties broken by the mean probability).

Members must share everything but their soft vectors: template, label words, classes, model kind, and no
other trained part (a soft verbalizer, a class head, adapters). The stacked vectors are saved with the
ensemble's run, so it serves from its own artifacts (and its bundle) without its members.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from backend.batching import EncodeSettings, collate, encode_examples, length_sorted_batches
from backend.errors import ConfigError
from backend.prompt_model import PromptModel
from backend.prompts.example import Example
from backend.training.trajectory import soft_rows

COMBINE = ("mean", "majority")
SOFT_METHODS = ("prompt-tuning", "soft-prompt", "p-tuning")
VECTORS = "soft_prompts.safetensors"      # (P, n, H) stacked soft vectors, key "soft_prompts"
MAX_PROMPTS = 16


def check_members(metas: Sequence[dict[str, Any]]) -> None:
    """Refuse members that differ in anything but their soft vectors (said per member)."""
    if not 2 <= len(metas) <= MAX_PROMPTS:
        raise ConfigError(f"a soft-prompt ensemble takes 2 to {MAX_PROMPTS} trained runs", field="runs")
    first = metas[0]
    for m in metas:
        who = f"run {m.get('run_id', '?')}"
        if m["method"] not in SOFT_METHODS:
            raise ConfigError(f"{who} is a {m['method']} run; a soft-prompt ensemble takes "
                              f"{', '.join(SOFT_METHODS)} runs", field="runs")
        if (m["options"] or {}).get("head") not in (None, "words", "label-words"):
            raise ConfigError(f"{who} trained a {m['options'].get('head')} head as well as its soft prompt; "
                              "only soft prompts on label words can be ensembled", field="runs")
        for key in ("template_text", "verbalizer", "classes", "kind"):
            if m[key] != first[key]:
                raise ConfigError(f"{who} differs from run {first.get('run_id', '?')} in its {key.replace('_', ' ')}:"
                                  " members may differ only in their soft prompts", field="runs")
        if m["config"].get("model") != first["config"].get("model"):
            raise ConfigError(f"{who} was trained on another base model", field="runs")
        if m.get("model_revision") != first.get("model_revision"):   # same name, other weights (a folder rewritten)
            raise ConfigError(f"{who} was trained on another revision of the base model "
                              f"({str(m.get('model_revision'))[:12]}, not {str(first.get('model_revision'))[:12]})",
                              field="runs")


def stack_vectors(pms: Sequence[PromptModel]) -> torch.Tensor:
    """(P, n, H): each member's soft-token input vectors (P-tuning: its encoder's output)."""
    rows = [soft_rows(pm) for pm in pms]
    if any(r is None for r in rows) or len({tuple(r.shape) for r in rows}) != 1:   # type: ignore[union-attr]
        raise ConfigError("every member needs the same number of soft tokens", field="runs")
    return torch.stack(rows)   # type: ignore[arg-type]


@dataclasses.dataclass
class SoftEnsemble:
    pm: PromptModel                  # the members' shared template and verbalizer; its soft table is the stack
    prompts: int
    tokens: int
    combine: str = "mean"
    batch_size: int = 32

    @classmethod
    def build(cls, pm: PromptModel, vectors: torch.Tensor, combine: str) -> SoftEnsemble:
        """``pm`` (any member, on the shared base) scores every prompt once its soft table is the stack."""
        if combine not in COMBINE:
            raise ConfigError(f"combine by {' or '.join(COMBINE)}, not {combine!r}", field="combine")
        p, n, h = vectors.shape
        table = nn.Embedding(p * n + 1, h).to(pm.plm.get_input_embeddings().weight.device)
        with torch.no_grad():
            table.weight.zero_()
            table.weight[1:] = vectors.reshape(p * n, h).to(table.weight.device, table.weight.dtype)
        table.requires_grad_(False)
        pm.soft_embedding = table
        pm.eval()
        return cls(pm, p, n, combine)

    def member_scores(self, examples: Sequence[Example], tokenizer: Any, settings: EncodeSettings, info: Any,
                      should_stop: Callable[[], bool] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(P, N, C) class log-probs of every prompt, from one pass over the replicated rows.
        ``progress(rows done, rows)`` after every batch; ``should_stop()`` true before one raises
        InterruptedError."""
        encs = encode_examples(self.pm.template, list(examples), tokenizer, settings, info)
        rows = [dataclasses.replace(e, soft_token_ids=tuple(s + p * self.tokens if s > 0 else 0
                                                            for s in e.soft_token_ids))
                for p in range(self.prompts) for e in encs]
        out = np.empty((len(rows), len(self.pm.verbalizer.classes)), dtype=np.float32)
        done = 0
        with torch.inference_mode():
            for idx in length_sorted_batches([e.length for e in rows], self.batch_size):
                if should_stop is not None and should_stop():
                    raise InterruptedError("cancelled between two batches")
                batch = collate([rows[i] for i in idx], info.pad_id, self.pm.label_rows.device)
                out[idx] = self.pm(batch).float().cpu().numpy()
                done += len(idx)
                if progress is not None:
                    progress(done, len(rows))
        return out.reshape(self.prompts, len(encs), -1)

    def scores(self, examples: Sequence[Example], tokenizer: Any, settings: EncodeSettings, info: Any) -> torch.Tensor:
        """(N, C) log-probs of the combination."""
        return torch.from_numpy(combine(self.member_scores(examples, tokenizer, settings, info), self.combine))


def combine(member: np.ndarray, how: str) -> np.ndarray:
    """(P, N, C) member log-probs -> (N, C) log-probs: mean probability, or vote shares (ties to the mean)."""
    mean = np.exp(member).mean(0)
    if how == "mean":
        return np.log(np.clip(mean, 1e-12, None)).astype(np.float32)
    votes = np.zeros_like(mean)
    for p in range(member.shape[0]):
        votes[np.arange(member.shape[1]), member[p].argmax(-1)] += 1.0
    shares = votes / member.shape[0] + 1e-6 * mean       # a tie goes to the class with more mean probability
    return np.log(np.clip(shares / shares.sum(-1, keepdims=True), 1e-12, None)).astype(np.float32)


SPEC_NAME = "soft_ensemble.json"


def trained_rows(trains: Sequence[Sequence[Example]]) -> list[Example]:
    """Every row any member trained on, once (by content), in the order first seen: the ensemble's training
    data, which its record names (members trained on different samples each add theirs)."""
    from backend.data.fingerprint import example_key

    seen: set[str] = set()
    rows = []
    for train in trains:
        for ex in train:
            key = example_key(ex)
            if key not in seen:
                seen.add(key)
                rows.append(ex)
    return rows


@dataclasses.dataclass
class Plan:
    """What an ensemble of ``ids`` is scored on and recorded as, checked before anything runs."""
    ids: list[int]
    metas: list[dict[str, Any]]       # each member's run.json (+ its run id)
    dev: Any                          # the first member's dev rows (a pipeline Split)
    train_rows: list[Example]         # every row any member trained on
    config: Any                       # the ensemble run's RunConfig


def plan_ensemble(store: Any, folders: dict[int, Any], combine_by: str) -> Plan:
    """Check the trained runs in ``folders`` (run id -> its materialised trained folder) as members of one
    soft-prompt ensemble scored on the first run's dev rows: they differ only in their soft prompts, and
    none trained on a dev row (ConfigError naming the run otherwise)."""
    from pathlib import Path

    from backend.config import RunConfig
    from backend.data.splitting import check_disjoint
    from backend.pipeline import load_split
    from backend.training.artifacts import read_run_meta

    if combine_by not in COMBINE:
        raise ConfigError(f"combine by {' or '.join(COMBINE)}, not {combine_by!r}", field="combine")
    ids = list(folders)
    metas = [read_run_meta(Path(folders[i])) | {"run_id": i, "model_revision": store.get_run(i).model_revision}
             for i in ids]
    check_members(metas)
    cfgs = [RunConfig.from_dict(store.get_run(i).config) for i in ids]
    dev = load_split(cfgs[0], "eval")
    trains = [load_split(c, "train") for c in cfgs]
    for i, train in zip(ids, trains):
        try:
            check_disjoint(train.examples, dev.examples)
        except Exception as exc:
            raise ConfigError(f"run {i} trained on rows of the dev set it would be scored on: {exc}", field="runs") from None
    one = dataclasses.replace(cfgs[0], name=f"{cfgs[0].name or 'soft'} soft-prompt ensemble ({combine_by})",
                              tags=[t for t in cfgs[0].tags if t != "resume"] + ["soft-ensemble"])
    return Plan(ids, metas, dev, trained_rows([t.examples for t in trains]), one)


def score_into(store: Any, run_id: int, plan: Plan, folders: dict[int, Any], combine_by: str, loaded: Any, *,
               should_stop: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None,
               selection: dict[str, float] | None = None) -> dict[str, Any]:
    """Score ``plan``'s members as one ensemble in one batch over the replicated dev rows and record it
    on run ``run_id`` (its lineage, the stacked vectors and spec it serves from, metrics, predictions);
    returns the result the page shows. The caller records the run's end. ``selection``: how many of these
    dev rows chose a member's checkpoint or configuration (``backend.workbench.selection``), recorded
    with the score (with ``eval/n``, the rows scored) so the run's caveats say the score is optimistic."""
    import json
    from pathlib import Path

    from safetensors.torch import save as save_tensors

    from backend.evaluate import classification_metrics, gold_indices
    from backend.pipeline import settings_for
    from backend.prompts.encode import describe_tokenizer
    from backend.prompts.verbalizer import parse_verbalizer
    from backend.recording import record_started
    from backend.training.artifacts import load_trained
    from backend.workbench import stats

    ids, dev = plan.ids, plan.dev
    pms = [load_trained(Path(folders[i]), loaded.model, loaded.tokenizer).pm for i in ids]
    for i, pm in zip(ids, pms):
        if pm.soft_verbalizer is not None or getattr(pm, "class_head", None) is not None:
            raise ConfigError(f"run {i} trained a head besides its soft prompt; it cannot be ensembled", field="runs")
    vectors = stack_vectors(pms)
    ens = SoftEnsemble.build(pms[0], vectors, combine_by)
    classes = list(pms[0].verbalizer.classes)
    verb = parse_verbalizer(plan.metas[0]["verbalizer"], plan.metas[0]["classes"])
    record_started(store, run_id, plan.config, loaded=loaded, verbalizer=verb, train=plan.train_rows,
                   eval=dev.examples, classes=classes, how=dev.how, counts=dev.counts)
    gold = gold_indices(dev.examples, classes)
    member = ens.member_scores(dev.examples, loaded.tokenizer, settings_for(plan.config, loaded.kind),
                               describe_tokenizer(loaded.tokenizer), should_stop=should_stop, progress=progress)
    scores = combine(member, combine_by)
    pred = scores.argmax(-1)
    m = classification_metrics(gold, pred.tolist(), classes)
    members = [{"run_id": i, "uid": store.get_run(i).uid, "accuracy": float((member[k].argmax(-1) == np.asarray(gold)).mean())}
               for k, i in enumerate(ids)]
    spec = {"combine": combine_by, "prompts": ens.prompts, "tokens": ens.tokens, "members": members,
            "method": plan.metas[0]["method"]}
    store.attach_artifact(run_id, "config", "run.json", (Path(folders[ids[0]]) / "run.json").read_bytes())
    store.attach_artifact(run_id, "config", SPEC_NAME, json.dumps(spec, indent=2).encode())
    store.attach_artifact(run_id, "weights", VECTORS, save_tensors({"soft_prompts": vectors.contiguous()}))
    store.append_metrics(run_id, [{"key": "eval/accuracy", "step": 0, "value": m["accuracy"]},
                                  {"key": "eval/macro_f1", "step": 0, "value": m["macro_f1"]},
                                  {"key": "eval/n", "step": 0, "value": float(len(gold))},
                                  *[{"key": f"eval/member_{k + 1}_accuracy", "step": 0, "value": x["accuracy"]}
                                    for k, x in enumerate(members)],
                                  *[{"key": k, "step": 0, "value": v} for k, v in (selection or {}).items()]])
    probs = np.exp(scores)
    store.add_predictions(run_id, [{"index": r, "guid": str(dev.examples[r].guid), "gold": classes[g],
                                    "predicted": classes[int(pred[r])],
                                    "probs": {c: float(probs[r, k]) for k, c in enumerate(classes)}}
                                   for r, g in enumerate(gold)])
    return {"run_id": run_id, "combine": combine_by, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "accuracy_ci": stats.accuracy_interval(gold, pred), "members": members,
            "n": len(gold), "prompts": ens.prompts}
