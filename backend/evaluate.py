"""Zero-shot (and trained-model) evaluation: class scores for every example, metrics, predictions."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from backend.batching import EncodeSettings, collate, encode_examples, length_sorted_batches
from backend.data import class_index
from backend.errors import ConfigError, DatasetError
from backend.prompt_model import PromptModel
from backend.prompts.demos import Demo
from backend.prompts.encode import TokenizerInfo, describe_tokenizer
from backend.prompts.example import Example

CALIBRATION = (None, "content-free", "support")
CONTENT_FREE = ("N/A", "", "[MASK]")
# The demonstrations shown with each of a list of inputs (chosen outside evaluation: backend.prompts.demos).
ChooseDemos = Callable[[Sequence[Example]], "list[tuple[Demo, ...]]"]


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def gold_indices(examples: Sequence[Example], classes: Sequence[str]) -> list[int]:
    """Map each example's label (a class name, or an index into ``classes``) to a class index."""
    out = []
    for row, ex in enumerate(examples):
        if ex.label is None:
            raise DatasetError("example has no label", row=row, column="label")
        k = class_index(ex.label, list(classes))
        if k is None:
            raise DatasetError(f"label {ex.label!r} is not one of the verbalizer's classes {list(classes)}",
                               row=row, column="label")
        out.append(k)
    return out


def classification_metrics(gold: Sequence[int], pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = gold).

    Macro-F1 averages over the classes present in gold or predictions (scikit-learn's default): a class
    no row has and none was predicted as says nothing about the prompt, and counting it as F1=0 would
    score a perfect classifier on rows of one of two classes 0.5. Such a class keeps its per-class row
    (support 0), so the table still lists every class."""
    c = len(classes)
    conf = [[0] * c for _ in range(c)]
    for g, p in zip(gold, pred):
        conf[g][p] += 1
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for k, name in enumerate(classes):
        tp = conf[k][k]
        predicted = sum(conf[r][k] for r in range(c))
        support = sum(conf[k])
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": prec, "recall": rec, "f1": f1, "support": support}
        if predicted or support:
            f1s.append(f1)
    n = len(gold)
    return {"n": n, "accuracy": (sum(conf[k][k] for k in range(c)) / n) if n else 0.0,
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0, "per_class": per_class, "confusion": conf,
            "classes": list(classes)}


def recorded_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """What a run records of an evaluation: its numbers (flags left out) as floats, with their intervals."""
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return dict(scalars, **interval_scalars(metrics))


def interval_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """``accuracy_ci_low`` / ``_high`` (accuracy's 95% Wilson interval) and macro-F1's (95% bootstrap)
    over the rows scored, as scalars a run records beside the metric, so a stored 0.97 on 64 rows says it
    could be 0.89. A metric with no interval (macro-F1 on too few rows, or all right) has no keys at all:
    a recorded 0 or a zero-width pair would read as a certainty."""
    from backend.workbench.stats import confusion_intervals

    out: dict[str, float] = {}
    for key, lo_hi in confusion_intervals(metrics.get("confusion") or []).items():
        if lo_hi is not None:
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = lo_hi
    return out


def _score(pm: PromptModel, encs: list, pad_id: int, batch_size: int, top_k: int,
           progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, list]:
    """Class log-probs for every encoding (in input order) and, if asked, top-k tokens at the mask."""
    device = pm.label_rows.device
    n = len(encs)
    scores = torch.empty((n, len(pm.verbalizer.classes)))
    tops: list = [None] * n
    exact = pm.verbalizer.verbalizer.multi_token == "exact" and pm.kind == "causal" \
        and pm.verbalizer.max_word_tokens > 1
    done = 0
    with torch.inference_mode():
        for idx in length_sorted_batches([e.length for e in encs], batch_size):
            chunk = [encs[i] for i in idx]
            batch = collate(chunk, pad_id, device)
            hidden = pm.mask_hidden(batch)
            s = pm.scores(hidden, pm.exact_class_scores(chunk, pad_id) if exact else None)
            scores[idx] = s.float().cpu()
            if top_k:
                probs = torch.softmax(pm.vocab_logits(hidden), dim=-1)
                p, t = probs.topk(top_k, dim=-1)
                for j, i in enumerate(idx):
                    tops[i] = list(zip(t[j].tolist(), p[j].tolist()))
            done += len(idx)
            if progress:
                progress(done, n)
    return scores, tops


def content_free_examples(examples: Sequence[Example]) -> list[Example]:
    meta_keys = set().union(*(ex.meta.keys() for ex in examples)) if examples else set()
    return [Example(guid=f"cf{i}", text_a=t, text_b=t if any(e.text_b for e in examples) else "",
                    meta={k: t for k in meta_keys}) for i, t in enumerate(CONTENT_FREE)]


def calibration_prior(pm: PromptModel, tokenizer: Any, examples: Sequence[Example], settings: EncodeSettings,
                      info: TokenizerInfo, pad_id: int, batch_size: int = 32,
                      demos: ChooseDemos | None = None) -> torch.Tensor:
    """Mean class distribution on ``examples`` (content-free inputs or a support set): (C,) log-probs;
    with demonstrations, each reference input is shown its own, as every scored input is."""
    chosen = demos(list(examples)) if demos else None
    encs = encode_examples(pm.template, list(examples), tokenizer, settings, info, demos=chosen)
    scores, _ = _score(pm, encs, pad_id, batch_size, 0)
    return torch.log(scores.exp().mean(0).clamp_min(1e-12))


def evaluate(pm: PromptModel, tokenizer: Any, examples: Sequence[Example], *, settings: EncodeSettings,
             batch_size: int = 32, calibration: str | None = None, support: Sequence[Example] | None = None,
             top_k: int = 0, precision_at: Sequence[int] = (), with_predictions: bool = True,
             progress: Callable[[int, int], None] | None = None, demos: ChooseDemos | None = None) -> EvalResult:
    """Score ``examples`` and compute metrics; class probabilities are exact softmaxes over classes.
    ``demos`` chooses each input's demonstrations; every prediction then names the pool rows it was shown."""
    if calibration not in CALIBRATION:
        raise ConfigError(f"calibration must be one of content-free, support or none, not {calibration!r}")
    if not examples:
        raise DatasetError("no examples to evaluate")
    _check_top_k(pm, top_k)
    classes = list(pm.verbalizer.classes)
    gold = gold_indices(examples, classes)
    info = describe_tokenizer(tokenizer)
    pad_id = info.pad_id
    t0 = time.perf_counter()
    chosen = demos(list(examples)) if demos else None
    encs = encode_examples(pm.template, list(examples), tokenizer, settings, info, demos=chosen)
    scores, tops = _score(pm, encs, pad_id, batch_size, top_k, progress)
    if calibration:
        ref = support if calibration == "support" else content_free_examples(examples)
        if not ref:
            raise ConfigError("support-set calibration needs support examples (e.g. the training split)")
        prior = calibration_prior(pm, tokenizer, ref, settings, info, pad_id, batch_size, demos)
        scores = torch.log_softmax(scores - prior, dim=-1)
    seconds = time.perf_counter() - t0
    pred = scores.argmax(-1).tolist()
    metrics = classification_metrics(gold, pred, classes)
    for k in precision_at:
        kk = min(k, len(classes))
        topk = scores.topk(kk, dim=-1).indices
        hits = sum(int(g in row) for g, row in zip(gold, topk.tolist()))
        metrics[f"precision@{k}"] = hits / len(gold)
    metrics.update({"seconds": seconds, "examples_per_s": len(examples) / seconds if seconds else math.inf,
                    "truncated": sum(1 for e in encs if e.dropped),
                    "calibration": calibration or "none"})
    if chosen is not None:
        metrics["demos_shown"] = sum(len(ds) - len(e.dropped_demos) for ds, e in zip(chosen, encs)) / len(chosen)
        metrics["demos_dropped"] = sum(len(e.dropped_demos) for e in encs)
    predictions = []
    if with_predictions:
        probs = scores.exp()
        for i, ex in enumerate(examples):
            row = {"index": i, "guid": ex.guid, "gold": classes[gold[i]], "predicted": classes[pred[i]],
                   "probs": {c: float(probs[i, k]) for k, c in enumerate(classes)}}
            if chosen is not None:
                gone = set(encs[i].dropped_demos)
                row["demos"] = [d.row for j, d in enumerate(chosen[i]) if j not in gone]
            if tops[i] is not None:
                toks = tokenizer.convert_ids_to_tokens([t for t, _ in tops[i]])
                row["top_k"] = [{"token": s, "id": t, "prob": p} for s, (t, p) in zip(toks, tops[i])]
            predictions.append(row)
    return EvalResult(metrics=metrics, predictions=predictions, classes=classes)


def _check_top_k(pm: PromptModel, top_k: int) -> None:
    """``eval.top_k`` against this model's vocabulary, known only here (the config's own bound is 1000;
    a tiny or custom model may have fewer tokens, and torch's topk would fail mid-evaluation)."""
    vocab = pm.plm.get_output_embeddings().weight.shape[0]
    if top_k > vocab:
        raise ConfigError(f"eval.top_k: {top_k:,} is more than the model's vocabulary size ({vocab:,} tokens); "
                          f"use at most {vocab:,}, or 0 to turn it off")


def probe(pm: PromptModel, tokenizer: Any, examples: Sequence[Example], *, settings: EncodeSettings,
          top_k: int = 10) -> list[dict[str, Any]]:
    """Top-k tokens at the mask and label-word probabilities for a few examples (the studio's probe)."""
    info = describe_tokenizer(tokenizer)
    encs = encode_examples(pm.template, list(examples), tokenizer, settings, info)
    out = []
    with torch.inference_mode():
        batch = collate(encs, info.pad_id, pm.label_rows.device)
        hidden = pm.mask_hidden(batch)
        vocab = torch.log_softmax(pm.vocab_logits(hidden), dim=-1)
        cls = pm.class_scores(pm.word_scores(pm.label_logits(hidden)))
        p, t = vocab.exp().topk(top_k, dim=-1)
        for i, ex in enumerate(examples):
            toks = tokenizer.convert_ids_to_tokens(t[i].tolist())
            words = []
            for c, (name, ids) in enumerate(zip(pm.verbalizer.classes, pm.verbalizer.token_ids)):
                for w, word_ids in zip(pm.verbalizer.verbalizer.words[c], ids):
                    words.append({"class": name, "word": w, "prob": float(vocab[i, word_ids[0]].exp())})
            out.append({"guid": ex.guid, "top_k": [{"token": s, "id": int(tid), "prob": float(pp)}
                                                   for s, tid, pp in zip(toks, t[i].tolist(), p[i].tolist())],
                        "label_words": words,
                        "class_probs": {name: float(cls[i, c].exp()) for c, name in enumerate(pm.verbalizer.classes)}})
    return out


def suggest_label_words(probes: list[dict[str, Any]], gold: Sequence[str], per_class: int = 5) -> dict[str, list[str]]:
    """Mine label words: tokens that rank high at the mask for one class's examples and not the others'."""
    mass: dict[str, dict[str, float]] = {}
    for pr, g in zip(probes, gold):
        for tok in pr["top_k"]:
            word = tok["token"].replace("Ġ", "").replace("▁", "").replace("##", "").strip()
            if word.isalpha():
                mass.setdefault(g, {}).setdefault(word, 0.0)
                mass[g][word] += tok["prob"]
    out = {}
    for cls, words in mass.items():
        others = {w: sum(m.get(w, 0.0) for c, m in mass.items() if c != cls) for w in words}
        ranked = sorted(words, key=lambda w: words[w] - others[w], reverse=True)
        out[cls] = ranked[:per_class]
    return out



def evaluate_vocabulary(pm: PromptModel, tokenizer: Any, examples: Sequence[Example], *, settings: EncodeSettings,
                        batch_size: int = 32, precision_at: Sequence[int] = (1, 10),
                        prefix: str = " ") -> EvalResult:
    """Open-vocabulary probing (LAMA, as in the P-tuning paper): the classes are the whole vocabulary.

    A gold object counts when it is one token (with the leading space words take after text); objects
    that split into several tokens can never be predicted and are reported, not silently dropped.
    """
    if not examples:
        raise DatasetError("no examples to evaluate")
    info = describe_tokenizer(tokenizer)
    gold = []
    for row, ex in enumerate(examples):
        if ex.label is None:
            raise DatasetError("example has no label", row=row, column="label")
        ids = tokenizer(prefix + str(ex.label), add_special_tokens=False)["input_ids"]
        gold.append(ids[0] if len(ids) == 1 else -1)
    t0 = time.perf_counter()
    encs = encode_examples(pm.template, list(examples), tokenizer, settings, info)
    kmax = max(precision_at) if precision_at else 1
    top = [None] * len(encs)
    with torch.inference_mode():
        for idx in length_sorted_batches([e.length for e in encs], batch_size):
            batch = collate([encs[i] for i in idx], info.pad_id, pm.label_rows.device)
            t = pm.vocab_logits(pm.mask_hidden(batch)).topk(kmax, dim=-1).indices.tolist()
            for j, i in enumerate(idx):
                top[i] = t[j]
    seconds = time.perf_counter() - t0
    n = len(examples)
    metrics: dict[str, Any] = {"n": n, "single_token_gold": sum(g >= 0 for g in gold) / n,
                               "seconds": seconds, "examples_per_s": n / seconds if seconds else math.inf}
    for k in precision_at:
        metrics[f"precision@{k}"] = sum(int(g >= 0 and g in t[:k]) for g, t in zip(gold, top)) / n
    metrics["accuracy"] = sum(int(g >= 0 and t[0] == g) for g, t in zip(gold, top)) / n
    predictions = []
    for i, ex in enumerate(examples):
        toks = tokenizer.convert_ids_to_tokens(top[i][:5])
        predictions.append({"index": i, "guid": ex.guid, "gold": str(ex.label),
                            "predicted": tokenizer.decode([top[i][0]]).strip(),
                            "top_k": [{"token": s, "id": t} for s, t in zip(toks, top[i][:5])]})
    return EvalResult(metrics=metrics, predictions=predictions, classes=[])
