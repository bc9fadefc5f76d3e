"""Every template x verbalizer combination scored on the same rows, with one forward pass per template.

Why one forward per template: the verbalizers of a comparison read the same hidden state at the mask
(the template alone decides the model's input); only the label-word rows of the LM head differ, and
those cost a (B, H) x (H, R) product. So T templates x V verbalizers cost about T evaluations, not
T x V. The one exception is causal "exact" multi-token scoring, which teacher-forces each label word and
needs its own forward; such a verbalizer is scored on its own (said in the result).

Every combination's predictions are kept by row, so the caller can compute paired statistics (bootstrap
intervals on shared resamples, McNemar) and show the rows where two prompts disagree.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from backend.batching import EncodeSettings, collate, encode_examples, length_sorted_batches
from backend.errors import ConfigError, DatasetError
from backend.evaluate import classification_metrics, content_free_examples, gold_indices
from backend.pipeline import build_verbalizer, mask_prefix
from backend.prompt_model import PromptModel
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer
from backend.workbench import stats

MAX_COMBINATIONS = 400


@dataclass
class Prompt:
    """One side of a comparison: a name the user recognises (``demo v3``, ``draft``) and its content."""
    name: str
    content: Any


@dataclass
class Scored:
    template: str
    verbalizer: str
    log_probs: np.ndarray                      # (n, C) uncalibrated class log-probs
    calibrated: np.ndarray | None = None       # (n, C) after content-free calibration
    prior: np.ndarray | None = None            # (C,) content-free log prior subtracted to calibrate (served ensembles reuse it)
    shared_forward: bool = True                # False: exact multi-token scoring ran its own forward


@dataclass
class Comparison:
    classes: list[str]
    gold: list[int]
    guids: list[str]
    scored: list[Scored] = field(default_factory=list)
    forwards: int = 0                          # model forward passes over the rows (the cost)
    seconds: float = 0.0

    def table(self, baseline: int = 0, calibrated: bool = False, n_boot: int = 1000,
              seed: int = 0) -> list[dict[str, Any]]:
        """One row per combination: accuracy with its 95% Wilson interval, macro-F1 with its 95% bootstrap
        interval (paired resamples; None where the resamples cannot spread: too few rows, or all right),
        and McNemar's exact test against combination ``baseline`` (uncorrected for the table's many tests)."""
        if not self.scored:
            return []
        if not 0 <= baseline < len(self.scored):
            raise ConfigError(f"baseline must be one of the {len(self.scored)} combinations, not {baseline}")
        idx = stats.resample_indices(len(self.gold), n_boot, seed)
        preds = [self.predictions(i, calibrated) for i in range(len(self.scored))]
        gold = np.asarray(self.gold)
        base_ok = preds[baseline] == gold
        rows = []
        for i, (s, pred) in enumerate(zip(self.scored, preds)):
            m = classification_metrics(self.gold, pred.tolist(), self.classes)
            f1 = stats.macro_f1_samples(self.gold, pred, len(self.classes), idx)
            test = stats.mcnemar_exact((pred == gold).tolist(), base_ok.tolist())
            rows.append({"template": s.template, "verbalizer": s.verbalizer, "calibrated": calibrated,
                         "accuracy": m["accuracy"], "accuracy_ci": stats.accuracy_interval(gold, pred),
                         "macro_f1": m["macro_f1"], "macro_f1_ci": stats.bootstrap_interval(f1, len(gold)),
                         "vs_baseline": None if i == baseline else test.to_dict(), "n": len(self.gold)})
        return rows

    def predictions(self, i: int, calibrated: bool = False) -> np.ndarray:
        s = self.scored[i]
        scores = s.calibrated if calibrated else s.log_probs
        if scores is None:
            raise ConfigError("this comparison was run without calibration")
        return scores.argmax(-1)

    def flips(self, a: int, b: int, calibrated: bool = False) -> dict[str, list[dict[str, Any]]]:
        """The rows where exactly one of the two combinations is right, with both class distributions."""
        pa, pb = self.predictions(a, calibrated), self.predictions(b, calibrated)
        sa, sb = (self.scored[a].calibrated if calibrated else self.scored[a].log_probs,
                  self.scored[b].calibrated if calibrated else self.scored[b].log_probs)
        out: dict[str, list[dict[str, Any]]] = {"a_right": [], "b_right": []}
        for row, g in enumerate(self.gold):
            ok_a, ok_b = pa[row] == g, pb[row] == g
            if ok_a == ok_b:
                continue
            entry = {"row": row, "guid": self.guids[row], "gold": self.classes[g],
                     "a": {c: float(np.exp(sa[row, k])) for k, c in enumerate(self.classes)},
                     "b": {c: float(np.exp(sb[row, k])) for k, c in enumerate(self.classes)}}
            out["a_right" if ok_a else "b_right"].append(entry)
        return out


def refuse_demos(cfg: Any, templates: Sequence[str], what: str, field: str) -> None:
    """Refuse templates that would show demonstrations: comparisons and searches score each template on
    its own rows alone, and their runs are recorded with the template and ``demos.k`` as given, so a score
    without demonstrations would be filed under a config that, re-run, shows them (a different number).
    A template that does not parse is left to the caller's own check."""
    from backend.errors import TemplateError
    from backend.prompts.parse import parse_template
    from backend.textcheck import brief

    for text in templates:
        try:
            block = parse_template(str(text)).demos
        except TemplateError:
            continue
        k = cfg.demos.k if cfg.demos.k is not None else (block.value if block is not None else 0)
        if k:
            raise ConfigError(f"{what} scores each template without demonstrations, but template {brief(text)} "
                              f"shows {k} per class: remove its {{demos}} block (or set demos.k to 0), or evaluate "
                              "it on the Evaluate tab, which draws them from the training rows", field=field)


def compare_prompts(loaded: Any, templates: Sequence[Prompt], verbalizers: Sequence[Prompt],
                    examples: Sequence[Example], classes: Sequence[str], *, settings: EncodeSettings,
                    batch_size: int = 32, calibrate: bool = True,
                    progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Comparison:
    """Score every template x verbalizer on ``examples`` (the same rows for all)."""
    if not templates or not verbalizers:
        raise ConfigError("a comparison needs at least one template and one verbalizer")
    if len(templates) * len(verbalizers) > MAX_COMBINATIONS:
        raise ConfigError(f"{len(templates)} templates x {len(verbalizers)} verbalizers is more than "
                          f"{MAX_COMBINATIONS} combinations; compare fewer at a time")
    if not examples:
        raise DatasetError("no rows to compare the prompts on")
    tok = loaded.tokenizer
    info = describe_tokenizer(tok)
    classes = list(classes)
    gold = gold_indices(examples, classes)
    out = Comparison(classes=classes, gold=gold, guids=[str(e.guid) for e in examples])
    t0 = time.perf_counter()
    total = len(templates) * (len(examples) + (len(content_free_examples(examples)) if calibrate else 0))
    done = [0]

    def tick(n: int) -> None:   # after every batch: a long comparison shows it moving
        done[0] += n
        if progress:
            progress(done[0], total)

    for t in templates:
        template = compile_template(str(t.content), tok)
        prefix = mask_prefix(template)
        models = []
        for v in verbalizers:
            verb = build_verbalizer(v.content, classes, examples)  # VerbalizerError names a class mismatch
            models.append(PromptModel(loaded.model, loaded.kind, template,
                                      compile_verbalizer(verb, tok, prefix=prefix)))
        rows = [score_rows(models, encode_examples(template, list(examples), tok, settings, info), info.pad_id,
                           batch_size, should_stop, tick)]
        out.forwards += 1
        if calibrate:
            cf = content_free_examples(examples)
            rows.append(score_rows(models, encode_examples(template, cf, tok, settings, info), info.pad_id,
                                   batch_size, should_stop, tick))
        for k, (v, pm) in enumerate(zip(verbalizers, models)):
            scores = rows[0][k]
            calibrated = prior = None
            if calibrate:
                prior = np.log(np.clip(np.exp(rows[1][k]).mean(0), 1e-12, None))
                calibrated = stats.log_softmax(scores - prior)
            out.scored.append(Scored(template=t.name, verbalizer=v.name, log_probs=scores, calibrated=calibrated,
                                     prior=prior, shared_forward=not _exact(pm)))
            out.forwards += int(_exact(pm))  # teacher forcing ran its own forward
    out.seconds = time.perf_counter() - t0
    return out


def _exact(pm: PromptModel) -> bool:
    return pm.verbalizer.verbalizer.multi_token == "exact" and pm.kind == "causal" \
        and pm.verbalizer.max_word_tokens > 1


def score_rows(models: list[PromptModel], encs: list, pad_id: int, batch_size: int,
               should_stop: Callable[[], bool] | None = None,
               on_rows: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Class log-probs of every model on ``encs``: the hidden state at the mask is computed once per
    batch (all models share the base model and template) and read by each verbalizer's label rows."""
    n = len(encs)
    out = [np.empty((n, len(m.verbalizer.classes)), dtype=np.float32) for m in models]
    first = models[0]
    with torch.inference_mode():
        for idx in length_sorted_batches([e.length for e in encs], batch_size):
            if should_stop and should_stop():
                raise InterruptedError("cancelled between two batches")
            chunk = [encs[i] for i in idx]
            batch = collate(chunk, pad_id, first.label_rows.device)
            hidden = first.mask_hidden(batch)
            for k, pm in enumerate(models):
                s = pm.exact_class_scores(chunk, pad_id) if _exact(pm) else \
                    pm.class_scores(pm.word_scores(pm.label_logits(hidden)))
                out[k][idx] = s.float().cpu().numpy()
            if on_rows:
                on_rows(len(idx))
    return out
