"""Knowledgeable verbalizer (KPT, Hu et al. 2022), offline: each class's words expanded, then refined.

Expansion: the model's own input-embedding neighbours of a class's words (cosine, whole-word vocabulary
rows only), plus any words the user lists; a word close to two classes goes to the closer one. No
external knowledge base is downloaded: the neighbours come from the loaded model.
Refinement, as KPT does without labels: words the model almost never predicts at the mask on the task's
own (unlabelled) rows are dropped — their prior is too low for their probability to say anything — and
the result is scored with the mean of its words' log-probs (``aggregate: mean``) and calibrated on the
same unlabelled rows (``calibration: support``), which together equal KPT's per-word prior division up
to a per-class constant. The output is a plain verbalizer the rest of the product uses as any other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from backend.batching import EncodeSettings
from backend.errors import DatasetError, VerbalizerError
from backend.prompts.example import Example
from backend.prompts.verbalizer import word_surface
from backend.data.sampling import stratified_sample
from backend.workbench.labelsearch import MAX_SEARCH_ROWS, mask_log_probs, word_tokens


@dataclass
class Knowledgeable:
    verbalizer: dict[str, Any]                     # {"label_words": {...}, "aggregate": "mean"}
    expanded: dict[str, list[tuple[str, float]]]   # class -> [(word, similarity to the class's seeds)]
    priors: dict[str, list[tuple[str, float]]]     # class -> [(word, log prior at the mask)], every word
    dropped: dict[str, list[str]]                  # class -> words removed by refinement
    calibration: str = "support"                   # evaluate with the unlabelled rows as the support set
    rows: int = 0                                  # rows the refinement read
    of_rows: int = 0                               # rows there were (more than ``rows``: a seeded sample)


def expand_words(tokenizer: Any, embeddings: torch.Tensor, seeds: dict[str, Sequence[str]], prefix: str, *,
                 neighbours: int = 20, extra: dict[str, Sequence[str]] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Class -> [(word, cosine to the nearest seed)], seeds first (similarity 1), best first."""
    words = word_tokens(tokenizer, prefix)
    ids = np.array([i for i in words if i < embeddings.shape[0]])
    table = torch.nn.functional.normalize(embeddings.detach().float()[torch.as_tensor(ids)], dim=-1)
    best: dict[str, tuple[str, float]] = {}           # word -> (class, similarity): the closer class wins
    for cls, seed_words in seeds.items():
        vecs = []
        for w in seed_words:
            toks = tokenizer(word_surface(w, prefix), add_special_tokens=False)["input_ids"]
            if not toks:
                raise VerbalizerError(f"label word {w!r} of class {cls!r} tokenizes to nothing")
            vecs.append(embeddings.detach().float()[list(toks)].mean(0))
        sims = (table @ torch.nn.functional.normalize(torch.stack(vecs), dim=-1).T).max(-1).values.cpu().numpy()
        for k in np.argsort(-sims)[:neighbours]:
            w, s = words[int(ids[k])], float(sims[k])
            if w not in best or s > best[w][1]:
                best[w] = (cls, s)
    out: dict[str, list[tuple[str, float]]] = {}
    for cls, seed_words in seeds.items():
        given = list(dict.fromkeys([*seed_words, *((extra or {}).get(cls, ()))]))
        near = sorted(((w, s) for w, (c, s) in best.items() if c == cls and w not in given), key=lambda x: -x[1])
        out[cls] = [(w, 1.0) for w in given] + near
    return out


def knowledgeable_verbalizer(loaded: Any, template_text: str, seeds: dict[str, Sequence[str]],
                             unlabelled: Sequence[Example], *, settings: EncodeSettings, neighbours: int = 20,
                             extra: dict[str, Sequence[str]] | None = None,
                             prior_quantile: float = 0.25) -> Knowledgeable:
    """Expand ``seeds`` and refine on ``unlabelled`` rows (their labels, if any, are not read): at most
    ``MAX_SEARCH_ROWS`` of them, a seeded sample when there are more."""
    if not unlabelled:
        raise DatasetError("KPT's refinement needs some of the task's rows (labels are not read)")
    available = len(unlabelled)
    unlabelled = [unlabelled[i] for i in stratified_sample([0] * available, MAX_SEARCH_ROWS)]
    logp, prefix = mask_log_probs(loaded, template_text, unlabelled, settings)
    expanded = expand_words(loaded.tokenizer, loaded.model.get_input_embeddings().weight, seeds, prefix,
                            neighbours=neighbours, extra=extra)
    prior = np.log(np.exp(logp).mean(0).clip(1e-30))            # (V,) mean probability at the mask
    kept: dict[str, list[str]] = {}
    priors: dict[str, list[tuple[str, float]]] = {}
    for cls, items in expanded.items():
        given = set(seeds[cls]) | set((extra or {}).get(cls, ()))
        scored = []
        for w, _ in items:
            toks = loaded.tokenizer(word_surface(w, prefix), add_special_tokens=False)["input_ids"]
            scored.append((w, float(prior[toks[0]])))
        floor = np.quantile([p for _, p in scored], prior_quantile) if len(scored) > 3 else -np.inf
        kept[cls] = [w for w, p in scored if w in given or p >= floor]
        priors[cls] = scored
    return Knowledgeable(verbalizer={"label_words": kept, "aggregate": "mean"}, expanded=expanded, priors=priors,
                         dropped={c: [w for w, _ in priors[c] if w not in kept[c]] for c in kept},
                         rows=len(unlabelled), of_rows=available)
