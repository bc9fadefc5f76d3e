"""The studio's template search: candidates ranked on the selection's dev rows within a budget of full
evaluations, as a job (``backend.workbench.search_job``), and (when asked) the best few then queued into
the prompt comparison beside the user's template.

Why the comparison and not a verdict: the search ranks on the rows it chose on, so its own scores
flatter the winner; the comparison scores the user's template and the best few on dev rows the search
never saw (it then ranks on the other half) with paired intervals and McNemar, and records them as runs
the user can keep.
"""
from __future__ import annotations

import math
from typing import Any

from backend.services import workbench_jobs
from backend.services.context import StudioContext
from backend.services.results import service, user_error
from backend.workbench.search_job import MAX_BUDGET, MAX_KEEP, MAX_REPHRASINGS, MAX_TASK


def _number(value: Any, kind: type, low: float, high: float, field: str) -> tuple[Any, dict[str, Any] | None]:
    """``value`` as ``kind`` within [low, high], or the error result naming ``field``."""
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None, user_error(f"{field} must be a number from {low:g} to {high:g}, got {str(value)[:40]!r}", field)
    if isinstance(value, bool) or (isinstance(out, float) and not math.isfinite(out)) or not low <= out <= high:
        return None, user_error(f"{field} must be from {low:g} to {high:g}, got {str(value)[:40]!r}", field)
    return out, None


@service("template_search")
def search_templates(ctx: StudioContext, *, template: str, label_words: str, selection: dict[str, Any],
                     task: str = "", rephrasings: Any = 8, budget: Any = 5.0, keep: Any = 3, max_length: Any = 256,
                     truncate: str = "tail", limit: int | None = None, compare: bool = False) -> dict[str, Any]:
    """Queue a ranking of template candidates for the editors' ``template`` and ``label_words`` on the
    selection's dev rows (``limit`` of them at most) as one job; without a job runner it runs here, to the
    end. With ``compare``, the job then queues the user's template and the best ``keep`` as a comparison.
    Returns ``template_search``'s answer for the job: poll that for progress and the ranking."""
    if not isinstance(template, str) or not template.strip():
        return user_error("write a template to search from (the candidates are scored beside it)", "template")
    if not isinstance(label_words, str) or not label_words.strip():
        return user_error("give label words: every candidate is scored with them", "label_words")
    if not isinstance(task, str) or len(task) > MAX_TASK:
        return user_error(f"the task's noun is a few words (at most {MAX_TASK} characters)", "task")
    checked = {}
    for name, value, kind, low, high in (("rephrasings", rephrasings, int, 0, MAX_REPHRASINGS),
                                         ("budget", budget, float, 0.5, MAX_BUDGET), ("keep", keep, int, 1, MAX_KEEP)):
        checked[name], err = _number(value, kind, low, high, name)
        if err:
            return err
    from backend.pipeline import load_split
    from backend.prompts.template import parse_template
    from backend.services import runconfig
    from backend.services.data import confine_config
    from backend.workbench.search_job import TemplateSearchSpec, run_template_search_job, submit_template_search

    parse_template(template)     # TemplateError with the span: said now, not by a job that fails later
    cfg = confine_config(ctx, runconfig.build(ctx, template=template, label_words=label_words, selection=selection,
                                              max_length=max_length, truncate=truncate, eval_limit=limit))
    load_split(cfg, "eval")      # a missing column or an empty split: said now too
    spec = TemplateSearchSpec(task=task.strip(), rephrasings=checked["rephrasings"], budget=checked["budget"],
                              keep=checked["keep"], seed=int((selection or {}).get("seed") or 0), compare=bool(compare),
                              label_words=label_words)
    job = submit_template_search(ctx.store, cfg, spec, project=ctx.project)
    if ctx.jobs is None:
        from backend.workbench.job import run_comparison_job
        from backend.workbench.jobbase import read_json, run_here
        from backend.workbench.search_job import JOB

        with ctx.model.lock:
            loaded = ctx.model.get()
            if run_here(ctx.store, job, run_template_search_job, loaded=loaded) == "succeeded":
                queued = (read_json(ctx.store, job, "report", JOB.result) or {}).get("comparison")
                if queued is not None:
                    run_here(ctx.store, int(queued), run_comparison_job, loaded=loaded)
    return template_search(ctx, job)


def _message(result: dict[str, Any]) -> str:
    n, held = result["candidates"], result.get("held_out") or 0
    ranked = (f"{n} templates ranked on {result['rows']} dev rows for {result['forwards']} row forwards "
              f"({result['full_evaluations']:.1f} full evaluations; one each would be {n}). Scores are on the rows "
              "they were chosen on, so they flatter the winners")
    if held:
        return f"{ranked}; the comparison scores them on the other {held} dev rows, held out from the search."
    return f"{ranked}: compare the best on other rows before keeping one."


@service("template_search")
def template_search(ctx: StudioContext, job: int) -> dict[str, Any]:
    """A template-search job's status, row forwards run / the most it may run, and once it finished its
    ranking, a message, and the comparison it queued (that comparison's own answer, under ``comparison``)."""
    from backend.services.workbench import comparison
    from backend.workbench.search_job import JOB, search_status

    res = workbench_jobs.answer(ctx, JOB, search_status, job)
    result = res.get("result")
    if result is not None:
        res["message"] = _message(result)
        if result.get("comparison") is not None:
            res["comparison"] = comparison(ctx, int(result["comparison"]))
    return res


@service("template_search")
def cancel_template_search(ctx: StudioContext, job: int) -> dict[str, Any]:
    from backend.workbench.search_job import JOB

    return workbench_jobs.cancel(ctx, JOB, job)


def latest_template_search(ctx: StudioContext) -> int | None:
    from backend.workbench.search_job import JOB

    return workbench_jobs.latest(ctx, JOB)
