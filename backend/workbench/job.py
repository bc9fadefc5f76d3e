"""A prompt comparison as a job (``backend.workbench.jobbase``: queued, run by the job runner's child
process, progress events, cancel and liveness like training).

The job is a run of method ``comparison``: its config is the first combination (a valid RunConfig:
model, data, encoding), and ``comparison.json`` (kind ``config``) holds what to compare (every template
and verbalizer by name, the baseline, which ensembles to fit). The child writes ``compare/rows_scored``
events as batches finish, reads the cancel flag between batches, records every combination as a run of
the group ``compare:<job id>`` (their parent is the job) and every ensemble as a run too, and attaches
the result table to the job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.textcheck import brief
from backend.workbench.compare import MAX_COMBINATIONS, Prompt
from backend.workbench.ensemble import KINDS
from backend.workbench.jobbase import EventProgress, JobKind

COMPARISON = "comparison"                      # the job run's method
MAX_ROWS = 1_000_000       # row numbers a comparison may be narrowed to (a template search's held-out rows)
JOB = JobKind(COMPARISON, "comparison", spec="comparison.json", result="comparison.json",
              progress=("compare/rows_scored", "compare/rows_total"), field="compare")


@dataclass
class ComparisonSpec:
    """What a comparison job compares: named templates and verbalizers (editor content), the baseline
    combination (index into templates x verbalizers, template-major) and the ensembles to fit."""
    templates: list[Prompt]
    verbalizers: list[Prompt]
    baseline: int = 0
    ensembles: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)    # verbalizer name -> the editor text it came from
    rows: list[int] | None = None      # only these rows of the config's dev rows (indices), with ``rows_why``
    rows_why: str = ""

    def check(self) -> ComparisonSpec:
        if not self.templates or not self.verbalizers:
            raise ConfigError("pick at least one template and one set of label words to compare", field="compare")
        n = len(self.templates) * len(self.verbalizers)
        if n > MAX_COMBINATIONS:
            raise ConfigError(f"{n} combinations is more than {MAX_COMBINATIONS}; compare fewer at a time",
                              field="compare")
        if not 0 <= self.baseline < n:
            raise ConfigError(f"the baseline must be one of the {n} combinations (1..{n})", field="baseline")
        bad = [k for k in self.ensembles if k not in KINDS]
        if bad:
            raise ConfigError(f"unknown ensemble {brief(bad[0])}; choose from {', '.join(KINDS)}", field="ensemble")
        if self.ensembles and n < 2:
            raise ConfigError("an ensemble needs at least two combinations: pick more templates or label words",
                              field="ensemble")
        if self.rows is not None and (not self.rows or len(self.rows) > MAX_ROWS
                                      or not all(isinstance(i, int) and i >= 0 for i in self.rows)):
            raise ConfigError(f"rows: 1 to {MAX_ROWS} row numbers of the dev rows", field="compare")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"templates": [[p.name, p.content] for p in self.templates],
                "verbalizers": [[p.name, p.content] for p in self.verbalizers],
                "baseline": self.baseline, "ensembles": list(self.ensembles), "shown": dict(self.shown),
                "rows": None if self.rows is None else list(self.rows), "rows_why": self.rows_why}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ComparisonSpec:
        return cls([Prompt(str(n), c) for n, c in raw["templates"]], [Prompt(str(n), c) for n, c in raw["verbalizers"]],
                   int(raw.get("baseline", 0)), [str(k) for k in raw.get("ensembles") or []],
                   {str(k): str(v) for k, v in (raw.get("shown") or {}).items()},
                   None if raw.get("rows") is None else [int(i) for i in raw["rows"]], str(raw.get("rows_why") or "")
                   ).check()


def submit_comparison(store: Any, cfg: RunConfig, spec: ComparisonSpec, *, project: str | None = None,
                      parent_run_id: int | None = None) -> int:
    """Queue the comparison (checked first: a job that cannot start is never queued); returns the job's run
    id. ``parent_run_id``: the job it came from (a template search that queued its best for comparison)."""
    from backend.workbench.compare import refuse_demos

    refuse_demos(cfg, [cfg.template, *(str(p.content) for p in spec.templates)], "a comparison", JOB.field)
    return JOB.submit(store, cfg, spec.check().to_dict(), project=project, parent_run_id=parent_run_id)


def run_comparison_job(store: Any, run_id: int, *, loaded: Any = None,
                       should_stop: Callable[[], bool] | None = None) -> str:
    """Run comparison job ``run_id`` here; returns its final status (recorded on the run, with the reason
    when it failed or was cancelled). ``loaded``: the model already in memory (the studio without a job
    runner), else the config's model is loaded."""
    def summary(result: dict[str, Any]) -> dict[str, float]:
        return {"compare/best_accuracy": max(r["uncalibrated"]["accuracy"] for r in result["rows"]),
                "compare/combinations": len(result["rows"])}

    return JOB.run(store, run_id, lambda info: _run(store, run_id, info, loaded, should_stop), summary)


def _run(store: Any, run_id: int, info: Any, loaded: Any, should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    from backend.cpu_memory import cpu_buffers, mode_for
    from backend.data.splitting import check_disjoint
    from backend.pipeline import build_verbalizer, load_split, rows_of, settings_for
    from backend.recording import record_started
    from backend.workbench.compare import compare_prompts
    from backend.workbench.record import record_comparison

    cfg, raw, loaded = JOB.open(store, info, loaded)
    spec = ComparisonSpec.from_dict(raw)
    dev = load_split(cfg, "eval")
    if spec.rows is not None:
        dev = rows_of(dev, spec.rows, spec.rows_why)
    train = None
    if spec.ensembles:
        if not (cfg.data.train or cfg.data.dev_fraction):
            raise ConfigError("ensembles are fitted on training rows: this data has none (split it into train "
                              "and dev on the Data tab)", field="ensemble")
        train = load_split(cfg, "train")
        check_disjoint(train.examples, dev.examples)   # fitted on rows it is then scored on: refused
    record_started(store, run_id, cfg, loaded=loaded, verbalizer=build_verbalizer(cfg.verbalizer, dev.label_names, files=True),
                   train=train.examples if train else [], eval=dev.examples, classes=dev.label_names,
                   how=(train or dev).how, counts=(train or dev).counts)
    progress = EventProgress(store, run_id, JOB.progress)
    n_rows = len(dev.examples) + (len(train.examples) if train else 0)
    progress.total = len(spec.templates) * (n_rows + (2 if train else 1) * _cf_rows(dev.examples))
    settings = settings_for(cfg, loaded.kind)
    common = dict(settings=settings, batch_size=cfg.eval.batch_size, should_stop=should_stop, progress=progress)
    group = f"compare:{run_id}"
    # on CPU, activation buffers kept between batches when memory allows (backend/cpu_memory.py)
    with cpu_buffers(mode_for(loaded.model, loaded.device.type, cfg.train.cpu_memory)):
        cmp = compare_prompts(loaded, spec.templates, spec.verbalizers, dev.examples, dev.label_names, **common)
        rec = record_comparison(store, cfg, loaded, cmp, spec.templates, spec.verbalizers, dev,
                                baseline=spec.baseline, project=info.project, group=group, parent_run_id=run_id)
        ensembles = []
        if train is not None:
            progress.offset = _done(cmp, dev)
            on_train = compare_prompts(loaded, spec.templates, spec.verbalizers, train.examples, dev.label_names,
                                       **common)
            ensembles = _ensembles(store, cfg, loaded, spec, cmp, on_train, rec, train, dev, group, run_id,
                                   info.project)
    table = (cmp.table(baseline=spec.baseline), cmp.table(baseline=spec.baseline, calibrated=True))
    shown = {p.name: spec.shown.get(p.name) or json.dumps(p.content, ensure_ascii=False) for p in spec.verbalizers}
    rows = [{"run_id": rec["run_ids"][i], "template": u["template"], "label_words": u["verbalizer"],
             "uncalibrated": u, "calibrated": c} for i, (u, c) in enumerate(zip(*table))]
    return {"job": run_id, "group": group, "rows": rows, "n": len(dev.examples), "baseline": spec.baseline,
            "templates": {p.name: p.content for p in spec.templates},
            "label_words": shown,
            "forwards": cmp.forwards, "seconds": cmp.seconds, "ensembles": ensembles, "classes": cmp.classes}


def _cf_rows(examples: Any) -> int:
    from backend.evaluate import content_free_examples

    return len(content_free_examples(examples))


def _done(cmp: Any, dev: Any) -> int:
    return len(set(s.template for s in cmp.scored)) * (len(dev.examples) + _cf_rows(dev.examples))


def _ensembles(store: Any, cfg: RunConfig, loaded: Any, spec: ComparisonSpec, cmp: Any, on_train: Any,
               rec: dict[str, Any], train: Any, dev: Any, group: str, run_id: int, project: str | None
               ) -> list[dict[str, Any]]:
    """Fit every asked ensemble of all combinations on the training rows' calibrated scores, score it on
    the dev rows (calibrated with the same content-free priors a served ensemble uses) and record it."""
    from backend.workbench import stats
    from backend.workbench.ensemble import fit_ensemble
    from backend.workbench.record import record_ensemble

    names = [m["name"] for m in rec["members"]]
    train_scores = [s.calibrated for s in on_train.scored]
    dev_scores = [stats.log_softmax(s.log_probs - s.prior) for s in cmp.scored]
    out = []
    for kind in spec.ensembles:
        ens = fit_ensemble(kind, names, train_scores, on_train.gold, seed=cfg.train.seed)
        out.append(record_ensemble(store, cfg, loaded, ens, rec["members"], ens.apply(dev_scores), cmp, train, dev,
                                   group=group, parent_run_id=run_id, project=project))
    return out


def job_status(store: Any, info: Any) -> dict[str, Any]:
    """Where comparison job ``info`` (its RunInfo) stands, from storage: status, rows scored / total, and
    the result table once it succeeded (what a refreshed page or a second browser reads)."""
    out = JOB.status(store, info)
    out.update(rows_scored=out["done_count"], rows_total=out["total_count"])
    return out
