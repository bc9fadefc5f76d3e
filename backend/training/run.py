"""``run_training``: one RunConfig -> trained weights, metric events and a TrainResult.

Used by ``python -m backend train`` (in process, with a progress bar) and by the job runner (in a child
process, with a storage sink and a cancel flag read from the database).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from backend.batching import encode_examples
from backend.config import RunConfig
from backend.data.splitting import check_disjoint
from backend.errors import ConfigError, DatasetError
from backend.evaluate import evaluate, gold_indices, recorded_scalars
from backend.methods import get_method
from backend.methods.build import TunedModel, build_tuned_model
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.verbalizer import Verbalizer
from backend.training.artifacts import save_trained
from backend.training.events import MemorySink, Sink
from backend.training.loop import TrainData, train_loop
from backend.training.options import resolve


@dataclass
class TrainResult:
    status: str                              # succeeded | cancelled
    method: str
    seed: int
    metrics: dict[str, Any]                  # final metrics (best checkpoint) on test, else dev; scalars only
    steps: int = 0
    best_step: int | None = None
    best_metric: float | None = None
    params: dict[str, float] = field(default_factory=dict)   # trainable / total / percent
    wall_s: float = 0.0
    output_dir: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, predictions: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not predictions:
            d.pop("predictions")
        return d


@dataclass
class RunData:
    """Examples for a run: training (already few-shot sampled) and the dev split, plus class names."""

    train: list[Example]
    dev: list[Example]
    classes: list[str] | None = None
    test: list[Example] | None = None     # final metrics here when given; dev then only selects checkpoints
    how: str = ""                         # how one source was split into train / dev (recorded with the run)
    counts: dict[str, int] = field(default_factory=dict)   # train / dev rows of that split


# Called once the model is loaded and the rows chosen, before the first step: the caller records the run's
# lineage there (``backend.recording.record_started``) with (loaded model, data, verbalizer).
Recorder = Callable[[Any, RunData, Verbalizer], None]


def load_run_data(cfg: RunConfig) -> RunData:
    from backend.pipeline import load_train_dev

    train, dev = load_train_dev(cfg)   # refuses dev rows that are also training rows
    return RunData(train=train.examples, dev=dev.examples, classes=train.label_names or dev.label_names,
                   how=dev.how, counts=dict(dev.counts))


def recorder(store: Any, run_id: int, cfg: RunConfig) -> Recorder:
    """The ``record`` callback that writes run ``run_id``'s lineage when ``run_training`` has loaded."""
    from backend.recording import record_started

    def record(loaded: Any, data: RunData, verb: Verbalizer) -> None:
        check_resumed(store, store.get_run(run_id), loaded, data.train)
        record_started(store, run_id, cfg, loaded=loaded, verbalizer=verb, train=data.train,
                       eval=data.test if data.test is not None else data.dev, classes=list(verb.classes),
                       how=data.how, counts=data.counts, autocast=mixed_precision(cfg, loaded.device))

    return record


def check_resumed(store: Any, info: Any, loaded: Any, train: Sequence[Example]) -> None:
    """A resumed run continues its parent's checkpoint only on what the parent learned from: the same
    revision of the base model and the same training rows (read again from the config, they may differ:
    a file edited since). Else its record would list rows and weights the checkpoint never saw, and every
    later "not trained on this row" check would run against the wrong rows."""
    from backend.recording import row_ids

    if info.parent_run_id is None or "resume" not in info.tags:
        return
    from backend.models.hashing import refuse_other_revision

    parent = store.get_run(info.parent_run_id)
    refuse_other_revision(parent.model_revision, loaded.revision, f"run #{parent.id}",
                          (parent.config or {}).get("model", "the base model"),
                          "its checkpoint cannot be continued on another model")
    snap = store.get_dataset_snapshot(parent.dataset_snapshot_id) if parent.dataset_snapshot_id is not None else None
    recorded = snap.row_counts.get("train_rows") if snap is not None else None
    if recorded is not None and recorded != row_ids(list(train)):
        raise DatasetError(f"run #{parent.id}'s training data reads differently now than when it trained (the file "
                           "changed since, or its sampling did): its checkpoint is not continued on other rows; "
                           "restore the data it trained on, or start a new run")


def _load_model(cfg: RunConfig) -> Any:
    """Training loads fp32 weights: trainable tensors inherit the PLM's dtype, and AdamW on bf16 rows
    barely moves them; on GPU the forward pass still runs in bf16/fp16 under autocast. A queued zero-shot
    run trains nothing: it loads in the dtype its ``eval.dtype`` asks for, as any evaluation does."""
    from backend.models import load_model

    if not get_method(cfg.method.name).trains:
        from backend.pipeline import load_for_eval

        return load_for_eval(cfg)
    return load_model(cfg.model, dtype="float32")


def mixed_precision(cfg: RunConfig, device: torch.device) -> str:
    """What the run computes in under autocast ("no", "bf16", "fp16"): the config's choice, or bf16 (fp16
    without bf16) on a GPU and none on a CPU. A choice the device cannot honour is refused: accelerate would
    quietly train in fp32 instead, under a config that says otherwise."""
    mp = cfg.train.mixed_precision
    if mp is None:
        mp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "no"
    if mp == "fp16" and device.type != "cuda":
        raise ConfigError(f"mixed precision fp16 needs a CUDA GPU and this run is on {device.type}; "
                          "choose bf16 (CPU autocast) or no", field="train.mixed_precision")
    if mp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 for mixed precision; choose fp16 or no",
                          field="train.mixed_precision")
    if cfg.eval.dtype != "auto" and get_method(cfg.method.name).trains:
        raise ConfigError("a training run evaluates in the precision it trains in; set "
                          "train.mixed_precision instead (eval.dtype is for zero-shot evaluations)",
                          field="eval.dtype")
    return mp


def _accelerator(precision: str, device: torch.device) -> Any:
    """The run's accelerator in its resolved ``mixed_precision`` (what ``mixed_precision`` returned)."""
    from accelerate import Accelerator

    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision)


def run_training(config: RunConfig, *, sink: Sink | None = None, cancel_check: Callable[[], bool] | None = None,
                 resume_from: str | Path | None = None, loaded: Any = None, data: RunData | None = None,
                 seed: int | None = None, record: Recorder | None = None, owns_model: bool = False) -> TrainResult:
    """Train ``config.method`` and evaluate the best checkpoint on the dev split.

    ``resume_from``: an output folder of an interrupted run; training continues from its checkpoint
    there (and writes there). ``loaded`` (a LoadedModel) and ``data`` skip loading (tests, sweeps);
    ``seed`` overrides ``config.train.seed`` (the seeds sweep). Cancellation (``cancel_check()`` true)
    is honoured before each optimizer step; the result then has status "cancelled", a last checkpoint is
    in the output folder and the final evaluation is skipped (its metrics are empty). ``record`` (see
    ``Recorder``) is how a recorded run gets its lineage; every training refuses dev / test rows that are
    training rows, whether loaded here or handed in. A model loaded here, or handed in with ``owns_model``
    (a copy no other run uses), has its frozen Linear weights stored in the autocast dtype under mixed
    precision (``backend.models.lean.store_frozen_linears_in``); a model handed in is otherwise left as it is."""
    t0 = time.perf_counter()
    method = get_method(config.method.name)
    method.parse_options(config.method.options)   # fail before loading anything
    sink = sink or MemorySink()
    seed = config.train.seed if seed is None else seed
    data = data or load_run_data(config)
    if not data.train and config.method.name != "zero-shot":
        raise DatasetError("no training examples (check data.train and data.shots)")
    check_disjoint(data.train, data.dev)   # a score on rows it learned would measure memorisation
    if data.test is not None:
        check_disjoint(data.train, data.test)
    owned = loaded is None or owns_model      # a model only this run uses: it may store its frozen weights its own way
    loaded = loaded or _load_model(config)
    precision = mixed_precision(config, loaded.device)   # one the device cannot honour fails before anything is recorded
    if precision == "bf16":
        from backend.models.device import dtype_note

        note = dtype_note(torch.bfloat16, loaded.device)
        if note:     # asked for, so run as asked; said, since it can be slower than the default
            logging.getLogger(__name__).info("train.mixed_precision bf16: %s", note)
    if not method.trains:
        from backend.pipeline import check_dtype

        check_dtype(config, loaded)          # a zero-shot run handed a model in another dtype than it asks for
    out_dir = Path(resume_from or config.train.output_dir or tempfile.mkdtemp(prefix="ps-run-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    tuned = _build(config, loaded, data, seed)
    if owned and precision != "no":
        from backend.models.device import parse_dtype
        from backend.models.lean import store_frozen_linears_in

        store_frozen_linears_in(tuned.pm.plm, parse_dtype(precision))   # autocast's per-forward casts, done once
    if record is not None:
        record(loaded, data, tuned.verbalizer)
    counts = tuned.counts()
    for k, v in counts.items():
        sink.emit(f"params/{k}", v, 0)
    sink.emit("data/train_rows", len(data.train), 0)   # the Runs tab shows which rows the run used
    sink.emit("data/dev_rows", len(data.dev), 0)
    settings = _settings(config, loaded.kind)
    info = describe_tokenizer(loaded.tokenizer)
    accelerator = _accelerator(precision, loaded.device)
    status, steps, best_step, best_metric, history = "succeeded", 0, None, None, []
    best_loaded = False      # a run that trains nothing (zero-shot, no trainable parameters) chose no checkpoint
    if tuned.method.trains and counts["trainable"] > 0:
        opts = resolve(config.train, config.method.name, len(data.train), loaded.device.type)
        encoded = encode_examples(tuned.pm.template, data.train, loaded.tokenizer, settings, info)
        labels = gold_indices(data.train, list(tuned.verbalizer.classes))
        dev = data.dev[:config.train.eval_limit] if config.train.eval_limit else data.dev
        train_data = TrainData(encoded=encoded, labels=labels, dev=dev, settings=settings, pad_id=info.pad_id,
                               eval_batch_size=config.eval.batch_size)
        if loaded.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(loaded.device)
        t_loop = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            res = train_loop(tuned, loaded.tokenizer, train_data, opts, seed=seed, sink=sink, out_dir=out_dir,
                             accelerator=accelerator, cancel_check=cancel_check, resume=resume_from is not None)
        status, steps, best_step, best_metric, history = (res.status, res.steps, res.best_step, res.best_metric,
                                                          res.history)
        best_loaded = res.best_loaded
        # what a sweep's Pareto plot compares besides accuracy (the loop's steps, not the final evaluation)
        # per step this process ran: a resumed run's loop starts at its checkpoint's step
        sink.emit("train/seconds_per_step", (time.perf_counter() - t_loop) / max(res.steps - res.start_step, 1),
                  res.steps)
        sink.emit("train/peak_memory_mb", peak_memory_mb(loaded.device), res.steps)
    tuned.pm.eval()
    # A cancelled run stops now (whoever sent SIGTERM may follow with SIGKILL): its last checkpoint and
    # best weights are kept for --resume, but it is not scored on the whole dev/test split again.
    final = None
    if status != "cancelled":
        with accelerator.autocast():   # in the precision the run trained in, as its dev evaluations ran
            final = evaluate(tuned.pm, loaded.tokenizer, data.test if data.test is not None else data.dev,
                             settings=settings, batch_size=config.eval.batch_size)
    metrics = recorded_scalars(final.metrics) if final is not None else {}
    if final is not None and data.test is None and best_loaded:
        # the final score is on the dev rows that chose the checkpoint among this many evaluations: said with
        # the score (runs.caveats), since the best of several on the same rows is optimistic
        metrics["chosen_among"] = float(len(history))      # one history entry per dev evaluation
    for k, v in metrics.items():
        sink.emit(f"final/{k}", v, steps)
    sink.flush()
    if accelerator.is_main_process:     # under ``accelerate launch`` every rank holds the same weights
        save_trained(out_dir, tuned, config.to_dict(), model_id=getattr(loaded, "model_id", ""),
                     revision=getattr(loaded, "revision", ""), metrics=final.metrics if final else {})
    result = TrainResult(status=status, method=config.method.name, seed=seed, metrics=metrics, steps=steps,
                         best_step=best_step, best_metric=best_metric, params=counts,
                         wall_s=time.perf_counter() - t0, output_dir=str(out_dir), history=history,
                         predictions=final.predictions if final is not None else [])
    if accelerator.is_main_process:
        (out_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the training: CUDA memory allocated on a GPU; on CPU the process's peak resident
    size (a job runs in its own process, so that is the run's, model included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # KiB on Linux


def _settings(config: RunConfig, kind: str) -> Any:
    from backend.pipeline import settings_for

    return settings_for(config, kind)


def _build(config: RunConfig, loaded: Any, data: RunData, seed: int) -> TunedModel:
    from backend.pipeline import build_verbalizer

    examples: Sequence[Example] = list(data.train) + list(data.dev)
    verb = build_verbalizer(config.verbalizer, data.classes or [], examples, files=True)
    texts = [e.text_a for e in data.train[:8] if e.text_a]
    return build_tuned_model(loaded.model, loaded.tokenizer, loaded.kind, config.template, verb,
                             config.method.name, config.method.options, seed=seed, sample_texts=texts)
