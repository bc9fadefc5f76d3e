"""A soft-prompt ensemble as a job (``backend.workbench.jobbase``): queued, run by the job runner's child
process with progress, cancel and liveness, and recorded on its own run, which the Playground then serves.

Unlike the other workbench jobs, the job's run *is* the result: a run of method ``soft-ensemble`` whose
artifacts (the stacked soft vectors, ``soft_ensemble.json``, the first member's ``run.json``) are what it
serves from, with its lineage (every row any member trained on, the dev rows it was scored on), metrics
and predictions. ``soft_ensemble_members.json`` (kind ``config``) names the members and how they are
combined; the members are checked when it is queued and again when it runs.

Its score records how many of the rows it scored chose a member's checkpoint (``backend.workbench.selection``).
"""
from __future__ import annotations

import shutil
from typing import Any, Callable

from backend.workbench.jobbase import EventProgress, JobKind

JOB = JobKind("soft-ensemble", "soft-prompt ensemble", spec="soft_ensemble_members.json",
              result="soft_ensemble_result.json", progress=("ensemble/rows_scored", "ensemble/rows_total"),
              field="runs")


def submit_soft_ensemble(store: Any, folders: dict[int, Any], combine_by: str, *, project: str | None = None) -> int:
    """Queue the ensemble of the trained runs in ``folders`` (run id -> its materialised folder), checked
    first (a job that cannot start is never queued); returns the job's run id (its parent: the first member)."""
    from backend.workbench.softensemble import plan_ensemble

    plan = plan_ensemble(store, folders, combine_by)
    return JOB.submit(store, plan.config, {"runs": plan.ids, "combine": combine_by}, project=project,
                      parent_run_id=plan.ids[0])


def run_soft_ensemble_job(store: Any, run_id: int, *, loaded: Any = None,
                          should_stop: Callable[[], bool] | None = None) -> str:
    """Run soft-ensemble job ``run_id`` here; returns its final status (recorded on the run, with the reason
    when it failed or was cancelled). ``loaded``: the base model already in memory, else the config's."""
    return JOB.run(store, run_id, lambda info: _run(store, info, loaded, should_stop), lambda result: {})


def _run(store: Any, info: Any, loaded: Any, should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    from backend.jobs.paths import run_dir
    from backend.serving import materialize_run
    from backend.workbench.softensemble import plan_ensemble, score_into

    _, spec, loaded = JOB.open(store, info, loaded)
    # the members' trained files, copied from the store for the time it runs (under the store's own runs
    # folder: the config's output_dir is the first member's)
    members = run_dir(store, info.id) / "members"
    try:
        with EventProgress(store, info.id, JOB.progress) as progress:
            folders = {int(i): materialize_run(store, int(i), members) for i in spec["runs"]}
            plan = plan_ensemble(store, folders, str(spec["combine"]))
            from backend.models.hashing import refuse_other_revision
            from backend.workbench.selection import selection_metrics

            refuse_other_revision(plan.metas[0].get("model_revision"), getattr(loaded, "revision", None),
                                  "its members", info.config.get("model", "the base model"),
                                  "their soft prompts would be scored on another model than they learned on",
                                  field="runs")

            chosen_on = selection_metrics(store, plan.ids, plan.dev.examples, _dev_rows)
            return score_into(store, info.id, plan, folders, str(spec["combine"]), loaded, should_stop=should_stop,
                              progress=progress, selection=chosen_on)
    finally:
        shutil.rmtree(members, ignore_errors=True)


def ensemble_status(store: Any, info: Any) -> dict[str, Any]:
    """Where soft-ensemble job ``info`` stands: status, replicated rows scored / total, and its result
    (accuracy with its interval, each member's accuracy) once it succeeded."""
    out = JOB.status(store, info)
    out.update(rows_scored=out["done_count"], rows_total=out["total_count"])
    return out


def _dev_rows(run: Any) -> list[Any]:
    """The dev rows run ``run`` was scored on, read again from its config (as ``plan_ensemble`` reads them)."""
    from backend.config import RunConfig
    from backend.pipeline import load_split

    return load_split(RunConfig.from_dict(run.config), "eval").examples
