"""The studio's prompt comparison: every chosen template x label-word set scored on the same dev rows,
recorded as a group of runs, and the rows where two of them disagree."""
from __future__ import annotations

from typing import Any, Sequence

from backend.services import workbench_jobs
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from backend.workbench.jobbase import run_here

MAX_PROMPTS = 12      # per side: what the pickers offer; the job itself takes up to 400 combinations


def _comparison_config(ctx: StudioContext, template: str, label_words: str, selection: dict[str, Any],
                       max_length: Any, truncate: str, limit: int | None, with_train: bool) -> Any:
    """The job's RunConfig (its first combination): the selection's dev rows, and its training rows (the
    other part of a split source, or the source's train split, K-shot sampled when the Data tab says so)
    when something is fitted on them."""
    from backend.services import runconfig
    from backend.services.data import confine_config

    cfg = runconfig.build(ctx, template=template, label_words=label_words, selection=selection,
                          max_length=max_length, truncate=truncate, eval_limit=limit)
    if with_train:
        cfg.data.train = cfg.data.eval
        cfg.data.train_split = None if cfg.data.dev_fraction is not None else "train"
        cfg.data.shots = (selection or {}).get("shots") or None
    return confine_config(ctx, cfg)


@service("compare")
def compare(ctx: StudioContext, *, templates: Sequence[str], label_words: Sequence[str],
            selection: dict[str, Any], max_length: Any = 256, truncate: str = "tail", baseline: int = 0,
            limit: int | None = None, ensembles: Sequence[str] = ()) -> dict[str, Any]:
    """Queue a comparison of ``templates`` x ``label_words`` (editor texts) on the selection's dev rows as
    one job (the job runner runs it in its own process); without a runner it runs here, to the end. Returns
    ``comparison``'s answer for the job: poll that for progress and the table."""
    from backend.services.versions import parse_label_words
    from backend.workbench.compare import Prompt
    from backend.workbench.job import ComparisonSpec, run_comparison_job, submit_comparison

    templates = [t for t in templates if isinstance(t, str) and t.strip()]
    label_words = [w for w in label_words if isinstance(w, str) and w.strip()]
    if not templates or not label_words:
        return user_error("pick at least one template and one set of label words to compare", "compare")
    if len(templates) > MAX_PROMPTS or len(label_words) > MAX_PROMPTS:
        return user_error(f"compare at most {MAX_PROMPTS} templates and {MAX_PROMPTS} label-word sets at a time",
                          "compare")
    from backend.prompts.template import parse_template

    for t in templates:
        parse_template(t)   # TemplateError with the span: said now, not by a job that fails later
    ens = [str(k) for k in ensembles or []]
    cfg = _comparison_config(ctx, templates[0], label_words[0], selection, max_length, truncate, limit, bool(ens))
    shown = {f"V{i + 1}": w for i, w in enumerate(label_words)}
    spec = ComparisonSpec([Prompt(f"T{i + 1}", t) for i, t in enumerate(templates)],
                          [Prompt(f"V{i + 1}", parse_label_words(w)) for i, w in enumerate(label_words)],
                          int(baseline), ens, shown)
    job = submit_comparison(ctx.store, cfg, spec, project=ctx.project)
    if ctx.jobs is None:
        with ctx.model.lock:
            run_here(ctx.store, job, run_comparison_job, loaded=ctx.model.get())
    return comparison(ctx, job)


@service("compare")
def comparison(ctx: StudioContext, job: int) -> dict[str, Any]:
    """A comparison job's status, rows scored / total, and its table once it finished (from storage: a
    refreshed page or a second browser sees the same)."""
    from backend.workbench.job import JOB, job_status

    return workbench_jobs.answer(ctx, JOB, job_status, job)


@service("compare")
def cancel_comparison(ctx: StudioContext, job: int) -> dict[str, Any]:
    from backend.workbench.job import JOB

    return workbench_jobs.cancel(ctx, JOB, job)


def latest_comparison(ctx: StudioContext) -> int | None:
    from backend.workbench.job import JOB

    return workbench_jobs.latest(ctx, JOB)


@service("compare")
def flips(ctx: StudioContext, run_a: int, run_b: int, limit: int = 50) -> dict[str, Any]:
    """The rows where exactly one of two runs is right, with both runs' class probabilities. Both runs
    must have scored the same rows (same guids and gold labels, in the same order)."""
    ctx.runs([run_a, run_b])   # both of this project's
    a, b = ctx.store.get_predictions(int(run_a)), ctx.store.get_predictions(int(run_b))
    if not a or not b:
        return user_error("both runs need stored predictions (pick two finished evaluations)", "flips")
    key_a = [(p.get("guid"), str(p["gold"])) for p in a]
    if key_a != [(p.get("guid"), str(p["gold"])) for p in b]:
        return user_error(f"runs {run_a} and {run_b} were not scored on the same rows: their flips mean nothing",
                          "flips")
    out: dict[str, list[dict[str, Any]]] = {"a_right": [], "b_right": []}
    for pa, pb in zip(a, b):
        ok_a, ok_b = str(pa["predicted"]) == str(pa["gold"]), str(pb["predicted"]) == str(pb["gold"])
        if ok_a != ok_b:
            out["a_right" if ok_a else "b_right"].append(
                {"index": pa["index"], "guid": pa.get("guid"), "gold": pa["gold"], "a": pa["probs"], "b": pb["probs"]})
    return {"run_a": int(run_a), "run_b": int(run_b), "n": len(a),
            "a_right": out["a_right"][:int(limit)], "b_right": out["b_right"][:int(limit)],
            "counts": {"a_right": len(out["a_right"]), "b_right": len(out["b_right"])}}




@service("flips")
def flip_row(ctx: StudioContext, run_a: int, run_b: int, index: int) -> dict[str, Any]:
    """Row ``index`` of two runs scored on the same rows, as each run's template wraps and tokenizes it,
    with both runs' class probabilities: why one prompt got it right and the other did not."""
    from backend.config import RunConfig
    from backend.services.evaluate import eval_examples
    from backend.services.preview import preview

    both = flips(ctx, run_a, run_b, limit=0)
    if "error" in both:
        return both
    out: dict[str, Any] = {"index": int(index)}
    for side, run_id in (("a", int(run_a)), ("b", int(run_b))):
        preds = ctx.store.get_predictions(run_id)
        if not 0 <= int(index) < len(preds):
            return user_error(f"row {index} is not one of the {len(preds)} rows both runs scored", "flips")
        p = preds[int(index)]
        cfg = RunConfig.from_dict(ctx.run(run_id).config)
        rows = eval_examples(ctx, cfg)
        if len(rows) != len(preds):
            return user_error(f"run {run_id}'s rows cannot be read back as it scored them (its data changed)",
                              "flips")
        view = preview(ctx, cfg.template, [(int(index), rows[int(index)])], cfg.max_length, cfg.truncate)
        if "error" in view:
            return view
        out["gold"] = p["gold"]
        out[side] = {"run_id": run_id, "template": cfg.template, "predicted": p["predicted"], "probs": p["probs"],
                     "example": view["examples"][0]}
    return out


@service("search")
def search_words(ctx: StudioContext, *, template: str, selection: dict[str, Any], max_length: Any = 256,
                 truncate: str = "tail", pool: int = 50, keep: int = 5) -> dict[str, Any]:
    """Queue a search for one label word per class on the selection's *training* rows (the words are then
    compared on dev rows they were never chosen on) as one job; without a job runner it runs here, to the
    end. Returns ``label_search``'s answer for the job: poll that for progress and the words."""
    from backend.pipeline import WHOLE_VOCAB
    from backend.prompts.template import parse_template
    from backend.workbench.labelsearch_job import (SAVED_NAME, LabelSearchSpec, rows_to_search,
                                                   run_label_search_job, submit_label_search)

    if not isinstance(template, str) or not template.strip():
        return user_error("write a template with a {mask} first", "template")
    parse_template(template)     # TemplateError with the span: said now, not by a job that fails later
    cfg = _comparison_config(ctx, template, "x: x", selection, max_length, truncate, None, True)
    cfg.verbalizer, cfg.name = WHOLE_VOCAB, SAVED_NAME     # the search reads the whole vocabulary at the mask
    # no training rows, a missing column, or training rows the evaluation scores (a one-file source
    # without a dev fraction): said now too, before anything is queued
    rows_to_search(cfg)
    job = submit_label_search(ctx.store, cfg, LabelSearchSpec(pool=pool, keep=keep), project=ctx.project)
    if ctx.jobs is None:
        with ctx.model.lock:
            run_here(ctx.store, job, run_label_search_job, loaded=ctx.model.get())
    return label_search(ctx, job)


@service("search")
def label_search(ctx: StudioContext, job: int) -> dict[str, Any]:
    """A label-search job's status, training rows scored / total, and its result once it finished (the
    candidates per class, the best words, also as editor text under ``label_words``)."""
    from backend.workbench.labelsearch_job import JOB, label_search_status

    return workbench_jobs.answer(ctx, JOB, label_search_status, job)


@service("search")
def cancel_label_search(ctx: StudioContext, job: int) -> dict[str, Any]:
    from backend.workbench.labelsearch_job import JOB

    return workbench_jobs.cancel(ctx, JOB, job)


def latest_label_search(ctx: StudioContext) -> int | None:
    from backend.workbench.labelsearch_job import JOB

    return workbench_jobs.latest(ctx, JOB)


@service("inspect")
def inspect_soft(ctx: StudioContext, run_ids: Sequence[Any], k: int = 5) -> dict[str, Any]:
    """One or two trained runs' soft tokens, side by side: nearest vocabulary rows, drift from the
    initialisation, and the drift at every evaluation of their training."""
    from backend.serving import materialize_run
    from backend.workbench.inspect import inspect_run

    ids = [int(i) for i in run_ids if i is not None]
    if not ids or len(ids) > 2:
        return user_error("give one or two trained runs to inspect", "inspect")
    if not 1 <= int(k) <= 50:
        return user_error("nearest tokens: between 1 and 50", "inspect")
    out = []
    for run_id in ids:
        info = ctx.run(run_id)
        if info.status != "succeeded":
            return user_error(f"run #{run_id} is {info.status}; inspect a finished trained run", "inspect")
        if (info.config or {}).get("model") != ctx.model.spec:
            return user_error(f"run #{run_id} was trained on {(info.config or {}).get('model')!r}, not on the "
                              f"loaded base model {ctx.model.spec!r}", "inspect")
        folder = materialize_run(ctx.store, run_id, ctx.data_dir / "serving")
        loaded = ctx.model.get()
        with ctx.model.lock:
            out.append({"run_id": run_id, "name": (info.config or {}).get("name"), **inspect_run(folder, loaded, int(k))})
    return {"runs": out}



@service("soft-ensemble")
def soft_ensemble(ctx: StudioContext, run_ids: Sequence[Any], combine: str = "mean") -> dict[str, Any]:
    """Queue two or more trained soft prompts of this base model as one ensemble (Lester et al.), scored
    in one batch on the first run's dev rows and recorded as a run the Playground serves, as one job;
    without a job runner it runs here, to the end. Returns ``soft_ensemble_job``'s answer for the job."""
    from backend.serving import materialize_run
    from backend.workbench.softensemble import COMBINE
    from backend.workbench.softensemble_job import run_soft_ensemble_job, submit_soft_ensemble

    ids = list(dict.fromkeys(int(i) for i in run_ids if i is not None))
    if len(ids) < 2:
        return user_error("pick at least two trained soft-prompt runs", "runs")
    if combine not in COMBINE:
        return user_error(f"combine by {' or '.join(COMBINE)}", "combine")
    folders = {}
    for run_id in ids:
        info = ctx.run(run_id)
        if info.status != "succeeded" or (info.config or {}).get("model") != ctx.model.spec:
            return user_error(f"run #{run_id} is not a finished run trained on the loaded base model "
                              f"{ctx.model.spec!r}", "runs")
        folders[run_id] = materialize_run(ctx.store, run_id, ctx.data_dir / "serving")
    job = submit_soft_ensemble(ctx.store, folders, combine, project=ctx.project)
    if ctx.jobs is None:
        with ctx.model.lock:
            run_here(ctx.store, job, run_soft_ensemble_job, loaded=ctx.model.get())
    return soft_ensemble_job(ctx, job)


@service("soft-ensemble")
def soft_ensemble_job(ctx: StudioContext, job: int) -> dict[str, Any]:
    """A soft-prompt ensemble job's status, rows scored / total, and once it finished its accuracy (with
    its interval) and each member's; the job's run is the ensemble the Playground serves."""
    from backend.workbench.softensemble_job import JOB, ensemble_status

    return workbench_jobs.answer(ctx, JOB, ensemble_status, job)


@service("soft-ensemble")
def cancel_soft_ensemble(ctx: StudioContext, job: int) -> dict[str, Any]:
    from backend.workbench.softensemble_job import JOB

    return workbench_jobs.cancel(ctx, JOB, job)


def latest_soft_ensemble(ctx: StudioContext) -> int | None:
    from backend.workbench.softensemble_job import JOB

    return workbench_jobs.latest(ctx, JOB)


DRAFT = "the editor's draft"


@service("compare")
def saved_prompts(ctx: StudioContext) -> dict[str, Any]:
    """Every saved template and label-word version, by a label the picker shows (``name vN [aliases]``),
    with its editor text; the editors' drafts are offered under ``DRAFT``."""
    from backend.services.versions import label_words_text

    out: dict[str, dict[str, str]] = {"template": {}, "verbalizer": {}}
    for kind in out:
        for name in ctx.store.list_names(kind, project=ctx.project):
            for v in ctx.store.list_versions(kind, name, project=ctx.project):
                alias = f" [{', '.join(v.aliases)}]" if v.aliases else ""
                text = v.content if kind == "template" else label_words_text(v.content)
                out[kind][f"{name} v{v.number}{alias}"] = text
    return {"templates": out["template"], "label_words": out["verbalizer"]}


def resolve(picked: Sequence[str], saved: dict[str, str], draft: str) -> list[str]:
    """The editor texts behind the picker's labels, in the order picked (an unknown label is skipped:
    a version deleted since the picker was drawn)."""
    return [draft if p == DRAFT else saved[p] for p in picked if p == DRAFT or p in saved]
