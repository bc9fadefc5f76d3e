"""A label-word search as a job (``backend.workbench.jobbase``): queued, run by the job runner's child
process with progress, cancel and liveness, its result and the training rows it read kept on the run.

The job is a run of method ``label-search``. Its config is the template on the selection's training rows
(verbalizer ``vocab``: the search reads the whole vocabulary at the mask); ``label_search.json`` (kind
``config``) holds the pool and how many candidates to keep. The child records the exact training rows it
reads (the run's dataset snapshot) before it starts, runs the model over them (``labels/rows_scored``
events per batch), then records the rest of the run's lineage with the words it found as the run's
verbalizer (under the name ``searched``, the name the page offers for saving them: saving the same words
again returns that version).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.workbench.jobbase import EventProgress, JobKind

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
    from backend.pipeline import build_verbalizer, load_split, settings_for
    from backend.recording import record_started, save_snapshot
    from backend.workbench.labelsearch import search_label_words, search_rows

    cfg, raw, loaded = JOB.open(store, info, loaded)
    spec = LabelSearchSpec.from_dict(raw)
    train = load_split(cfg, "train")
    read = [train.examples[i] for i in search_rows(train.examples, train.label_names)]
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
