"""Evaluate in the studio: a zero-shot run of the current template + label words (recorded in storage
like any run), and the drill-down behind each confusion-matrix cell."""
from __future__ import annotations

from typing import Any, Callable

from backend.config import RunConfig
from backend.services.context import StudioContext
from backend.services.results import service, user_error

CELL_LIMIT = 25


def result_view(metrics: dict[str, Any], run_id: int | None) -> dict[str, Any]:
    """The metrics the Evaluate tab draws, JSON-able (per-class table, confusion matrix, scalars), with
    95% intervals of accuracy (Wilson) and macro-F1 (bootstrap; None where it has none): 0.91 on 64 rows
    is anything from ~0.81 to ~0.96, and a single number would say more than the rows do."""
    from backend.workbench.stats import CONFIDENCE, confusion_intervals

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    intervals = confusion_intervals(metrics.get("confusion") or [])
    return {"run_id": run_id, "metrics": scalars, "classes": metrics.get("classes", []),
            "confusion": metrics.get("confusion", []), "per_class": metrics.get("per_class", {}),
            "calibration": metrics.get("calibration", "none"),
            "intervals": {k: None if v is None else list(v) for k, v in intervals.items()},
            "confidence": CONFIDENCE}


@service("evaluate")
def zero_shot(ctx: StudioContext, cfg: RunConfig, progress: Callable[[int, int], None] | None = None,
              parent_run_id: int | None = None) -> dict[str, Any]:
    """Evaluate ``cfg`` with the already-loaded base model and record it as a zero-shot run."""
    from backend.pipeline import run_zero_shot
    from backend.services.data import confine_config

    confine_config(ctx, cfg)
    loaded = ctx.model.get()   # run_zero_shot refuses a config naming another model than this one
    with ctx.model.lock:
        result, run_id = run_zero_shot(cfg, loaded=loaded, store=ctx.store, progress=progress,
                                       parent_run_id=parent_run_id)
    return result_view(result.metrics, run_id)


@service("evaluate")
def trained_run(ctx: StudioContext, run_id: int, split: str | None = None, limit: int | None = None
                ) -> dict[str, Any]:
    """Score a finished trained run on a split (or its first ``limit`` examples) with the runs server
    (the base model is not reloaded), and record it as an ``evaluation`` run whose parent is the trained
    one, so its confusion matrix drills down like any other run's. Rows scored that chose the parent's
    checkpoint (or an ensemble member's), or that a sweep chose its configuration by, are counted on the
    new run (``backend.workbench.selection``): its caveats say the score is optimistic, and how."""
    from backend.data.splitting import check_disjoint
    from backend.evaluate import classification_metrics, gold_indices, recorded_scalars
    from backend.pipeline import load_split
    from backend.recording import create_run
    from backend.services.data import confine_config
    from backend.services.playground import attach, server_for
    from backend.services.runs import EVALUATION, caveats, is_trained
    from backend.workbench import softensemble_job
    from backend.workbench.selection import selection_metrics

    info = ctx.run(run_id)
    if not is_trained(info.method):
        return user_error(f"run #{info.id} is a {info.method} run: pick a trained run, or evaluate the "
                          "current template", "evaluate")
    cfg = RunConfig.from_dict(info.config)
    if split:
        cfg.data.eval_split = split
    cfg.data.limit = limit or None
    confine_config(ctx, cfg)
    examples = eval_examples(ctx, cfg)
    train = load_split(cfg, "train")
    learned = learned_rows(ctx, info, train.examples)
    check_disjoint(learned, examples)   # never score a run on what it learned
    # ...and count the scored rows that chose its checkpoint or configuration (an ensemble's: its members')
    choosers = [info.id, *(softensemble_job.JOB.read_spec(ctx.store, info)["runs"]
                           if info.method == softensemble_job.JOB.method else [])]
    chosen_on = selection_metrics(
        ctx.store, choosers, examples,
        lambda run: eval_examples(ctx, confine_config(ctx, RunConfig.from_dict(run.config))))
    rs = server_for(ctx)
    with rs.lock:
        attach(ctx, rs, info.id)
        served = rs.server.runs[str(info.id)]
        classes = list(served.pm.verbalizer.classes)
        scores = rs.server.scores(str(info.id), examples)
    gold = gold_indices(examples, classes)
    pred = scores.argmax(-1).tolist()
    metrics = classification_metrics(gold, pred, classes)
    probs = scores.exp()
    base = ctx.model.get()   # what scored it: the served base (attach checked it is the run's) + its weights hash
    # recorded like every run: the rows it scored and the rows its parent learned from, versions, code
    new_id = create_run(ctx.store, cfg, method=EVALUATION, loaded=base, verbalizer=served.pm.verbalizer.verbalizer,
                        train=learned, eval=examples, classes=classes, parent_run_id=info.id,
                        tags=[EVALUATION], project=info.project, how=train.how, counts=train.counts)
    ctx.store.append_metrics(new_id, [{"key": f"eval/{k}", "step": 0, "value": v}   # as a zero-shot run's are
                                      for k, v in recorded_scalars(metrics).items()]
                             + [{"key": k, "step": 0, "value": v} for k, v in chosen_on.items()])
    ctx.store.add_predictions(new_id, [{"index": i, "gold": classes[g], "predicted": classes[p],
                                        "probs": {c: float(probs[i, k]) for k, c in enumerate(classes)}}
                                       for i, (g, p) in enumerate(zip(gold, pred))])
    ctx.store.set_status(new_id, "succeeded")
    return dict(result_view(metrics, new_id), caveats=caveats(ctx.store.get_run(new_id)))


def learned_rows(ctx: StudioContext, info: Any, own: list[Any]) -> list[Any]:
    """Every row trained run ``info`` learned from. Its config names its own rows (``own``), except for a
    soft-prompt ensemble: its config is its first member's, and members (a sweep's seeds) each trained on
    their own K-shot sample, so the rows are the union over its members' configs."""
    from backend.pipeline import load_split
    from backend.workbench import softensemble_job
    from backend.workbench.softensemble import trained_rows

    rows = own
    if info.method == softensemble_job.JOB.method:
        from backend.services.data import confine_config

        members = softensemble_job.JOB.read_spec(ctx.store, info)["runs"]
        rows = trained_rows([load_split(confine_config(ctx, RunConfig.from_dict(ctx.store.get_run(int(i)).config)),
                                        "train").examples for i in members])
    _check_as_recorded(ctx, info, rows)
    return rows


def _check_as_recorded(ctx: StudioContext, info: Any, rows: list[Any]) -> None:
    """The rows read again must be the rows the run's record lists: read from a file edited since (rows
    added, removed, or a K-shot sample drawn from a different pool), they are not what it learned, and a
    check against them proves nothing."""
    from backend.errors import DatasetError
    from backend.recording import row_ids

    if info.dataset_snapshot_id is None:      # recorded before runs listed their rows
        return
    recorded = ctx.store.get_dataset_snapshot(info.dataset_snapshot_id).row_counts.get("train_rows")
    if recorded is not None and recorded != row_ids(rows):
        raise DatasetError(f"run #{info.id}'s training data reads differently now than when it trained (the file "
                           "changed since, or its sampling did): the rows it learned from cannot be checked "
                           "against the rows to score, so it is not scored; restore the data it trained on")


@service("evaluate")
def run_result(ctx: StudioContext, run_id: int) -> dict[str, Any]:
    """The stored evaluation of any finished run (zero-shot or trained): metrics and confusion matrix
    rebuilt from its predictions, so every run drills down the same way."""
    from backend.evaluate import classification_metrics

    run = ctx.run(run_id)
    preds = ctx.store.get_predictions(run.id)
    if not preds:
        return user_error(f"run {run.id} ({run.status}) has no stored predictions to show", "evaluate")
    classes = _classes(run.config, preds)
    pos = {c: i for i, c in enumerate(classes)}
    gold = [pos[str(p["gold"])] for p in preds]
    pred = [pos[str(p["predicted"])] for p in preds]
    metrics = classification_metrics(gold, pred, classes)
    # what ran: only a zero-shot evaluation applies eval.calibration (a trained run's dev and final scores, and
    # its evaluations, are uncalibrated, whatever a config copied from a zero-shot run still says)
    said = (run.config.get("eval") or {}).get("calibration") if run.method == "zero-shot" else None
    metrics["calibration"] = said or "none"
    return result_view(metrics, run.id)


def _classes(config: dict[str, Any], preds: list[dict[str, Any]]) -> list[str]:
    names = (config.get("data") or {}).get("label_names")
    if names:
        return [str(n) for n in names]
    probs = preds[0].get("probs")
    if isinstance(probs, dict):
        return [str(k) for k in probs]
    return sorted({str(p["gold"]) for p in preds} | {str(p["predicted"]) for p in preds})


@service("evaluate")
def cell_examples(ctx: StudioContext, run_id: int, gold: str, predicted: str, limit: int = CELL_LIMIT
                  ) -> dict[str, Any]:
    """The examples behind one confusion-matrix cell: wrapped input and class probabilities."""
    from backend.prompts.template import compile_template
    from backend.prompts.wrap import wrap

    run = ctx.run(run_id)
    preds = [p for p in ctx.store.get_predictions(run.id)
             if str(p["gold"]) == str(gold) and str(p["predicted"]) == str(predicted)]
    cfg = RunConfig.from_dict(run.config)
    examples = eval_examples(ctx, cfg)
    template = compile_template(cfg.template)
    rows = []
    for p in preds[:int(limit)]:
        ex = examples[p["index"]] if 0 <= p["index"] < len(examples) else None
        text = "".join(piece.text or "" for piece in wrap(template, ex).pieces) if ex is not None else ""
        probs = p["probs"] if isinstance(p["probs"], dict) else {}
        rows.append({"index": p["index"], "gold": p["gold"], "predicted": p["predicted"], "probs": probs,
                     "input": text})
    return {"run_id": run.id, "gold": gold, "predicted": predicted, "count": len(preds), "rows": rows}


def eval_examples(ctx: StudioContext, cfg: RunConfig) -> list[Any]:
    """The examples a config evaluates (its dev part when ``data.dev_fraction`` splits one source), through
    the context's dataset cache: the same rows, in the same order, as ``pipeline.load_split`` scored."""
    from backend.data.splitting import one_source
    from backend.services import data as data_service

    d = cfg.data
    source, split = one_source(d) if d.dev_fraction is not None else (d.eval, d.eval_split)
    sel = {"source": source, "columns": d.columns or {}, "split": split,
           "limit": None if d.dev_fraction is not None else d.limit, "dev_fraction": d.dev_fraction,
           "seed": d.seed}
    parts = data_service.train_dev(ctx, sel)
    if parts is None:
        return list(data_service.loaded(ctx, sel).examples)
    return parts[1][:d.limit] if d.limit else parts[1]
