"""Template ensembles: weights learnt from training rows only, and each kind doing what it says."""
from __future__ import annotations

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.workbench.ensemble import fit_ensemble
from backend.workbench.stats import log_softmax


def _scores(rng, gold, skill: float) -> np.ndarray:
    """Log-probs of a template that leans towards the gold class with strength ``skill``."""
    logits = rng.normal(size=(len(gold), 3))
    logits[np.arange(len(gold)), gold] += skill
    return log_softmax(logits)


def test_uniform_is_the_mean_probability():
    a = log_softmax(np.array([[2.0, 0.0], [0.0, 1.0]]))
    b = log_softmax(np.array([[0.0, 0.0], [3.0, 0.0]]))
    ens = fit_ensemble("uniform", ["a", "b"], [a, b], [])
    np.testing.assert_allclose(np.exp(ens.apply([a, b])), (np.exp(a) + np.exp(b)) / 2, atol=1e-9)


def test_accuracy_weights_come_from_the_training_rows():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 200)
    good, bad = _scores(rng, gold, 3.0), _scores(rng, gold, 0.0)
    ens = fit_ensemble("accuracy", ["good", "bad"], [good, bad], gold)
    assert ens.weights[0] == pytest.approx((good.argmax(-1) == gold).mean())
    assert ens.weights[0] > 2 * ens.weights[1]


def test_fitted_learns_to_ignore_a_useless_template_and_beats_uniform():
    rng = np.random.default_rng(1)
    train_gold, dev_gold = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    # the third template is confidently wrong: it puts its mass on the class after the gold one
    def liar(gold):
        return log_softmax(np.eye(3)[(gold + 1) % 3] * 6.0)
    train = [_scores(rng, train_gold, 1.5), _scores(rng, train_gold, 1.5), liar(train_gold)]
    dev = [_scores(rng, dev_gold, 1.5), _scores(rng, dev_gold, 1.5), liar(dev_gold)]
    fitted = fit_ensemble("fitted", ["a", "b", "liar"], train, train_gold)
    uniform = fit_ensemble("uniform", ["a", "b", "liar"], train, train_gold)
    acc = {name: float((e.apply(dev).argmax(-1) == dev_gold).mean()) for name, e in
           (("fitted", fitted), ("uniform", uniform))}
    assert acc["fitted"] > 0.95 > acc["uniform"]     # the liar's hint is learnt, not averaged in
    restored = type(fitted)(**fitted.to_dict())
    np.testing.assert_allclose(restored.apply(dev), fitted.apply(dev))


def test_misuse_is_a_clear_error():
    s = log_softmax(np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="at least two"):
        fit_ensemble("uniform", ["a"], [s], [0, 1, 0, 1])
    with pytest.raises(ConfigError, match="one of"):
        fit_ensemble("median", ["a", "b"], [s, s], [0, 1, 0, 1])
    with pytest.raises(ConfigError, match="same rows"):
        fit_ensemble("uniform", ["a", "b"], [s, s[:3]], [])
    with pytest.raises(ConfigError, match="training rows"):
        fit_ensemble("accuracy", ["a", "b"], [s, s], [])
