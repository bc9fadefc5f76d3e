"""A comparison recorded as a group of runs: one zero-shot run per template x verbalizer, each with its
full lineage (through ``backend.recording``, like every run), tagged with the group's id so the Runs tab
and ``python -m storage runs --tag`` show them together, with the paired statistics as metrics."""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Sequence

import numpy as np

from backend.config import RunConfig
from backend.pipeline import Split, build_verbalizer
from backend.workbench.compare import Comparison, Prompt


def record_comparison(store: Any, cfg: RunConfig, loaded: Any, cmp: Comparison, templates: Sequence[Prompt],
                      verbalizers: Sequence[Prompt], dev: Split, *, baseline: int = 0,
                      project: str | None = None) -> dict[str, Any]:
    """Record every combination of ``cmp`` as a succeeded zero-shot run; returns the group tag and run ids."""
    from backend.recording import create_run

    group = f"compare:{uuid.uuid4().hex[:12]}"
    tables = {False: cmp.table(baseline=baseline), True: cmp.table(baseline=baseline, calibrated=True)}
    by_name_t = {p.name: p.content for p in templates}
    by_name_v = {p.name: p.content for p in verbalizers}
    run_ids = []
    for i, s in enumerate(cmp.scored):
        one = dataclasses.replace(cfg, template=str(by_name_t[s.template]), verbalizer=by_name_v[s.verbalizer],
                                  name=cfg.name, tags=[*cfg.tags, group, f"template:{s.template}",
                                                        f"verbalizer:{s.verbalizer}"])
        verb = build_verbalizer(one.verbalizer, cmp.classes)
        run_id = create_run(store, one, method="zero-shot", loaded=loaded, verbalizer=verb, train=[],
                            eval=dev.examples, classes=cmp.classes, tags=one.tags, project=project,
                            how=dev.how, counts=dev.counts, status="queued")
        store.set_status(run_id, "running")
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
        store.add_predictions(run_id, _predictions(cmp, i))
        store.set_status(run_id, "succeeded")
        run_ids.append(run_id)
    return {"group": group, "run_ids": run_ids, "baseline_run": run_ids[baseline]}


def _predictions(cmp: Comparison, i: int) -> list[dict[str, Any]]:
    probs = np.exp(cmp.scored[i].log_probs)
    pred = cmp.predictions(i)
    return [{"index": r, "guid": cmp.guids[r], "gold": cmp.classes[g], "predicted": cmp.classes[int(pred[r])],
             "probs": {c: float(probs[r, k]) for k, c in enumerate(cmp.classes)}}
            for r, g in enumerate(cmp.gold)]
