"""Which scored rows chose something: a score on the rows that picked a run's checkpoint (it kept the best of
several dev evaluations) or a sweep's configuration is the winner of a contest on those same rows —
optimistic, not a held-out estimate. A run scored later (the Evaluate tab's evaluation of a trained run, a
soft-prompt ensemble of such runs) records how many of its rows those are, and
``backend.services.runs.caveats`` says so with the run named.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

# recorded on a run whose scored rows were checked against the rows that chose something
SELECTED_ON = "eval/selected_on_scored_rows"             # scored rows that chose a checkpoint (chosen_among > 1)
SWEEP_SELECTED_ON = "eval/sweep_selected_on_scored_rows"  # scored rows a sweep chose the configuration by
SELECTION_UNCHECKED = "eval/selection_unchecked"          # runs whose choosing rows no longer read as recorded


def selection_metrics(store: Any, run_ids: Sequence[int], scored: Sequence[Any],
                      dev_of: Callable[[Any], Sequence[Any]]) -> dict[str, float]:
    """How many of the ``scored`` rows (compared by input, ``input_key``: the label does not count) are rows
    that chose something for the runs ``run_ids`` (a trained run, or an ensemble's members): the dev rows of
    a run that kept the best of several dev evaluations (``final/chosen_among`` > 1; only its first
    ``train.eval_limit`` rows, what those evaluations scored), and the dev rows a sweep chose a "from-sweep"
    run's configuration by. A score on them is the winner of a contest on the same rows: optimistic.

    Each run's dev rows are read again (``dev_of(run)``) and must be the rows its record lists; when they are
    not (the file changed since) the overlap is unknown, counted in ``SELECTION_UNCHECKED`` rather than
    reported as none. Empty when nothing was chosen on dev rows. Cheap: sets of input keys, no model."""
    from backend.data.fingerprint import input_key
    from backend.errors import StudioError
    from backend.recording import row_ids

    checkpoint: set[str] | None = None
    configuration: set[str] | None = None
    unchecked = 0
    for rid in dict.fromkeys(int(i) for i in run_ids):
        run = store.get_run(rid)
        chose = (run.metrics.get("final/chosen_among") or 0) > 1
        swept = any(t.startswith("from-sweep:") for t in run.tags)
        if not (chose or swept):
            continue
        try:
            dev = list(dev_of(run))
        except StudioError:          # its data cannot be read any more: nothing to compare with
            unchecked += 1
            continue
        snap = store.get_dataset_snapshot(run.dataset_snapshot_id) if run.dataset_snapshot_id is not None else None
        recorded = snap.row_counts.get("eval_rows") if snap is not None else None
        if recorded is not None and recorded != row_ids(dev):
            unchecked += 1
            continue
        keys = [input_key(ex) for ex in dev]
        if chose:
            limit = ((run.config or {}).get("train") or {}).get("eval_limit")
            checkpoint = (checkpoint or set()) | set(keys[:limit] if limit else keys)
        if swept:
            configuration = (configuration or set()) | set(keys)
    out: dict[str, float] = {}
    scored_keys = [input_key(ex) for ex in scored] if checkpoint is not None or configuration is not None else []
    for key, chosen in ((SELECTED_ON, checkpoint), (SWEEP_SELECTED_ON, configuration)):
        if chosen is not None:
            out[key] = float(sum(k in chosen for k in scored_keys))
    if unchecked:
        out[SELECTION_UNCHECKED] = float(unchecked)
    return out
