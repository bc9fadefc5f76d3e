"""Automatic label words (LM-BFF's automatic verbalizer search, PETAL's likelihood ratio).

From the model's own distribution at the mask over the *training* rows: for each class, the tokens most
likely at the mask for that class's rows become candidates, re-ranked by how much more likely they are
for that class than for the others (a word every review makes likely, such as "good" after "It was",
separates nothing); then every assignment of one candidate per class is scored by training accuracy and
the best kept. Only training rows are read: a search that looked at the dev rows would report a dev
score it was chosen for.

The pure parts (``rank_candidates``, ``best_assignment``) work on a (rows x vocabulary) log-prob matrix,
so they are tested on planted signals; ``search_label_words`` runs the model once over the rows.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from backend.batching import EncodeSettings, collate, encode_examples, length_sorted_batches
from backend.data.sampling import stratified_sample
from backend.errors import ConfigError, DatasetError
from backend.evaluate import gold_indices
from backend.pipeline import WHOLE_VOCAB, build_verbalizer, mask_prefix
from backend.prompt_model import PromptModel
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer, word_surface

MAX_EXHAUSTIVE = 200_000      # assignments tried one by one; beyond, coordinate ascent
# Rows the model is run over: the search holds a rows x vocabulary matrix (49k columns for SmolLM2: 512
# rows are 100 MB, a full SST-2 train split would be 13 GB) and costs a forward a row.
MAX_SEARCH_ROWS = 512


@dataclass
class LabelSearch:
    classes: list[str]
    candidates: dict[str, list[dict[str, Any]]]       # class -> [{word, token_id, likelihood, separation}]
    best: dict[str, list[str]]                        # class -> [word]: a verbalizer, ready to save
    train_accuracy: float
    rows: int                                         # training rows searched on
    assignments_tried: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    of_rows: int = 0                                  # training rows there were (more than ``rows``: sampled)


def word_tokens(tokenizer: Any, prefix: str, min_chars: int = 2) -> dict[int, str]:
    """Vocabulary rows that are a whole alphabetic word as a label word is tokenized after ``prefix``:
    {token id: word}. A row qualifies when the verbalizer would turn its word back into exactly that
    one token (so BPE's space-marked rows and WordPiece's plain rows both work, sub-word pieces never)."""
    surfaces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    words = {i: s.strip() for i, s in enumerate(surfaces)
             if len(s.strip()) >= min_chars and s.strip().isalpha() and s.strip().isascii()}
    ids = list(words)
    encoded = tokenizer([word_surface(words[i], prefix) for i in ids], add_special_tokens=False)["input_ids"]
    return {i: words[i] for i, enc in zip(ids, encoded) if list(enc) == [i]}


def rank_candidates(logp: np.ndarray, gold: np.ndarray, n_classes: int, eligible: np.ndarray, *,
                    pool: int = 50, keep: int = 5) -> list[list[tuple[int, float, float]]]:
    """Per class: ``keep`` tokens of the ``pool`` most likely for its rows, by likelihood ratio.

    Returns per class [(token_id, mean log-prob on the class's rows, separation)], best first, where
    separation = mean log-prob on the class's rows - mean log-prob on the other rows.
    """
    out = []
    masked = np.where(eligible[None, :], logp, -np.inf)
    for c in range(n_classes):
        mine, others = masked[gold == c], masked[gold != c]
        if not len(mine):
            raise DatasetError(f"class {c} has no training rows to search label words on")
        like = mine.mean(0)
        top = np.argsort(-like)[:pool]
        top = top[np.isfinite(like[top])]
        sep = like[top] - (others.mean(0)[top] if len(others) else 0.0)
        order = np.argsort(-sep)[:keep]
        out.append([(int(top[k]), float(like[top[k]]), float(sep[k])) for k in order])
    return out


def best_assignment(logp: np.ndarray, gold: np.ndarray,
                    candidates: Sequence[Sequence[int]]) -> tuple[list[int], float, int]:
    """The one-token-per-class assignment with the best training accuracy (ties: the larger mean margin
    of the gold class), exhaustively when small enough, else by coordinate ascent. Returns (token ids,
    accuracy, assignments tried)."""
    n_classes = len(candidates)
    rows = np.arange(len(gold))

    def score(ids: Sequence[int]) -> tuple[float, float]:
        if len(set(ids)) < len(ids):
            return -1.0, -np.inf                      # one word cannot name two classes
        s = logp[:, list(ids)]
        acc = float((s.argmax(-1) == gold).mean())
        rest = np.where(np.eye(n_classes, dtype=bool)[gold], -np.inf, s).max(-1)
        return acc, float((s[rows, gold] - rest).mean())

    total = int(np.prod([len(c) for c in candidates]))
    if total <= MAX_EXHAUSTIVE:
        best = max(itertools.product(*candidates), key=score)
        return list(best), score(best)[0], total
    current, tried = [c[0] for c in candidates], 0
    for _ in range(10):
        changed = False
        for c in range(n_classes):
            for t in candidates[c]:
                trial = current[:c] + [t] + current[c + 1:]
                tried += 1
                if score(trial) > score(current):
                    current, changed = trial, True
        if not changed:
            break
    return current, score(current)[0], tried


def mask_log_probs(loaded: Any, template_text: str, examples: Sequence[Example], settings: EncodeSettings,
                   batch_size: int = 16, should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, str]:
    """(rows x vocabulary) log-probs at the mask, and the label words' leading space for this template.
    ``progress(rows done, rows)`` after every batch; ``should_stop()`` true before one raises
    InterruptedError."""
    tok = loaded.tokenizer
    template = compile_template(template_text, tok)
    stand_in = compile_verbalizer(build_verbalizer(WHOLE_VOCAB, ["*"]), tok)
    pm = PromptModel(loaded.model, loaded.kind, template, stand_in)
    info = describe_tokenizer(tok)
    encs = encode_examples(template, list(examples), tok, settings, info)
    out = np.empty((len(encs), pm.plm.get_output_embeddings().weight.shape[0]), dtype=np.float32)
    done = 0
    with torch.inference_mode():
        for idx in length_sorted_batches([e.length for e in encs], batch_size):
            if should_stop is not None and should_stop():
                raise InterruptedError("cancelled between two batches")
            batch = collate([encs[i] for i in idx], info.pad_id, pm.label_rows.device)
            out[idx] = torch.log_softmax(pm.vocab_logits(pm.mask_hidden(batch)), -1).float().cpu().numpy()
            done += len(idx)
            if progress is not None:
                progress(done, len(encs))
    return out, mask_prefix(template)


def search_rows(train: Sequence[Example], classes: Sequence[str], max_rows: int = MAX_SEARCH_ROWS) -> list[int]:
    """Which training rows a search reads: all of them, or a class-stratified sample (seed 0) of
    ``max_rows`` when there are more (a job records exactly these as its rows)."""
    return stratified_sample(gold_indices(train, list(classes)), max_rows)


def search_label_words(loaded: Any, template_text: str, train: Sequence[Example], classes: Sequence[str], *,
                       settings: EncodeSettings, pool: int = 50, keep: int = 5,
                       max_rows: int = MAX_SEARCH_ROWS, should_stop: Callable[[], bool] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> LabelSearch:
    """Search one label word per class on ``train`` (the training rows only; see the module docstring),
    at most ``max_rows`` of them (``search_rows``). ``progress`` and ``should_stop``: as
    ``mask_log_probs`` takes them."""
    if not train:
        raise DatasetError("the label-word search needs labelled training rows")
    if keep < 1 or pool < keep:
        raise ConfigError("keep must be at least 1 and pool at least keep")
    t0 = time.perf_counter()
    classes = list(classes)
    available, every_gold = len(train), gold_indices(train, classes)
    picked = search_rows(train, classes, max_rows)
    train = [train[i] for i in picked]
    gold = np.asarray([every_gold[i] for i in picked])
    logp, prefix = mask_log_probs(loaded, template_text, train, settings, should_stop=should_stop, progress=progress)
    word = {t: w for t, w in word_tokens(loaded.tokenizer, prefix).items() if t < logp.shape[1]}
    eligible = np.zeros(logp.shape[1], dtype=bool)
    eligible[list(word)] = True
    ranked = rank_candidates(logp, gold, len(classes), eligible, pool=pool, keep=keep)
    ids, acc, tried = best_assignment(logp, gold, [[t for t, _, _ in r] for r in ranked])
    return LabelSearch(
        classes=classes, rows=len(train), train_accuracy=acc, assignments_tried=tried,
        candidates={c: [{"word": word[t], "token_id": t, "likelihood": lk, "separation": sp} for t, lk, sp in r]
                    for c, r in zip(classes, ranked)},
        best={c: [word[t]] for c, t in zip(classes, ids)}, seconds=time.perf_counter() - t0, of_rows=available,
        notes=[f"searched on a class-stratified sample of {len(train):,} of the {available:,} training rows "
               "(seed 0)"] if len(train) < available else [])
