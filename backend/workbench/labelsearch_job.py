"""A label-word search as a job (``backend.workbench.jobbase``): queued, run by the job runner's child
process with progress, cancel and liveness, its result and the training rows it read kept on the run.

The job is a run of method ``label-search``. Its config is the template on the selection's training rows
(verbalizer ``vocab``: the search reads the whole vocabulary at the mask); ``label_search.json`` (kind
``config``) holds the pool and how many candidates to keep. The child records the exact training rows it
reads (the run's dataset snapshot) before it starts, runs the model over them (``labels/rows_scored``
events per batch), then records the rest of the run's lineage with the words it found as the run's
verbalizer (under the name ``searched``, the name the page offers for saving them: saving the same words
again returns that version).

The words are chosen by how well they separate the rows searched, so those rows must never be the rows an
evaluation then scores: ``rows_to_search`` refuses a search whose rows share an input with the config's
evaluation rows (a one-file source read as both train and eval), and the studio, the CLI and the job all
read their rows through it.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from backend.config import RunConfig
from backend.errors import ConfigError, DatasetError
from backend.workbench.jobbase import EventProgress, JobKind

if TYPE_CHECKING:   # annotations only: the pipeline (and torch) load when a search runs, not on import
    from backend.pipeline import Split
    from backend.prompts.example import Example

JOB = JobKind("label-search", "label-word search", spec="label_search.json", result="label_search.json",
              progress=("labels/rows_scored", "labels/rows_total"), field="search")
SAVED_NAME = "searched"
MAX_POOL = 1000
MAX_KEEP = 50


@dataclass
class LabelSearchSpec:
    """How wide the search looks: the ``pool`` most likely tokens per class, of which ``keep`` are kept
    as candidates (every assignment of one per class is then scored)."""
    pool: int = 50
    keep: int = 5

    def check(self) -> LabelSearchSpec:
        for name, low, high in (("keep", 1, MAX_KEEP), ("pool", 1, MAX_POOL)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {str(value)[:40]!r}",
                                  field="search")
        if self.pool < self.keep:
            raise ConfigError(f"the pool ({self.pool}) must hold at least the {self.keep} candidates kept per class",
                              field="search")
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LabelSearchSpec:
        return cls(pool=int(raw.get("pool", 50)), keep=int(raw.get("keep", 5))).check()


def rows_to_search(cfg: RunConfig) -> tuple[Split, list[Example]]:
    """The config's training split and the rows of it a search reads (``search_rows``: what the job records
    as its rows), refused with a DatasetError when any of those rows is an input the config's evaluation
    scores: words chosen on a row make its score meaningless. Checked by input (``input_key``), against
    every evaluation row (``data.limit`` dropped: a later evaluation of the same data may score them all)."""
    from backend.pipeline import load_split
    from backend.workbench.labelsearch import search_rows

    train = load_split(cfg, "train")
    read = [train.examples[i] for i in search_rows(train.examples, train.label_names)]
    if cfg.data.eval or cfg.data.dev_fraction is not None:    # no evaluation rows named: none to keep apart
        every = copy.deepcopy(cfg)
        every.data.limit = None
        _refuse_scored_rows(read, load_split(every, "eval").examples)
    return train, read


def _refuse_scored_rows(read: Sequence[Example], scored: Sequence[Example]) -> None:
    """``check_disjoint`` (the check every run makes), its refusal said as what the search would do."""
    from backend.data.splitting import check_disjoint

    try:
        check_disjoint(read, scored)
    except DatasetError as exc:
        raise DatasetError(f"label words would be searched on the rows the evaluation scores ({exc.message}); "
                           "in the studio: set a dev fraction on the Data tab so the search reads only training "
                           "rows") from None


def submit_label_search(store: Any, cfg: RunConfig, spec: LabelSearchSpec, *, project: str | None = None) -> int:
    """Queue the search (checked first: a job that cannot start is never queued); returns the job's run id."""
    from backend.workbench.compare import refuse_demos

    refuse_demos(cfg, [cfg.template], "a label-word search", JOB.field)
    return JOB.submit(store, cfg, asdict(spec.check()), project=project)


def run_label_search_job(store: Any, run_id: int, *, loaded: Any = None,
                         should_stop: Callable[[], bool] | None = None) -> str:
    """Run label-search job ``run_id`` here; returns its final status (recorded on the run, with the reason
    when it failed or was cancelled). ``loaded``: the model already in memory, else the config's."""
    def summary(result: dict[str, Any]) -> dict[str, float]:
        return {"search/train_accuracy": result["train_accuracy"], "search/rows": result["rows"]}

    return JOB.run(store, run_id, lambda info: _run(store, info, loaded, should_stop), summary)


def _run(store: Any, info: Any, loaded: Any, should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    from backend.pipeline import build_verbalizer, settings_for
    from backend.recording import record_started, save_snapshot
    from backend.workbench.labelsearch import search_label_words

    cfg, raw, loaded = JOB.open(store, info, loaded)
    spec = LabelSearchSpec.from_dict(raw)
    train, read = rows_to_search(cfg)     # checked again here: a queued job's data may have changed since
    # the rows first: a search cancelled or failed before it found its words still says what it read
    store.set_rows(info.id, save_snapshot(store, cfg, train=read, eval=[], classes=train.label_names, how=train.how,
                                          counts=train.counts))
    with EventProgress(store, info.id, JOB.progress) as progress:
        res = search_label_words(loaded, cfg.template, train.examples, train.label_names,
                                 settings=settings_for(cfg, loaded.kind), pool=spec.pool, keep=spec.keep,
                                 should_stop=should_stop, progress=progress)
    cfg.name = SAVED_NAME
    record_started(store, info.id, cfg, loaded=loaded, verbalizer=build_verbalizer(res.best, train.label_names),
                   train=read, eval=[], classes=train.label_names, how=train.how, counts=train.counts)
    out = asdict(res)
    out["label_words"] = "\n".join(f"{c}: {', '.join(w)}" for c, w in res.best.items())
    return out


def label_search_status(store: Any, info: Any) -> dict[str, Any]:
    """Where label-search job ``info`` stands: status, training rows scored / total, and its result (the
    candidates, the best words as editor text) once it succeeded."""
    out = JOB.status(store, info)
    out.update(rows_scored=out["done_count"], rows_total=out["total_count"])
    return out
