"""The studio's template search: candidates ranked on the selection's dev rows within a budget of full
evaluations, and (when asked) the best few queued into the prompt comparison beside the user's template.

Why the comparison and not a verdict: the search ranks on the rows it chose on, so its own scores
flatter the winner; the comparison scores the user's template and the best few on the same rows with
paired intervals and McNemar, and records them as runs the user can keep.
"""
from __future__ import annotations

import math
from typing import Any

from backend.services.context import StudioContext
from backend.services.results import service, user_error

MAX_REPHRASINGS = 32
MAX_KEEP = 10
MAX_TASK = 60
SHOWN = 25            # ranking rows returned (the page shows the top; the rest only cost bytes)


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
    """Rank template candidates for the editors' ``template`` and ``label_words`` on the selection's dev rows
    (``limit`` of them at most). With ``compare``, the user's template and the best ``keep`` are queued as
    a comparison (``backend.services.workbench.compare``); its answer is under ``comparison``."""
    if not isinstance(template, str) or not template.strip():
        return user_error("write a template to search from (the candidates are scored beside it)", "template")
    if not isinstance(label_words, str) or not label_words.strip():
        return user_error("give label words: every candidate is scored with them", "label_words")
    if not isinstance(task, str) or len(task) > MAX_TASK:
        return user_error(f"the task's noun is a few words (at most {MAX_TASK} characters)", "task")
    checked = {}
    for name, value, kind, low, high in (("rephrasings", rephrasings, int, 0, MAX_REPHRASINGS),
                                         ("budget", budget, float, 0.5, 50), ("keep", keep, int, 1, MAX_KEEP)):
        checked[name], err = _number(value, kind, low, high, name)
        if err:
            return err
    from backend.pipeline import load_split, settings_for
    from backend.services import runconfig
    from backend.services.data import confine_config
    from backend.workbench.templatesearch import search_templates as run_search

    cfg = confine_config(ctx, runconfig.build(ctx, template=template, label_words=label_words, selection=selection,
                                              max_length=max_length, truncate=truncate, eval_limit=limit))
    dev = load_split(cfg, "eval")
    with ctx.model.lock:
        loaded = ctx.model.get()
        res = run_search(loaded, cfg.template, cfg.verbalizer, dev.examples, dev.label_names,
                         settings=settings_for(cfg, loaded.kind), task=task.strip(),
                         rephrasings=checked["rephrasings"], budget=checked["budget"], keep=checked["keep"],
                         seed=int((selection or {}).get("seed") or 0), batch_size=cfg.eval.batch_size)
    out = res.to_dict()
    best = [p.content for p in res.best(checked["keep"])]
    out.update(ranking=out["ranking"][:SHOWN], candidates=len(res.ranking), best=best,
               message=(f"{len(res.ranking)} templates ranked on {res.rows} dev rows for {res.forwards} row forwards "
                        f"({res.full_evaluations:.1f} full evaluations; one each would be {len(res.ranking)}). "
                        "Scores are on the rows they were chosen on: compare the best on the same rows before "
                        "keeping one."))
    if compare:
        from backend.services import workbench

        templates = list(dict.fromkeys([cfg.template, *best]))
        out["comparison"] = workbench.compare(ctx, templates=templates, label_words=[label_words],
                                              selection=selection, max_length=max_length, truncate=truncate,
                                              baseline=0, limit=limit)
    return out
