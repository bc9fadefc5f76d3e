"""Template ensembles: several templates' class scores combined into one prediction.

Three ways, after PET and Lester et al.: ``uniform`` (the mean of the templates' class probabilities),
``accuracy`` (PET: each template weighted by its accuracy on the *training* rows, measured before any
training) and ``fitted`` (a multinomial logistic regression over the templates' class log-probs, fitted
on the training rows). Every weight comes from training rows only: an ensemble tuned on the dev rows
would report a dev score it was fitted to. ``fit_ensemble`` therefore takes the training scores, and
``Ensemble.apply`` is what is scored on dev.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from backend.errors import ConfigError
from backend.workbench import stats

KINDS = ("uniform", "accuracy", "fitted")


@dataclass
class Ensemble:
    kind: str
    templates: list[str]
    weights: list[float]                               # per template (uniform / accuracy)
    classifier: dict[str, Any] = field(default_factory=dict)   # fitted: {"W": [[...]], "b": [...]}

    def apply(self, scores: Sequence[np.ndarray]) -> np.ndarray:
        """(n, C) class log-probs of the ensemble from each template's (n, C) class log-probs."""
        _check_shapes(scores, len(self.templates))
        if self.kind == "fitted":
            x = np.concatenate(scores, axis=1)
            logits = x @ np.asarray(self.classifier["W"]).T + np.asarray(self.classifier["b"])
            return stats.log_softmax(logits)
        w = np.asarray(self.weights, dtype=np.float64)
        probs = sum(wi * np.exp(s) for wi, s in zip(w / w.sum(), scores))
        return np.log(np.clip(probs, 1e-12, None))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "templates": self.templates, "weights": self.weights,
                "classifier": self.classifier}


def fit_ensemble(kind: str, templates: Sequence[str], train_scores: Sequence[np.ndarray],
                 train_gold: Sequence[int], *, l2: float = 1e-2, seed: int = 0) -> Ensemble:
    """An ensemble of ``templates`` whose weights are learnt from their scores on the training rows."""
    if kind not in KINDS:
        raise ConfigError(f"ensemble must be one of {', '.join(KINDS)}, not {kind!r}", field="ensemble")
    if len(templates) < 2:
        raise ConfigError("an ensemble needs at least two templates", field="ensemble")
    _check_shapes(train_scores, len(templates))
    gold = np.asarray(train_gold)
    if kind == "uniform":
        return Ensemble(kind, list(templates), [1.0] * len(templates))
    if len(gold) == 0 or len(gold) != len(train_scores[0]):
        raise ConfigError("the ensemble's weights need the templates' scores on the labelled training rows")
    if kind == "accuracy":
        acc = [float((s.argmax(-1) == gold).mean()) for s in train_scores]
        return Ensemble(kind, list(templates), [max(a, 1e-6) for a in acc])
    W, b = _fit_logistic(np.concatenate(train_scores, axis=1), gold, train_scores[0].shape[1], l2, seed)
    return Ensemble(kind, list(templates), [1.0] * len(templates), {"W": W.tolist(), "b": b.tolist()})


def _fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (L-BFGS, L2 on the weights): tiny, so exact and deterministic."""
    torch.manual_seed(seed)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.long)
    W = torch.zeros((n_classes, x.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ W.T + b, yt) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach().numpy(), b.detach().numpy()


def _check_shapes(scores: Sequence[np.ndarray], n_templates: int) -> None:
    if len(scores) != n_templates:
        raise ConfigError(f"expected the scores of {n_templates} templates, got {len(scores)}")
    if len({s.shape for s in scores}) != 1:
        raise ConfigError("every template must be scored on the same rows and classes")
