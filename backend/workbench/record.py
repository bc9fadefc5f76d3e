"""A comparison recorded as a group of runs: one zero-shot run per template x verbalizer, each with its
full lineage (through ``backend.recording``, like every run), tagged with the group's id so the Runs tab
and ``python -m storage runs --tag`` show them together, with the paired statistics as metrics.

An ensemble of the comparison's combinations is recorded the same way, as one run of method
``ensemble``: its lineage lists the *training* rows its weights were fitted on and the dev rows it was
scored on, and its ``ensemble.json`` artifact holds everything needed to serve it again (each member's
template, verbalizer and their versions, the content-free priors, the weights or the fitted classifier),
so it exports in a bundle and answers in the Playground like any trained run."""
from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, Sequence

import numpy as np

from backend.config import RunConfig
from backend.pipeline import Split, build_verbalizer
from backend.workbench import stats
from backend.workbench.compare import Comparison, Prompt
from backend.workbench.ensemble import Ensemble

ENSEMBLE = "ensemble"                      # the method an ensemble run is recorded with
ENSEMBLE_KIND, ENSEMBLE_NAME = "config", "ensemble.json"


def record_comparison(store: Any, cfg: RunConfig, loaded: Any, cmp: Comparison, templates: Sequence[Prompt],
                      verbalizers: Sequence[Prompt], dev: Split, *, baseline: int = 0,
                      project: str | None = None, group: str | None = None,
                      parent_run_id: int | None = None) -> dict[str, Any]:
    """Record every combination of ``cmp`` as a succeeded zero-shot run; returns the group tag and run ids
    (``parent_run_id``: the comparison job that produced them)."""
    from backend.recording import create_run

    group = group or f"compare:{uuid.uuid4().hex[:12]}"
    tables = {False: cmp.table(baseline=baseline), True: cmp.table(baseline=baseline, calibrated=True)}
    by_name_t = {p.name: p.content for p in templates}
    by_name_v = {p.name: p.content for p in verbalizers}
    run_ids, members = [], []
    for i, s in enumerate(cmp.scored):
        one = dataclasses.replace(cfg, template=str(by_name_t[s.template]), verbalizer=by_name_v[s.verbalizer],
                                  name=cfg.name, tags=[*[t for t in cfg.tags if t != "comparison"], "compare",
                                                        group, f"template:{s.template}",
                                                        f"verbalizer:{s.verbalizer}"])
        verb = build_verbalizer(one.verbalizer, cmp.classes)
        # created running (this process): a queued row would be claimed by any job runner on the database
        run_id = create_run(store, one, method="zero-shot", loaded=loaded, verbalizer=verb, train=[],
                            eval=dev.examples, classes=cmp.classes, tags=one.tags, project=project,
                            how=dev.how, counts=dev.counts, parent_run_id=parent_run_id)
        metrics = []
        for calibrated, table in tables.items():
            row, prefix = table[i], ("eval/calibrated_" if calibrated else "eval/")
            metrics += [{"key": f"{prefix}accuracy", "step": 0, "value": row["accuracy"]},
                        {"key": f"{prefix}macro_f1", "step": 0, "value": row["macro_f1"]},
                        {"key": f"{prefix}accuracy_ci_low", "step": 0, "value": row["accuracy_ci"][0]},
                        {"key": f"{prefix}accuracy_ci_high", "step": 0, "value": row["accuracy_ci"][1]}]
            if row["vs_baseline"] is not None:
                metrics.append({"key": f"{prefix}mcnemar_p", "step": 0, "value": row["vs_baseline"]["p_value"]})
        store.append_metrics(run_id, metrics)
        store.add_predictions(run_id, _predictions(cmp.classes, cmp.gold, cmp.guids, np.exp(s.log_probs)))
        store.set_status(run_id, "succeeded")
        run_ids.append(run_id)
        info = store.get_run(run_id)
        members.append({"name": f"{s.template}+{s.verbalizer}", "run_id": run_id, "template": one.template,
                        "verbalizer": verb.canonical_json(), "template_version_id": info.template_version_id,
                        "verbalizer_version_id": info.verbalizer_version_id,
                        "prior": None if s.prior is None else [float(x) for x in s.prior]})
    return {"group": group, "run_ids": run_ids, "baseline_run": run_ids[baseline], "members": members}


def record_ensemble(store: Any, cfg: RunConfig, loaded: Any, ensemble: Ensemble, members: Sequence[dict[str, Any]],
                    dev_scores: np.ndarray, cmp: Comparison, train: Split, dev: Split, *, group: str,
                    parent_run_id: int | None = None, project: str | None = None,
                    n_boot: int = 1000) -> dict[str, Any]:
    """Record ``ensemble`` (fitted on ``train``'s rows only) scored on ``dev`` as a succeeded run of method
    ``ensemble``; returns its row of the comparison's table (run id, accuracy and macro-F1 with intervals)."""
    from backend.evaluate import classification_metrics
    from backend.recording import create_run

    first = members[0]
    one = dataclasses.replace(cfg, template=first["template"], verbalizer=json.loads(first["verbalizer"]),
                              name=f"{cfg.name or 'ensemble'} {ensemble.kind} ensemble",
                              tags=[*[t for t in cfg.tags if t != "comparison"], ENSEMBLE, group,
                                    f"ensemble:{ensemble.kind}"])
    verb = build_verbalizer(one.verbalizer, cmp.classes)
    # created running (this process): a queued row would be claimed by any job runner on the database
    run_id = create_run(store, one, method=ENSEMBLE, loaded=loaded, verbalizer=verb, train=train.examples,
                        eval=dev.examples, classes=cmp.classes, tags=one.tags, project=project, how=train.how,
                        counts=train.counts, parent_run_id=parent_run_id)
    spec = {"kind": ensemble.kind, "classes": cmp.classes, "members": list(members), "calibrated": True,
            "weights": ensemble.weights, "classifier": ensemble.classifier, "max_length": cfg.max_length,
            "truncate": cfg.truncate, "model": cfg.model, "fitted_on": "train", "train_rows": len(train.examples)}
    store.attach_artifact(run_id, ENSEMBLE_KIND, ENSEMBLE_NAME, json.dumps(spec, indent=2).encode())
    pred = dev_scores.argmax(-1)
    m = classification_metrics(cmp.gold, pred.tolist(), cmp.classes)
    idx = stats.resample_indices(len(cmp.gold), n_boot, 0)
    acc_ci = stats.accuracy_interval(cmp.gold, pred)          # Wilson: honest at all rows right
    f1_ci = stats.bootstrap_interval(stats.macro_f1_samples(cmp.gold, pred, len(cmp.classes), idx), len(cmp.gold))
    store.append_metrics(run_id, [{"key": "eval/accuracy", "step": 0, "value": m["accuracy"]},
                                  {"key": "eval/macro_f1", "step": 0, "value": m["macro_f1"]},
                                  {"key": "eval/accuracy_ci_low", "step": 0, "value": acc_ci[0]},
                                  {"key": "eval/accuracy_ci_high", "step": 0, "value": acc_ci[1]}])
    store.add_predictions(run_id, _predictions(cmp.classes, cmp.gold, cmp.guids, np.exp(dev_scores)))
    store.set_status(run_id, "succeeded")
    return {"run_id": run_id, "kind": ensemble.kind, "accuracy": m["accuracy"], "accuracy_ci": acc_ci,
            "macro_f1": m["macro_f1"], "macro_f1_ci": f1_ci, "weights": ensemble.weights,
            "members": [x["name"] for x in members], "train_rows": len(train.examples)}


def read_ensemble(store: Any, run_id: int) -> dict[str, Any] | None:
    """An ensemble run's ``ensemble.json`` (None for any other run)."""
    for art in store.list_artifacts(int(run_id)):
        if (art.kind, art.name) == (ENSEMBLE_KIND, ENSEMBLE_NAME):
            return json.loads(store.read_artifact(art.sha256))
    return None


def _predictions(classes: list[str], gold: Sequence[int], guids: Sequence[str], probs: np.ndarray
                 ) -> list[dict[str, Any]]:
    pred = probs.argmax(-1)
    return [{"index": r, "guid": guids[r], "gold": classes[g], "predicted": classes[int(pred[r])],
             "probs": {c: float(probs[r, k]) for k, c in enumerate(classes)}}
            for r, g in enumerate(gold)]
