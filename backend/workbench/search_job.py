"""A template search as a job (``backend.workbench.jobbase``): queued, run by the job runner's child
process with progress, cancel and liveness, its ranking kept on the run.

The job is a run of method ``template-search``. Its config is the user's template and label words on the
rows searched (a valid RunConfig: model, data, encoding); ``template_search.json`` (kind ``config``) holds
the search's own settings. The child ranks the candidates on the config's dev rows, writing
``search/forwards`` events as batches finish, records which rows it used (lineage), and attaches the
ranking. With ``compare``, it ranks on half of the dev rows (stratified, seeded) and then queues a
comparison of the user's template and the best few on the other half (a comparison job whose parent is
the search): the search's own scores are on the rows the winners were chosen on and flatter them, and a
comparison on those same rows would too.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.workbench.jobbase import EventProgress, JobKind

JOB = JobKind("template-search", "template search", spec="template_search.json", result="template_search.json",
              progress=("search/forwards", "search/forwards_budget"), field="template_search")
MAX_REPHRASINGS = 32
MAX_KEEP = 10
MAX_TASK = 60
MAX_BUDGET = 50.0
MAX_EXTRA = 50        # templates of the user's own ranked with the rest (the CLI's --extra)
MAX_EXTRA_CHARS = 10_000
SHOWN = 25            # ranking rows kept in the result (the page shows the top; the rest only cost bytes)
RANKED_ON = "template search: the half of the dev rows it ranked on (stratified, seeded)"
HELD_OUT = "template search: the other half of the dev rows, held out from the search to compare its winners"


@dataclass
class TemplateSearchSpec:
    """The search's settings (the template, label words and rows are the job's RunConfig)."""
    task: str = ""
    rephrasings: int = 8
    budget: float = 5.0             # in full evaluations of one template on every row
    keep: int = 3
    seed: int = 0
    compare: bool = False           # queue a comparison of the user's template and the best ``keep``
    label_words: str = ""           # the editor's text of the label words, shown in that comparison
    extra: tuple[str, ...] = ()     # more templates to rank with the rest (one that does not parse is dropped, said)

    def check(self) -> TemplateSearchSpec:
        if not isinstance(self.task, str) or len(self.task) > MAX_TASK:
            raise ConfigError(f"the task's noun is a few words (at most {MAX_TASK} characters)", field="task")
        if len(self.extra) > MAX_EXTRA:
            raise ConfigError(f"at most {MAX_EXTRA} extra templates, got {len(self.extra)}", field="extra")
        for i, text in enumerate(self.extra):
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_EXTRA_CHARS:
                raise ConfigError(f"extra template {i + 1} must be a text of 1 to {MAX_EXTRA_CHARS:,} characters",
                                  field="extra")
        for name, low, high in (("rephrasings", 0, MAX_REPHRASINGS), ("budget", 0.5, MAX_BUDGET),
                                ("keep", 1, MAX_KEEP), ("seed", 0, 2**31 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
                raise ConfigError(f"{name} must be from {low:g} to {high:g}, got {str(value)[:40]!r}", field=name)
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TemplateSearchSpec:
        return cls(task=str(raw.get("task", "")), rephrasings=int(raw.get("rephrasings", 8)),
                   budget=float(raw.get("budget", 5.0)), keep=int(raw.get("keep", 3)), seed=int(raw.get("seed", 0)),
                   compare=bool(raw.get("compare", False)), label_words=str(raw.get("label_words", "")),
                   extra=_texts(raw.get("extra"))).check()


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError("extra must be a list of templates", field="extra")
    return tuple(value)


def submit_template_search(store: Any, cfg: RunConfig, spec: TemplateSearchSpec, *, project: str | None = None) -> int:
    """Queue the search (checked first: a job that cannot start is never queued); returns the job's run id."""
    from backend.workbench.compare import refuse_demos

    refuse_demos(cfg, [cfg.template, *spec.extra], "a template search", JOB.field)
    return JOB.submit(store, cfg, asdict(spec.check()), project=project)


def run_template_search_job(store: Any, run_id: int, *, loaded: Any = None,
                            should_stop: Callable[[], bool] | None = None) -> str:
    """Run template-search job ``run_id`` here; returns its final status (recorded on the run, with the
    reason when it failed or was cancelled). ``loaded``: the model already in memory, else the config's."""
    def summary(result: dict[str, Any]) -> dict[str, float]:
        # the winner's, on the rows it reached: the max over every candidate would be one dropped early after
        # a lucky few rows (ranked best-first, the winner is first)
        best = result["ranking"][0]
        return {"search/best_accuracy": best["accuracy"], "search/best_rows": best["rows"],
                "search/candidates": result["candidates"], "search/full_evaluations": result["full_evaluations"]}

    return JOB.run(store, run_id, lambda info: _run(store, info, loaded, should_stop), summary)


def _run(store: Any, info: Any, loaded: Any, should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    from backend.cpu_memory import cpu_buffers, mode_for
    from backend.pipeline import build_verbalizer, load_split, rows_of, settings_for
    from backend.recording import record_started
    from backend.workbench.templatesearch import search_templates

    cfg, raw, loaded = JOB.open(store, info, loaded)
    spec = TemplateSearchSpec.from_dict(raw)
    full = dev = load_split(cfg, "eval")
    rest: list[int] = []
    if spec.compare:     # the winners are compared on rows they were not chosen on
        ranked, rest = halves([e.label for e in full.examples], spec.seed)
        if not ranked or not rest:
            raise ConfigError(f"{len(full.examples)} dev row(s) cannot be split into rows to search on and rows "
                              "to compare the winners on: use more dev rows", field="template_search")
        dev = rows_of(full, ranked, RANKED_ON)
    record_started(store, info.id, cfg, loaded=loaded, verbalizer=build_verbalizer(cfg.verbalizer, dev.label_names, files=True),
                   train=[], eval=dev.examples, classes=dev.label_names, how=dev.how, counts=dev.counts)
    with EventProgress(store, info.id, JOB.progress) as progress, \
            cpu_buffers(mode_for(loaded.model, loaded.device.type, cfg.train.cpu_memory)):
        res = search_templates(loaded, cfg.template, cfg.verbalizer, dev.examples, dev.label_names,
                               settings=settings_for(cfg, loaded.kind), task=spec.task.strip(),
                               rephrasings=spec.rephrasings, budget=spec.budget, keep=spec.keep, seed=spec.seed,
                               batch_size=cfg.eval.batch_size, extra=spec.extra, should_stop=should_stop,
                               progress=progress)
    out = res.to_dict()
    best = [p.content for p in res.best(spec.keep)]
    out.update(ranking=out["ranking"][:SHOWN], candidates=len(res.ranking), best=best, template=cfg.template,
               comparison=None, held_out=0)
    if spec.compare:
        out["held_out"] = len(rest)
        out["comparison"] = _queue_comparison(store, cfg, spec, best, info, rest)
    return out


def halves(labels: list[Any], seed: int) -> tuple[list[int], list[int]]:
    """Row numbers to rank on and to hold out: half of each label's rows each (seeded; a label with an odd
    count gives its extra row to the two sides in turn). The search's winners are then compared on rows
    they were not chosen on: scored on the rows that chose them, any template looks better than it is."""
    import random

    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(str(label), []).append(i)
    rng, ranked, extra = random.Random(seed), [], 0
    for key in sorted(groups):
        rows = groups[key][:]
        rng.shuffle(rows)
        take = len(rows) // 2 + (len(rows) % 2 if extra % 2 == 0 else 0)
        extra += len(rows) % 2
        ranked += rows[:take]
    chosen = set(ranked)
    return sorted(chosen), [i for i in range(len(labels)) if i not in chosen]


def _queue_comparison(store: Any, cfg: RunConfig, spec: TemplateSearchSpec, best: list[str], info: Any,
                      rows: list[int]) -> int:
    """The user's template and the best found, with the user's label words, on the held-out ``rows`` of the
    dev rows: a comparison job (the runner picks it up next; without one, the caller runs it)."""
    from backend.workbench.compare import Prompt
    from backend.workbench.job import ComparisonSpec, submit_comparison

    templates = list(dict.fromkeys([cfg.template, *best]))
    shown = {"V1": spec.label_words} if spec.label_words else {}
    compare = ComparisonSpec([Prompt(f"T{i + 1}", t) for i, t in enumerate(templates)],
                             [Prompt("V1", copy.deepcopy(cfg.verbalizer))], baseline=0, shown=shown, rows=rows,
                             rows_why=HELD_OUT)
    return submit_comparison(store, cfg, compare, project=info.project, parent_run_id=info.id)


def search_status(store: Any, info: Any) -> dict[str, Any]:
    """Where template-search job ``info`` stands: status, row forwards run / the most it may run, and its
    ranking once it succeeded."""
    out = JOB.status(store, info)
    out.update(forwards=out["done_count"], forwards_budget=out["total_count"])
    return out
