"""``python -m backend compare | search-words | kpt | search-templates``: the design workbench from the CLI.

Every command reads a RunConfig for the model, the data and the encoding. ``compare`` scores templates x
verbalizers on the config's evaluation rows; ``search-words`` and ``kpt`` read the config's *training*
rows only (K-shot sampled when ``data.shots`` is set), so what they find was never chosen on the rows
it is later scored on. Output is one JSON document on stdout.

``search-templates`` and ``search-words`` run the studio's jobs (``backend.workbench.search_job``,
``labelsearch_job``) in this process, so a search from the CLI is recorded as the studio records it: a run
with its exact rows, settings and result, in the Runs tab (``--no-db``: not recorded). ``search-templates
--compare`` ranks on half of the dev rows and compares the best with the config's template on the other
half, as the studio's "search, then compare" does.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any

from backend.cli.common import open_store, print_json
from backend.cli.eval import _config_from
from backend.errors import ConfigError, StudioError


def _verbalizer_arg(text: str) -> Any:
    """A verbalizer given on the command line: JSON ({class: [words]}) or a .json/.txt/.csv file, read here
    (the comparison records and scores the words themselves, wherever its job runs)."""
    from backend.prompts.verbalizer import read_label_word_file

    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--verbalizer is not valid JSON: {exc.msg} (character {exc.pos})") from None
    return read_label_word_file(text)


def _loaded(cfg: Any) -> Any:
    from backend.pipeline import load_for_eval

    return load_for_eval(cfg)


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\r{done}/{total} rows scored")
    sys.stderr.flush()


def cmd_compare(args: argparse.Namespace) -> int:
    cfg = _config_from(args)     # before the heavy imports: a config's mistake is said at once
    from backend.pipeline import check_model, load_split, settings_for
    from backend.workbench.compare import Prompt, compare_prompts

    if args.limit is not None:
        cfg.data.limit = args.limit
    templates = [Prompt(f"t{i + 1}", t) for i, t in enumerate(args.template or [cfg.template])]
    verbs = [Prompt(f"v{i + 1}", _verbalizer_arg(v)) for i, v in enumerate(args.verbalizer or [])] or \
        [Prompt("v1", cfg.verbalizer)]
    if not 0 <= args.baseline < len(templates) * len(verbs):
        raise ConfigError(f"--baseline must be between 0 and {len(templates) * len(verbs) - 1}")
    dev = load_split(cfg, "eval")
    loaded = _loaded(cfg)
    check_model(cfg, loaded)
    cmp = compare_prompts(loaded, templates, verbs, dev.examples, dev.label_names,
                          settings=settings_for(cfg, loaded.kind), batch_size=cfg.eval.batch_size,
                          calibrate=True, progress=_progress)
    sys.stderr.write("\n")
    recorded = None
    store = open_store(args)
    if store is not None:
        from backend.workbench.record import record_comparison

        recorded = record_comparison(store, cfg, loaded, cmp, templates, verbs, dev, baseline=args.baseline)
    print_json({"rows": len(dev.examples), "source": dev.source, "split": dev.how or None, "recorded": recorded,
                "forwards": cmp.forwards, "seconds": cmp.seconds,
                "templates": {p.name: p.content for p in templates},
                "verbalizers": {p.name: p.content for p in verbs},
                "uncalibrated": cmp.table(baseline=args.baseline),
                "calibrated": cmp.table(baseline=args.baseline, calibrated=True)})
    return 0


WAIT_S = 1.0     # how often a job another process claimed is looked at
CHOSEN_ON = "scores are on the rows the templates were chosen on"
UNCONFIRMED = f"{CHOSEN_ON}; confirm the best with compare on other rows (or search with --compare)"


class JobFailed(StudioError):
    """A workbench job that ended without its result: the message names the job and says why."""

    def __str__(self) -> str:
        return self.message


def _run_job(store: Any, kind: Any, job: int, loaded: Any) -> dict[str, Any]:
    """Run queued workbench job ``job`` here to its end; its result, or a JobFailed with the reason it did
    not succeed (Ctrl-C records it cancelled before the CLI exits).

    If a studio or a worker on the same database claimed it first (``jobbase.run_here``), it runs there
    and this waits for its end."""
    from backend.workbench.jobbase import ENDED, job_runner, read_json, run_here
    from storage import InvalidTransition

    try:
        status = run_here(store, job, job_runner(kind.method), loaded=loaded)
    except KeyboardInterrupt:
        with contextlib.suppress(InvalidTransition):
            store.set_status(job, "cancelled", note="interrupted (Ctrl-C)")
        raise
    if status is None:          # another process claimed it first: it runs there
        while (status := store.get_run(job).status) not in ENDED:
            time.sleep(WAIT_S)
    if status != "succeeded":
        raise JobFailed(f"{kind.title} #{job} {status}: {store.get_run(job).error or 'no reason recorded'}")
    return read_json(store, job, "report", kind.result) or {}


def cmd_search_words(args: argparse.Namespace) -> int:
    cfg = _config_from(args)
    from dataclasses import asdict

    from backend.pipeline import WHOLE_VOCAB, settings_for
    from backend.workbench.labelsearch import search_label_words
    from backend.workbench.labelsearch_job import (JOB, SAVED_NAME, LabelSearchSpec, rows_to_search,
                                                   submit_label_search)

    spec = LabelSearchSpec(pool=args.pool, keep=args.keep).check()
    # a missing column, an empty split, or training rows the evaluation scores: said before the model loads
    train, _ = rows_to_search(cfg)
    store = open_store(args)
    loaded = _loaded(cfg)
    if store is None:
        res = search_label_words(loaded, cfg.template, train.examples, train.label_names,
                                 settings=settings_for(cfg, loaded.kind), pool=spec.pool, keep=spec.keep)
        print_json({"recorded": None, **asdict(res)})
        return 0
    cfg.verbalizer, cfg.name = WHOLE_VOCAB, SAVED_NAME     # the job's config, as the studio queues it
    job = submit_label_search(store, cfg, spec, project=cfg.project)
    out = _run_job(store, JOB, job, loaded)
    print_json({"recorded": {"search": job}, **out})
    return 0


def cmd_kpt(args: argparse.Namespace) -> int:
    cfg = _config_from(args)
    from dataclasses import asdict

    from backend.pipeline import build_verbalizer, load_split, settings_for
    from backend.workbench.kpt import knowledgeable_verbalizer

    train = load_split(cfg, "train")
    seeds = build_verbalizer(cfg.verbalizer, train.label_names, files=True)
    loaded = _loaded(cfg)
    res = knowledgeable_verbalizer(loaded, cfg.template, dict(zip(seeds.classes, seeds.words)), train.examples,
                                   settings=settings_for(cfg, loaded.kind), neighbours=args.neighbours)
    print_json(asdict(res))
    return 0


def cmd_search_templates(args: argparse.Namespace) -> int:
    cfg = _config_from(args)
    from backend.pipeline import check_model, load_split, settings_for
    from backend.workbench.templatesearch import search_templates
    from backend.workbench.search_job import TemplateSearchSpec

    if args.limit is not None:
        cfg.data.limit = args.limit
    spec = TemplateSearchSpec(task=args.task.strip(), rephrasings=args.rephrasings, budget=args.budget,
                              keep=args.keep, seed=args.seed, compare=args.compare,
                              extra=tuple(args.extra or ())).check()
    store = open_store(args)
    if store is None and spec.compare:
        raise ConfigError("--compare records the comparison of the winners as runs: drop --no-db")
    dev = load_split(cfg, "eval")
    loaded = _loaded(cfg)
    check_model(cfg, loaded)
    if store is not None:
        return _search_templates_job(store, cfg, spec, loaded, dev)
    res = search_templates(loaded, cfg.template, cfg.verbalizer, dev.examples, dev.label_names,
                           settings=settings_for(cfg, loaded.kind), task=spec.task, rephrasings=spec.rephrasings,
                           budget=spec.budget, keep=spec.keep, seed=spec.seed, batch_size=cfg.eval.batch_size,
                           extra=spec.extra)
    print_json({"recorded": None, "rows": len(dev.examples), "source": dev.source, **res.to_dict(),
                "best": [{"name": p.name, "template": p.content} for p in res.best(spec.keep)],
                "note": UNCONFIRMED})
    return 0


def _search_templates_job(store: Any, cfg: Any, spec: Any, loaded: Any, dev: Any) -> int:
    """The search as the studio's job, recorded; with ``--compare``, then its comparison job."""
    from backend.workbench import job as comparison_job
    from backend.workbench.search_job import JOB, submit_template_search

    job = submit_template_search(store, cfg, spec, project=cfg.project)
    out = _run_job(store, JOB, job, loaded)
    recorded: dict[str, Any] = {"search": job}
    comparison = None
    if out.get("comparison") is not None:
        recorded["comparison"] = int(out["comparison"])
        comparison = _run_job(store, comparison_job.JOB, recorded["comparison"], loaded)
    note = (f"{CHOSEN_ON}; the comparison scores the config's template and the best on the other "
            f"{out['held_out']} dev rows, held out from the search" if comparison is not None else UNCONFIRMED)
    print_json({"recorded": recorded, "source": dev.source, **out,
                "best": [{"name": f"best {i + 1}", "template": t} for i, t in enumerate(out["best"])],
                "comparison": comparison, "note": note})
    return 0
