"""From a RunConfig to the engine's objects, and a zero-shot run recorded in storage.

Shared by the CLI, the job runner and the studio's services, so all three resolve data, template and
verbalizer the same way.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from backend.batching import EncodeSettings
from backend.config import RunConfig
from backend.cpu_memory import cpu_buffers, mode_for
from backend.errors import ConfigError, DatasetError
from backend.evaluate import EvalResult, evaluate, evaluate_vocabulary, recorded_scalars
from backend.liveness import keep_alive
from backend.prompt_model import PromptModel
from backend.prompts.demos import DemoChooser, build_pool
from backend.prompts.example import Example
from backend.prompts.template import Template, compile_template, mask_prefix
from backend.prompts.verbalizer import CompiledVerbalizer, Verbalizer, compile_verbalizer, parse_verbalizer

OPEN_VOCAB = "labels"   # verbalizer value meaning: every distinct label is its own class and label word
WHOLE_VOCAB = "vocab"   # verbalizer value meaning: the classes are the whole vocabulary (LAMA probing)


@dataclass
class Split:
    examples: list[Example]
    label_names: list[str]
    fingerprint: str
    source: str
    columns: dict[str, Any]
    how: str = ""                 # how the rows were chosen, when one source was split into train / dev
    counts: dict[str, int] = field(default_factory=dict)   # train / dev rows of that split


def rows_of(split: Split, indices: Sequence[int], why: str) -> Split:
    """``split`` narrowed to the rows at ``indices`` (in that order); ``why`` is added to how its rows were
    chosen, which the run's record keeps. ConfigError when an index is not a row of it (its data changed)."""
    n = len(split.examples)
    bad = [i for i in indices if not (isinstance(i, int) and 0 <= i < n)]
    if bad or len(set(indices)) != len(indices):
        raise ConfigError(f"row {bad[0] if bad else 'numbers repeat'} is not one of the {n} rows of {split.source}: "
                          "the data changed since this was queued", field="data")
    how = "; ".join(x for x in (split.how, why) if x)
    return dataclasses.replace(split, examples=[split.examples[i] for i in indices], how=how)


def load_split(cfg: RunConfig, which: str) -> Split:
    """Load the train or eval rows the config names (few-shot sampling applies to train only). With
    ``data.dev_fraction`` one source is split, seeded and stratified, and ``which`` picks its part."""
    from backend.data import fingerprint, load_examples, sample_k_shot
    from backend.data.splitting import describe, one_source, split_train_dev

    d = cfg.data
    if d.dev_fraction is not None:
        src, split = one_source(d)
    else:
        src = d.eval if which == "eval" else d.train
        split = d.eval_split if which == "eval" else d.train_split
    if src is None:
        raise ConfigError(f"data.{which}: missing")
    whole = d.dev_fraction is not None or which != "eval"
    loaded = load_examples(src, columns=d.columns or None, split=split, limit=None if whole else d.limit,
                           label_names=d.label_names)
    examples, digest, how, counts = list(loaded.examples), loaded.fingerprint, "", {}
    if d.dev_fraction is not None:
        train, dev = split_train_dev(examples, d.dev_fraction, d.seed)
        examples = (dev[:d.limit] if d.limit else dev) if which == "eval" else train
        digest = fingerprint(examples, loaded.label_names)
        how, counts = describe(d.dev_fraction, d.seed, len(train), len(dev)), {"train": len(train), "dev": len(dev)}
    if which == "train" and d.shots:
        examples = sample_k_shot(examples, d.shots, d.seed)
    return Split(examples=examples, label_names=list(loaded.label_names), fingerprint=digest,
                 source=src, columns=dict(d.columns or {}), how=how, counts=counts)


def load_train_dev(cfg: RunConfig) -> tuple[Split, Split]:
    """The rows a training run learns from and the rows it is scored on, refused when they share a row
    (by content: the score would measure memorisation)."""
    from backend.data.splitting import check_disjoint

    if not (cfg.data.eval or cfg.data.dev_fraction):
        raise DatasetError("training needs evaluation rows: set data.eval (the dev set), or data.dev_fraction "
                           "to split data.train")
    train, dev = load_split(cfg, "train"), load_split(cfg, "eval")
    check_disjoint(train.examples, dev.examples)
    return train, dev


def build_verbalizer(spec: Any, classes: Sequence[str], examples: Sequence[Example] = (), *,
                     files: bool = False) -> Verbalizer:
    """``files``: ``spec`` is a run config's verbalizer, which may name a label-word file (the studio
    refuses one in the configs it queues, ``services.data.confine_config``); label words from anywhere
    else (a comparison's extra label-word sets) are inline (see ``parse_verbalizer``)."""
    if spec == WHOLE_VOCAB:
        # The model scores every vocabulary row; this stand-in verbalizer only sizes the PromptModel.
        return parse_verbalizer({"*": ["the"]}, ["*"])
    if spec == OPEN_VOCAB:
        labels = sorted({str(e.label) for e in examples if e.label is not None})
        if not labels:
            raise DatasetError("open-vocabulary probing needs labelled examples")
        return parse_verbalizer({lab: [lab] for lab in labels}, labels)
    return parse_verbalizer(spec, list(classes) if classes else None, files=files)


def build_prompt_model(loaded: Any, cfg: RunConfig, classes: Sequence[str], examples: Sequence[Example] = (),
                       seed: int = 0) -> tuple[PromptModel, Template, CompiledVerbalizer]:
    template = compile_template(cfg.template, loaded.tokenizer)
    verb = build_verbalizer(cfg.verbalizer, classes, examples, files=True)
    compiled = compile_verbalizer(verb, loaded.tokenizer, prefix=mask_prefix(template))
    pm = PromptModel(loaded.model, loaded.kind, template, compiled, seed=seed)
    return pm, template, compiled


def plan_demos(cfg: RunConfig, template: Template, compiled: CompiledVerbalizer, pool_rows: Sequence[Example],
               eval_rows: Sequence[Example], embed: Any = None) -> DemoChooser | None:
    """How many demonstrations (config ``demos.k``, else the template's ``{"demos": K}``), from which rows:
    the training rows only, less any identical to an evaluation row. None when there are none to show."""
    block = template.parsed.demos
    k = cfg.demos.k if cfg.demos.k is not None else (block.value if block is not None else 0)
    if not k:
        return None
    if cfg.verbalizer == WHOLE_VOCAB:
        raise ConfigError("demonstrations need label words per class; whole-vocabulary probing has none",
                          field="demos.k")
    if block is None:
        raise ConfigError(f"demos.k is {k} but the template has no demonstrations block: add {{\"demos\": {k}}} "
                          "where they should go", field="template")
    if not pool_rows:
        raise ConfigError("demonstrations come from the training rows: set data.train (or data.dev_fraction)",
                          field="data.train")
    similar = cfg.demos.selection == "similar"
    if similar and embed is None:
        from backend.models.embed import SentenceEmbedder

        embed = SentenceEmbedder()
    words = [ws[0] for ws in compiled.verbalizer.words]
    pool = build_pool(pool_rows, compiled.classes, words, exclude=eval_rows, embed=embed if similar else None)
    if not pool.usable:
        raise ConfigError(f"none of the {len(pool_rows)} training rows can be a demonstration (each is identical "
                          "to an evaluation row or has no label of the verbalizer's classes)", field="data.train")
    return DemoChooser(pool=pool, k=k, selection=cfg.demos.selection, seed=cfg.demos.seed)


def settings_for(cfg: RunConfig, kind: str) -> EncodeSettings:
    return EncodeSettings(profile=kind, max_length=cfg.max_length, truncate=cfg.truncate)


def load_for_eval(cfg: RunConfig) -> Any:
    """The config's model, loaded on the default device in the dtype ``eval.dtype`` asks for."""
    from backend.models import load_model
    from backend.models.device import dtype_name, dtype_note, eval_device_dtype

    device, dtype = eval_device_dtype(cfg.eval.dtype)
    note = dtype_note(dtype, device)
    if note:     # asked for, so run as asked; said, since it can be several times slower than the default
        logging.getLogger(__name__).info("eval.dtype %s: %s", dtype_name(dtype), note)
    return load_model(cfg.model, device=device, dtype=dtype)


def check_model(cfg: RunConfig, loaded: Any) -> None:
    """A run is recorded with the model it ran on, so a config naming another model than the loaded one
    (or another dtype than it was loaded in) is refused rather than scored on the loaded model under the
    config's name."""
    if cfg.model not in (loaded.spec, loaded.model_id):
        raise ConfigError(f"the config asks for model {cfg.model!r}, but this evaluation runs on the loaded "
                          f"model {loaded.model_id!r}; set \"model\": {loaded.spec!r}, or run the config with "
                          "python -m backend, which loads the model it names", field="model")
    check_dtype(cfg, loaded)


def check_dtype(cfg: RunConfig, loaded: Any) -> None:
    """An evaluation asking for a dtype (``eval.dtype``) is refused on a model loaded in another one: it
    would be recorded as run in the dtype it did not run in."""
    if cfg.eval.dtype != "auto":
        from backend.models.device import dtype_name, eval_dtype

        wanted = eval_dtype(cfg.eval.dtype, loaded.device)
        if wanted != loaded.dtype:
            raise ConfigError(f"the config asks for {dtype_name(wanted)}, but the loaded model is in "
                              f"{dtype_name(loaded.dtype)}; set \"dtype\": \"auto\" to evaluate as loaded, or run "
                              "the config with python -m backend, which loads it in the dtype asked for",
                              field="eval.dtype")


def _support_rows(cfg: RunConfig, scored: Sequence[Example]) -> list[Example] | None:
    """The training rows ``eval.calibration: support`` takes its class priors from (None without it),
    refused (``check_disjoint``) when one is the input of a row being scored: priors computed on the very
    rows they correct would be fitted on the evaluation."""
    if cfg.eval.calibration != "support":
        return None
    from backend.data.splitting import check_disjoint

    support = load_split(cfg, "train").examples
    try:
        check_disjoint(support, scored)
    except DatasetError as exc:
        raise DatasetError(f"support calibration takes its priors from the training rows, but {exc.message}",
                           field=exc.field) from None
    return support


def run_zero_shot(cfg: RunConfig, *, loaded: Any = None, store: Any = None,
                  progress: Callable[[int, int], None] | None = None, parent_run_id: int | None = None
                  ) -> tuple[EvalResult, int | None]:
    """Evaluate the config's template + verbalizer zero-shot; record everything when a store is given
    (``parent_run_id``: the run this one re-runs with changes). The rows are read, and a support set that
    shares a row with them refused, before the model is loaded or run."""
    data = load_split(cfg, "eval")
    support = _support_rows(cfg, data.examples)
    loaded = loaded if loaded is not None else load_for_eval(cfg)
    check_model(cfg, loaded)
    pm, template, compiled = build_prompt_model(loaded, cfg, data.label_names, data.examples)
    wants_demos = cfg.demos.k if cfg.demos.k is not None else getattr(template.parsed.demos, "value", 0)
    train_rows = support if support is not None else []
    if support is None and wants_demos and (cfg.data.train or cfg.data.dev_fraction):
        train_rows = load_split(cfg, "train").examples
    demos = plan_demos(cfg, template, compiled, train_rows, data.examples)
    run_id, beating = None, contextlib.ExitStack()
    if store is not None:
        from backend.recording import create_run

        run_id = create_run(store, cfg, method="zero-shot", loaded=loaded, verbalizer=compiled.verbalizer,
                            train=train_rows, eval=data.examples, classes=list(compiled.classes),
                            tags=cfg.tags, how=data.how, counts=data.counts, parent_run_id=parent_run_id)
        # created running (this process): a queued row would be claimed by any job runner on the database
        beating.enter_context(keep_alive(store, run_id))   # a long evaluation must not look like a dead one
    try:
        if cfg.verbalizer == WHOLE_VOCAB:
            result = evaluate_vocabulary(pm, loaded.tokenizer, data.examples, settings=settings_for(cfg, loaded.kind),
                                         batch_size=cfg.eval.batch_size, precision_at=cfg.eval.precision_at or (1, 10),
                                         prefix=compiled.prefix)
        else:
            # on CPU, activation buffers kept between batches when memory allows (backend/cpu_memory.py)
            with cpu_buffers(mode_for(pm, loaded.device.type, cfg.train.cpu_memory)):
                result = evaluate(pm, loaded.tokenizer, data.examples, settings=settings_for(cfg, loaded.kind),
                                  batch_size=cfg.eval.batch_size, calibration=cfg.eval.calibration, support=support,
                                  top_k=cfg.eval.top_k, precision_at=cfg.eval.precision_at, progress=progress,
                                  demos=demos)
    except BaseException as exc:
        if store is not None and run_id is not None:
            store.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        beating.close()
    if store is not None and run_id is not None:
        store.append_metrics(run_id, [{"key": f"eval/{k}", "step": 0, "value": v}
                                      for k, v in recorded_scalars(result.metrics).items()])
        store.add_predictions(run_id, result.predictions)
        store.attach_artifact(run_id, "report", "metrics.json",
                              json.dumps(result.metrics, indent=2, default=str).encode())
        if demos is not None:   # lineage: which training rows each scored row was shown
            shown = {**demos.describe(), "per_example": [p.get("demos", []) for p in result.predictions]}
            store.attach_artifact(run_id, "report", "demos.json", json.dumps(shown, indent=2, default=str).encode())
        store.set_status(run_id, "succeeded")
    return result, run_id

