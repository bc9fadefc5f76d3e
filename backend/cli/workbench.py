"""``python -m backend compare | search-words | kpt | search-templates``: the design workbench from the CLI.

Every command reads a RunConfig for the model, the data and the encoding. ``compare`` scores templates x
verbalizers on the config's evaluation rows; ``search-words`` and ``kpt`` read the config's *training*
rows only (K-shot sampled when ``data.shots`` is set), so what they find was never chosen on the rows
it is later scored on. Output is one JSON document on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backend.cli.common import open_store, print_json
from backend.cli.eval import _config_from
from backend.errors import ConfigError


def _verbalizer_arg(text: str) -> Any:
    """A verbalizer given on the command line: JSON ({class: [words]}) or a .json/.txt/.csv file."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--verbalizer is not valid JSON: {exc.msg} (character {exc.pos})") from None
    return text


def _loaded(cfg: Any) -> Any:
    from backend.pipeline import load_for_eval

    return load_for_eval(cfg)


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\r{done}/{total} rows scored")
    sys.stderr.flush()


def cmd_compare(args: argparse.Namespace) -> int:
    from backend.pipeline import check_model, load_split, settings_for
    from backend.workbench.compare import Prompt, compare_prompts

    cfg = _config_from(args)
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


def cmd_search_words(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from backend.pipeline import load_split, settings_for
    from backend.workbench.labelsearch import search_label_words

    cfg = _config_from(args)
    train = load_split(cfg, "train")
    loaded = _loaded(cfg)
    res = search_label_words(loaded, cfg.template, train.examples, train.label_names,
                             settings=settings_for(cfg, loaded.kind), pool=args.pool, keep=args.keep)
    print_json(asdict(res))
    return 0


def cmd_kpt(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from backend.pipeline import build_verbalizer, load_split, settings_for
    from backend.workbench.kpt import knowledgeable_verbalizer

    cfg = _config_from(args)
    train = load_split(cfg, "train")
    seeds = build_verbalizer(cfg.verbalizer, train.label_names)
    loaded = _loaded(cfg)
    res = knowledgeable_verbalizer(loaded, cfg.template, dict(zip(seeds.classes, seeds.words)), train.examples,
                                   settings=settings_for(cfg, loaded.kind), neighbours=args.neighbours)
    print_json(asdict(res))
    return 0


def cmd_search_templates(args: argparse.Namespace) -> int:
    from backend.pipeline import check_model, load_split, settings_for
    from backend.workbench.templatesearch import search_templates

    cfg = _config_from(args)
    if args.limit is not None:
        cfg.data.limit = args.limit
    dev = load_split(cfg, "eval")
    loaded = _loaded(cfg)
    check_model(cfg, loaded)
    res = search_templates(loaded, cfg.template, cfg.verbalizer, dev.examples, dev.label_names,
                           settings=settings_for(cfg, loaded.kind), task=args.task, rephrasings=args.rephrasings,
                           budget=args.budget, keep=args.keep, seed=args.seed, batch_size=cfg.eval.batch_size,
                           extra=args.extra or ())
    print_json({"rows": len(dev.examples), "source": dev.source, **res.to_dict(),
                "best": [{"name": p.name, "template": p.content} for p in res.best(args.keep)],
                "note": "scores are on the rows the templates were chosen on; confirm the best with compare "
                        "on other rows"})
    return 0
