"""Template search: many candidate templates ranked on the dev rows by successive halving.

Why successive halving (Jamieson & Talwalkar 2016): most candidates are clearly worse after a few dozen
rows, so every candidate is scored on a small sample, the better half goes on to twice the rows, and
so on until the best few are left; each round gets the same share of the budget. Rows are one seeded
order, so a survivor's earlier rows are reused and only its new rows cost forwards. The budget is in
row forwards, counted as they run (``Search.forwards``): 50 candidates cost at most ``budget`` (5 by
default) full evaluations of the dev rows, calibration rows included, instead of 50.

Scores are on the rows the candidates were chosen on, so they flatter the winner: confirm the best few
on other rows (the Compare tab, or ``compare``) before trusting a difference.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from backend.batching import EncodeSettings, encode_examples
from backend.errors import ConfigError, DatasetError
from backend.evaluate import content_free_examples, gold_indices
from backend.pipeline import build_verbalizer
from backend.prompt_model import PromptModel
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.template import compile_template, mask_prefix
from backend.prompts.verbalizer import compile_verbalizer
from backend.workbench import stats
from backend.workbench.compare import Prompt, score_rows
from backend.workbench.templates_library import (Candidate, Dropped, family_candidates, generate_rephrasings,
                                                 parse_rephrasings)

MAX_CANDIDATES = 200

# (template text, row indices) -> (len(rows), C) class log-probs for those rows
Scorer = Callable[[str, Sequence[int]], np.ndarray]


@dataclass
class Round:
    candidates: int
    rows: int
    forwards: int           # row forwards this round actually ran (reused rows cost none)


@dataclass
class Search:
    ranking: list[dict[str, Any]]      # every candidate, best first: text, family, rows, accuracy, round
    rounds: list[Round]
    forwards: int                      # row forwards, calibration rows included
    rows: int                          # dev rows (one full evaluation = this many forwards per template)
    budget: float                      # in full evaluations
    dropped: list[Dropped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def full_evaluations(self) -> float:
        """What the search cost, in evaluations of one template on every row."""
        return self.forwards / self.rows if self.rows else 0.0

    def best(self, k: int = 3) -> list[Prompt]:
        """The best ``k`` found (the user's own template left out: the comparison shows it beside them), as
        the comparison takes them (``backend.workbench.compare.Prompt``)."""
        found = [r for r in self.ranking if r["family"] != "yours"][:k]
        return [Prompt(f"S{i + 1} ({r['family']})", r["text"]) for i, r in enumerate(found)]

    def to_dict(self) -> dict[str, Any]:
        return {"ranking": self.ranking, "rounds": [vars(r) for r in self.rounds], "forwards": self.forwards,
                "rows": self.rows, "budget": self.budget, "full_evaluations": self.full_evaluations,
                "dropped": [vars(d) for d in self.dropped], "seconds": self.seconds}


def halving_schedule(n_candidates: int, n_rows: int, budget_forwards: int, keep: int = 3) -> list[tuple[int, int]]:
    """[(candidates alive, rows each is scored on)] per round: the field halves (never below ``keep``) and
    each round gets an equal share of ``budget_forwards``; rows per round never shrink and never exceed
    ``n_rows``. ConfigError when the budget cannot give every candidate one row."""
    if n_candidates < 1 or n_rows < 1:
        raise ConfigError("the search needs at least one candidate and one row")
    keep = max(1, min(keep, n_candidates))
    sizes = [n_candidates]
    while sizes[-1] > keep:
        sizes.append(max(keep, math.ceil(sizes[-1] / 2)))
    share = budget_forwards / len(sizes)
    schedule, rows = [], 0
    for alive in sizes:
        rows = max(rows, min(n_rows, int(share // alive)))
        schedule.append((alive, rows))
    if schedule[0][1] < 1:
        raise ConfigError(f"a budget of {budget_forwards} row forwards cannot score {n_candidates} candidates "
                          f"in {len(sizes)} rounds: raise the budget or give fewer candidates", field="budget")
    return schedule


def successive_halving(candidates: Sequence[Candidate], gold: Sequence[int], scorer: Scorer, *,
                       budget_forwards: int, keep: int = 3, seed: int = 0, pinned: Sequence[int] = (),
                       spent: Callable[[], int] = lambda: 0) -> tuple[list[dict[str, Any]], list[Round]]:
    """Rank ``candidates`` on rows scored by ``scorer`` (accuracy, ties by the gold class's mean
    log-prob). ``pinned`` candidates (the user's template) stay to the last round, inside each round's
    count, so the winners are measured against them on the same rows and the budget still holds.
    ``spent()`` reports the scorer's forwards so far (for the per-round counts)."""
    n = len(gold)
    order = np.random.default_rng(seed).permutation(n)
    gold_arr = np.asarray(gold)
    scored: dict[int, np.ndarray] = {}                # candidate -> (rows seen, C) in ``order``
    reached: dict[int, tuple[int, float, float]] = {}  # candidate -> (round, accuracy, mean gold log-prob)
    alive = list(range(len(candidates)))
    rounds = []
    for r, (size, rows) in enumerate(halving_schedule(len(candidates), n, budget_forwards, keep)):
        pins = [c for c in pinned if c in alive][:size]
        alive = pins + [c for c in alive if c not in pins][:size - len(pins)]
        before = spent()
        for c in alive:
            have = scored.get(c)
            seen = 0 if have is None else len(have)
            if rows > seen:
                new = scorer(candidates[c].text, order[seen:rows].tolist())
                scored[c] = new if have is None else np.concatenate([have, new])
            s, g = scored[c][:rows], gold_arr[order[:rows]]
            reached[c] = (r, float((s.argmax(-1) == g).mean()), float(s[np.arange(rows), g].mean()))
        rounds.append(Round(candidates=len(alive), rows=rows, forwards=spent() - before))
        alive.sort(key=lambda c: (-reached[c][1], -reached[c][2], c))
    ranked = sorted(reached, key=lambda c: (-reached[c][0], -reached[c][1], -reached[c][2], c))
    ranking = [{"text": candidates[c].text, "family": candidates[c].family, "round": reached[c][0] + 1,
                "rows": len(scored[c]), "accuracy": reached[c][1], "gold_logprob": reached[c][2]}
               for c in ranked]
    return ranking, rounds


class ModelScorer:
    """Calibrated class log-probs of a template on chosen dev rows, from the loaded model: one PromptModel
    per template (built on first use), content-free calibration as the comparison does it, and a count
    of every row forward."""

    def __init__(self, loaded: Any, verbalizer: Any, rows: Sequence[Example], classes: Sequence[str], *,
                 settings: EncodeSettings, batch_size: int = 32, calibrate: bool = True,
                 should_stop: Callable[[], bool] | None = None,
                 on_forwards: Callable[[int], None] | None = None) -> None:
        self.loaded, self.rows, self.classes = loaded, list(rows), list(classes)
        self.verbalizer = build_verbalizer(verbalizer, self.classes, self.rows, files=True)
        self.settings, self.batch_size, self.calibrate = settings, batch_size, calibrate
        self.should_stop, self.on_forwards = should_stop, on_forwards
        self.info = describe_tokenizer(loaded.tokenizer)
        self.forwards = 0
        self._models: dict[str, tuple[PromptModel, np.ndarray | None]] = {}

    def _model(self, text: str) -> tuple[PromptModel, np.ndarray | None]:
        if text not in self._models:
            tok = self.loaded.tokenizer
            template = compile_template(text, tok)
            verb = compile_verbalizer(self.verbalizer, tok, prefix=mask_prefix(template))
            pm = PromptModel(self.loaded.model, self.loaded.kind, template, verb)
            prior = None
            if self.calibrate:
                cf = content_free_examples(self.rows)
                scores = self._score(pm, cf)
                prior = np.log(np.clip(np.exp(scores).mean(0), 1e-12, None))
            self._models[text] = (pm, prior)
        return self._models[text]

    def _score(self, pm: PromptModel, examples: Sequence[Example]) -> np.ndarray:
        encs = encode_examples(pm.template, list(examples), self.loaded.tokenizer, self.settings, self.info)
        return score_rows([pm], encs, self.info.pad_id, self.batch_size, self.should_stop, self._ran)[0]

    def _ran(self, n: int) -> None:   # after every batch: the count, and a long search shows it moving
        self.forwards += n
        if self.on_forwards is not None:
            self.on_forwards(self.forwards)

    def __call__(self, text: str, idx: Sequence[int]) -> np.ndarray:
        pm, prior = self._model(text)
        scores = self._score(pm, [self.rows[i] for i in idx])
        return scores if prior is None else stats.log_softmax(scores - prior)


def input_fields(template: str, examples: Sequence[Example]) -> list[str]:
    """The text fields candidates must show: text_a, and text_b when the rows have one."""
    return ["text_a", "text_b"] if any(e.text_b for e in examples) else ["text_a"]


def search_templates(loaded: Any, template: str, verbalizer: Any, rows: Sequence[Example], classes: Sequence[str],
                     *, settings: EncodeSettings, task: str = "", rephrasings: int = 8, budget: float = 5.0,
                     keep: int = 3, seed: int = 0, batch_size: int = 32, calibrate: bool = True,
                     extra: Sequence[str] = (), max_new_tokens: int = 96,
                     should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Search:
    """Candidates (the user's ``template``, the families filled with ``task`` and the label words, the
    model's rephrasings of ``template``, any ``extra`` texts) ranked on ``rows`` within ``budget`` full
    evaluations. ``progress(forwards run, forwards at most)`` once the candidates are known and after
    every batch; ``should_stop()`` true between two batches raises InterruptedError."""
    if not rows:
        raise DatasetError("no dev rows to rank templates on")
    if not 0 < budget <= 50:
        raise ConfigError("budget must be more than 0 and at most 50 full evaluations", field="budget")
    t0 = time.perf_counter()
    most = [0]
    scorer = ModelScorer(loaded, verbalizer, rows, classes, settings=settings, batch_size=batch_size,
                         calibrate=calibrate, should_stop=should_stop,
                         on_forwards=None if progress is None else (lambda done: progress(done, most[0])))
    fields = input_fields(template, rows)
    seen: set[str] = set()
    cands, dropped = [], []
    for text, family in [(template, "yours"), *((t, "extra") for t in extra)]:
        ok, bad = parse_rephrasings([text], fields, loaded.kind, seen=seen)
        cands += [Candidate(c.text, family) for c in ok]
        dropped += [Dropped(d.text, family, d.reason) for d in bad]
    if not cands or cands[0].family != "yours":
        raise ConfigError(f"the template cannot be searched from: {dropped[0].reason}", field="template")
    words = [ws[0] for ws in scorer.verbalizer.words]
    ok, bad = family_candidates(task, words, fields, loaded.kind, loaded.tokenizer, seen)
    cands, dropped = cands + ok, dropped + bad
    outputs, why_not = generate_rephrasings(loaded, template, fields, n=rephrasings, seed=seed,
                                            max_new_tokens=max_new_tokens)
    if should_stop is not None and should_stop():
        raise InterruptedError("the template search was cancelled")
    if why_not and rephrasings:
        dropped.append(Dropped("", "rephrased", why_not))
    ok, bad = parse_rephrasings(outputs, fields, loaded.kind, seen=seen)
    cands, dropped = (cands + ok)[:MAX_CANDIDATES], dropped + bad
    cf = len(content_free_examples(rows)) if calibrate else 0
    budget_forwards = int(budget * len(rows)) - cf * len(cands)
    if budget_forwards < len(cands):
        raise ConfigError(f"{budget:g} evaluations of {len(rows)} rows cannot rank {len(cands)} candidates (their "
                          f"calibration alone takes {cf * len(cands)} forwards): use more dev rows or a larger "
                          "budget", field="budget")
    most[0] = budget_forwards + cf * len(cands)    # the budget, calibration included: the most it can run
    if progress is not None:
        progress(0, most[0])
    gold = gold_indices(rows, list(classes))
    ranking, rounds = successive_halving(cands, gold, scorer, budget_forwards=budget_forwards, keep=keep,
                                         seed=seed, pinned=[0], spent=lambda: scorer.forwards)
    return Search(ranking=ranking, rounds=rounds, forwards=scorer.forwards, rows=len(rows), budget=budget,
                  dropped=dropped, seconds=time.perf_counter() - t0)
