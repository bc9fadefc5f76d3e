"""Runs: the filtered table, comparison (overlaid curves, config differences, metric table), one run in
detail (config, versions, metrics, predictions, artifacts with sha256), bundles, and re-running."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from backend.errors import StudioError
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from storage import RunInfo

PREDICTION_ROWS = 100      # predictions listed in a run's detail (all of them drill down on Evaluate)
ECHO_CHARS = 40            # how much of a wrong run label an error message repeats
EVALUATION = "evaluation"   # the method recorded for "evaluate trained run X on a split" (parent: X)
PREFIXES = ("final/", "eval/", "")   # a trained run's final dev score first, then the latest evaluation


def headline(metrics: dict[str, float]) -> dict[str, float | None]:
    """Accuracy and macro-F1, whichever key family the run used."""
    def pick(name: str) -> float | None:
        return next((metrics[p + name] for p in PREFIXES if p + name in metrics), None)
    return {"accuracy": pick("accuracy"), "macro_f1": pick("macro_f1")}


def run_row(r: RunInfo) -> dict[str, Any]:
    h = headline(r.metrics)
    return {"id": r.id, "status": r.status, "method": r.method, "name": (r.config or {}).get("name"),
            "model": r.model_id, "accuracy": h["accuracy"], "macro_f1": h["macro_f1"],
            "created_at": r.created_at, "duration_s": _duration(r), "tags": list(r.tags), "parent": r.parent_run_id}


def _duration(r: RunInfo) -> float | None:
    if r.started_at is None:
        return None
    return (r.finished_at or time.time()) - r.started_at


@service("runs")
def table(ctx: StudioContext, status: str | None = None, method: str | None = None, text: str = "",
          limit: int = 200) -> dict[str, Any]:
    """The project's runs newest first; ``text`` matches the name, tags or id."""
    runs = ctx.store.list_runs(status=status or None, method=method or None, limit=limit, project=ctx.project)
    q = (text or "").strip().lower()
    rows = [run_row(r) for r in runs]
    if q:
        rows = [r for r in rows if q in str(r["id"]) or q in str(r["name"] or "").lower()
                or any(q in t.lower() for t in r["tags"])]
    return {"runs": rows}


def choices(ctx: StudioContext, status: str | None = None, limit: int = 200, with_status: bool = True,
            trained_only: bool = False) -> list[str]:
    """``"#12 lora demo (succeeded)"`` labels for run pickers (run_id_of reads them back); pickers that
    follow a live run leave the status out, since it changes while the label stays."""
    runs = [r for r in ctx.store.list_runs(status=status, limit=limit, project=ctx.project)
            if is_trained(r.method) or not trained_only]
    return [" ".join(x for x in (f"#{r.id}", r.method, (r.config or {}).get("name") or "",
                                 f"({r.status})" if with_status else "") if x) for r in runs]


def is_trained(method: str) -> bool:
    """Runs that produced weights (not zero-shot scoring, not an evaluation of another run)."""
    from backend.workbench.jobbase import SCORING_ONLY

    return method not in ("zero-shot", EVALUATION, *SCORING_ONLY)   # a comparison's runs are zero-shot


def run_id_of(label: Any) -> int:
    """The id in a picker label such as ``"#12 lora demo (succeeded)"`` (or a bare number)."""
    text = str(label).strip().lstrip("#").split(" ")[0]
    if not text.isdigit():   # the input may be anything, a megabyte long: only its start is echoed
        shown = str(label)[:ECHO_CHARS] + ("..." if len(str(label)) > ECHO_CHARS else "")
        raise StudioError(f"{shown!r} is not a run: pick one from the list (such as '#12 lora demo') or give "
                          "a run id", field="runs")
    return int(text)


def _points(events: Sequence[dict[str, Any]]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for ev in events:
        out.setdefault(ev["key"], []).append([int(ev["step"]), float(ev["value"])])
    return out


@service("runs")
def detail(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    """Everything about one run: config, template and verbalizer versions, metrics, status history,
    artifacts (with sha256), and how many predictions are stored."""
    r = ctx.run(run_id)
    preds = ctx.store.get_predictions(r.id)
    versions = {}
    for kind, vid in (("template", r.template_version_id), ("verbalizer", r.verbalizer_version_id)):
        if vid is not None:   # every run records its versions (backend.recording); none only on old runs
            v = ctx.store.get_version_by_id(vid)
            versions[kind] = {"name": v.name, "version": v.number, "content": v.content, "sha256": v.sha256}
    return {"run": run_row(r), "config": r.config, "versions": versions, "metrics": dict(r.metrics),
            "run_error": r.error,
            "history": [{"status": h.status, "at": h.at, "host": h.host, "note": h.note} for h in r.history],
            "artifacts": [{"kind": a.kind, "name": a.name, "sha256": a.sha256, "size": a.size}
                          for a in r.artifacts],
            "predictions": len(preds), "prediction_rows": [_prediction_row(p) for p in preds[:PREDICTION_ROWS]],
            "curves": _points(ctx.store.get_metrics(r.id)), "data": data_used(r),
            "computed_on": computed_on(ctx, r.id), "caveats": caveats(r)}


def caveats(r: RunInfo) -> list[str]:
    """What a score shown with the run cannot be taken for. A training that kept its best dev checkpoint is
    scored on the same dev rows; a sweep's configuration trained on all data is scored on the dev rows the
    sweep chose it by: either figure is optimistic, not a held-out estimate. The same holds for a later
    evaluation of such a run (or a soft-prompt ensemble of such runs) on those rows: it records how many
    of its scored rows they are (``backend.workbench.selection``), said here with the run named."""
    from backend.workbench.selection import SELECTED_ON, SELECTION_UNCHECKED, SWEEP_SELECTED_ON
    from backend.workbench.softensemble_job import JOB

    out = []
    among = r.metrics.get("final/chosen_among")
    if among:
        out.append(f"Its final score is on the dev rows that chose its checkpoint (the best of {int(among)} dev "
                   "evaluations): optimistic; score it on rows it never saw (another split) for a fair figure.")
    for t in r.tags:
        if t.startswith("from-sweep:"):
            out.append(f"Chosen by sweep {t[len('from-sweep:'):]!r} on these dev rows: its dev score is optimistic "
                       "(the rows that picked it); evaluate it on a split the sweep never saw for a fair figure.")
    ensemble, n = r.method == JOB.method, r.metrics.get("eval/n")
    of = f"of its {int(n)} scored rows" if n is not None else "of its scored rows"
    if r.metrics.get(SELECTED_ON):
        whose = "one of its members" if ensemble else f"run #{r.parent_run_id}"
        out.append(f"{int(r.metrics[SELECTED_ON])} {of} are dev rows that chose a checkpoint of {whose}: this "
                   "score is optimistic; score it on rows it never saw (a test split) for a fair figure.")
    if r.metrics.get(SWEEP_SELECTED_ON):
        whose = "one of its members'" if ensemble else f"run #{r.parent_run_id}'s"
        out.append(f"{int(r.metrics[SWEEP_SELECTED_ON])} {of} are the dev rows a sweep chose {whose} configuration "
                   "by: this score is optimistic; score it on a split the sweep never saw for a fair figure.")
    if r.metrics.get(SELECTION_UNCHECKED):
        whose = "its members" if ensemble else f"run #{r.parent_run_id}"
        out.append(f"The dev rows on which {whose} chose a checkpoint or configuration read differently now than "
                   "when recorded: whether this score is on them cannot be checked, so it may be optimistic.")
    return out


def computed_on(ctx: StudioContext, run_id: int) -> str:
    """What a run computed on and in, in one line (``cpu, float32``; ``cuda:0, float32 weights under bf16
    autocast``); "" for a run recorded before its lineage said."""
    from backend.recording import read_lineage

    doc = read_lineage(ctx.store, run_id) or {}
    if not doc.get("device"):
        return ""
    auto = doc.get("autocast") or "no"
    return f"{doc['device']}, {doc.get('dtype', '?')}" + ("" if auto == "no" else f" weights under {auto} autocast")


def data_used(r: RunInfo) -> str:
    """Which rows a run used, in one line: the source(s), and train / dev sizes and how they were made
    (from its config and the row counts it recorded), so a score is never read without its data."""
    from backend.data.splitting import describe

    data = (r.config or {}).get("data") or {}
    fraction, seed = data.get("dev_fraction"), data.get("seed", 13)
    sources = " -> ".join(dict.fromkeys(str(s) for s in (data.get("train"), data.get("eval")) if s)) or "?"
    train, dev = r.metrics.get("data/train_rows"), r.metrics.get("data/dev_rows")
    if train is not None and dev is not None:
        return f"{sources}: {describe(fraction, seed, int(train), int(dev))}"
    rows = r.metrics.get("eval/n")
    part = f"the dev part ({fraction:g}, seed {seed}) of " if fraction else ""
    return f"{'?' if rows is None else int(rows)} evaluation rows: {part}{sources}"


def _prediction_row(p: dict[str, Any]) -> dict[str, Any]:
    probs = p.get("probs") if isinstance(p.get("probs"), dict) else {}
    return {"index": p["index"], "gold": p["gold"], "predicted": p["predicted"],
            "confidence": max(probs.values()) if probs else None, "correct": str(p["gold"]) == str(p["predicted"])}


@service("runs")
def compare(ctx: StudioContext, run_ids: Sequence[int]) -> dict[str, Any]:
    """Two or more runs side by side: only the config keys that differ, the metric table, and each
    run's curves for overlaying."""
    ids = [int(i) for i in run_ids]
    if len(ids) < 2:
        return user_error("select at least two runs to compare", "compare")
    ctx.runs(ids)   # all of this project's
    cmp = ctx.store.compare_runs(ids)
    curves = {f"#{i}": _points(ctx.store.get_metrics(i)) for i in ids}
    shown = {key: [_no_server_path(v) for v in values] for key, values in cmp["config_diff"].items()}
    shown.update(_computed_in_diff(ctx, cmp["runs"]))
    return {"runs": cmp["runs"], "status": cmp["status"], "config_diff": shown,
            "metrics": cmp["metrics"], "curves": curves}


COMPUTED_IN = ("device", "dtype", "autocast", "code_version")   # lineage.json fields that are no run column


def _computed_in_diff(ctx: StudioContext, ids: Sequence[int]) -> dict[str, list[Any]]:
    """Where two equal configs can still score differently: the device, dtype, autocast and code each run
    computed with (its lineage.json); only those that differ, as ``lineage.<field>`` rows. A run recorded
    before a field existed shows None."""
    from backend.recording import read_lineage

    docs = [read_lineage(ctx.store, int(i)) or {} for i in ids]
    out = {}
    for key in COMPUTED_IN:
        values = [d.get(key) for d in docs]
        if len(set(map(str, values))) > 1:
            out[f"lineage.{key}"] = values
    return out


def _no_server_path(value: Any) -> Any:
    """A config value as the page shows it: a file or folder by its name (an upload without its digest),
    never the server's path to it (the data files, a local model, an output folder)."""
    from backend.services.data import source_label

    return source_label(value) if isinstance(value, str) and Path(value).is_absolute() else value


@service("bundle")
def export_bundle(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    """Write the run's bundle (config, versions, metrics, predictions, artifacts) to a zip file."""
    r = ctx.run(run_id)
    out = ctx.exports_dir / f"run-{r.id}-{r.uid[:8]}.zip"
    path = ctx.store.export_run(r.id, out)
    return {"path": str(path), "size": Path(path).stat().st_size}


@service("bundle")
def import_bundle(ctx: StudioContext, path: str | Path) -> dict[str, Any]:
    """Import an uploaded bundle; a refusal names the file by its name (the upload's folder on the server
    is nobody's business), with storage's reason."""
    from backend.services.results import user_error
    from storage import StorageError

    path = Path(path)
    try:
        run_id = ctx.store.import_bundle(path)
    except StorageError as exc:
        return user_error(str(exc.message).replace(str(path), path.name), "import")
    return {"run_id": run_id}


@service("runs")
def config_of(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    """A run's config, to edit and submit again ("re-run with changes")."""
    r = ctx.run(run_id)
    return {"config": r.config, "method": r.method, "run_id": r.id}
