"""The prompt comparison: one forward per template gives the same scores as evaluating every
combination on its own, and the paired statistics are right on cases small enough to count by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.batching import EncodeSettings
from backend.errors import ConfigError, VerbalizerError
from backend.evaluate import classification_metrics, evaluate
from backend.pipeline import build_verbalizer, mask_prefix
from backend.prompt_model import PromptModel
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer
from backend.workbench import stats
from backend.workbench.compare import Prompt, compare_prompts
from tests.tiny import bert_tokenizer, tiny_model

CLASSES = ["negative", "positive"]
ROWS = [("a great movie", "positive"), ("boring and bad", "negative"), ("loved it", "positive"),
        ("a waste of time", "negative"), ("fine acting, dull plot", "negative"), ("wonderful", "positive"),
        ("not good", "negative"), ("superb cast", "positive")]
EXAMPLES = [Example(guid=i, text_a=t, label=lab) for i, (t, lab) in enumerate(ROWS)]
TEMPLATES = [Prompt("it-was", "{text_a} It was {mask}."), Prompt("review", "Review: {text_a} Verdict: {mask}"),
             Prompt("soft", "{soft} {text_a} {mask}")]
VERBALIZERS = [Prompt("plain", {"negative": ["bad"], "positive": ["good"]}),
               Prompt("rich", {"negative": ["bad", "terrible"], "positive": ["great", "wonderful film"]}),
               Prompt("odd", {"negative": ["no"], "positive": ["yes"]})]


@pytest.fixture(scope="module", params=["masked", "causal"])
def loaded(request, smol_tok):
    torch.manual_seed(0)
    return tiny_model(request.param, bert_tokenizer() if request.param == "masked" else smol_tok)


def test_shared_forward_equals_one_evaluation_per_combination(loaded):
    settings = EncodeSettings(profile=loaded.kind, max_length=64, truncate="tail")
    cmp = compare_prompts(loaded, TEMPLATES, VERBALIZERS, EXAMPLES, CLASSES, settings=settings, batch_size=3)
    assert cmp.forwards == len(TEMPLATES) and len(cmp.scored) == 9
    for s in cmp.scored:
        t = compile_template(next(p.content for p in TEMPLATES if p.name == s.template), loaded.tokenizer)
        v = build_verbalizer(next(p.content for p in VERBALIZERS if p.name == s.verbalizer), CLASSES)
        pm = PromptModel(loaded.model, loaded.kind, t, compile_verbalizer(v, loaded.tokenizer, mask_prefix(t)))
        for calibration, got in ((None, s.log_probs), ("content-free", s.calibrated)):
            ref = evaluate(pm, loaded.tokenizer, EXAMPLES, settings=settings, batch_size=3, calibration=calibration)
            want = np.log([[r["probs"][c] for c in CLASSES] for r in ref.predictions])
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_table_flips_and_errors(loaded):
    settings = EncodeSettings(profile=loaded.kind, max_length=64, truncate="tail")
    cmp = compare_prompts(loaded, TEMPLATES[:2], VERBALIZERS[:2], EXAMPLES, CLASSES, settings=settings)
    table = cmp.table(baseline=1, n_boot=200)
    assert [r["vs_baseline"] is None for r in table] == [False, True, False, False]
    for r, i in zip(table, range(4)):
        assert r["accuracy_ci"][0] <= r["accuracy"] <= r["accuracy_ci"][1]
        assert r["accuracy"] == classification_metrics(cmp.gold, cmp.predictions(i).tolist(), CLASSES)["accuracy"]
    flips = cmp.flips(0, 1)
    assert len(flips["a_right"]) == table[0]["vs_baseline"]["only_a"]
    assert len(flips["b_right"]) == table[0]["vs_baseline"]["only_b"]
    with pytest.raises(ConfigError, match="baseline"):
        cmp.table(baseline=9)
    with pytest.raises(VerbalizerError, match="unknown class"):
        compare_prompts(loaded, TEMPLATES[:1], [Prompt("three", {"a": ["x"], "b": ["y"], "c": ["z"]})],
                        EXAMPLES, CLASSES, settings=settings)


def test_mcnemar_exact_on_hand_counted_cases():
    assert stats.mcnemar_exact([True] * 5, [True] * 5).p_value == 1.0
    five_to_zero = stats.mcnemar_exact([False] * 5, [True] * 5)
    assert (five_to_zero.only_a, five_to_zero.only_b) == (0, 5)
    assert five_to_zero.p_value == pytest.approx(2 / 32)        # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert stats.mcnemar_exact([True, False, True], [False, True, False]).p_value == 1.0  # 2 vs 1
    big = stats.mcnemar_exact([True] * 2000 + [False] * 1000, [False] * 2000 + [True] * 1000)
    assert 0 < big.p_value < 1e-50                             # exact integers: no underflow to nan


def test_bootstrap_samples_match_the_metrics_on_the_identity_resample():
    rng = np.random.default_rng(1)
    gold, pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    identity = np.arange(50)[None, :]
    full = classification_metrics(gold.tolist(), pred.tolist(), ["a", "b", "c"])
    assert stats.macro_f1_samples(gold, pred, 3, identity)[0] == pytest.approx(full["macro_f1"])
    idx = stats.resample_indices(50, 500, seed=3)
    lo, hi = stats.interval(stats.macro_f1_samples(gold, pred, 3, idx))
    assert lo < full["macro_f1"] < hi
    assert np.array_equal(idx, stats.resample_indices(50, 500, seed=3))


def test_confusion_intervals_agree_with_resampling_the_rows():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=300)
    pred = np.where(rng.random(300) < 0.7, gold, rng.integers(0, 3, size=300))
    metrics = classification_metrics(gold.tolist(), pred.tolist(), ["a", "b", "c"])
    got = stats.confusion_intervals(metrics["confusion"], n_boot=4000)
    idx = stats.resample_indices(300, n_boot=4000, seed=1)
    rows = {"accuracy": stats.accuracy_interval(gold, pred),           # Wilson: the same either way
            "macro_f1": stats.interval(stats.macro_f1_samples(gold, pred, 3, idx))}
    for key, (lo, hi) in got.items():
        assert lo < metrics[key] < hi
        assert rows[key][0] == pytest.approx(lo, abs=0.01) and rows[key][1] == pytest.approx(hi, abs=0.01), key


def test_confusion_intervals_narrow_with_rows_and_fit_many_classes():
    small = stats.confusion_intervals([[28, 4], [2, 30]])                 # 64 rows, accuracy 0.906
    large = stats.confusion_intervals([[2800, 400], [200, 3000]])         # the same rates on 6400
    width = {k: hi - lo for k, (lo, hi) in small.items()}
    assert all(0.05 < w < 0.25 for w in width.values()), width
    assert all(hi - lo < width[k] / 5 for k, (lo, hi) in large.items())
    many = np.eye(100, dtype=int) * 3
    many[0, 1] = 30                                                       # 300 of 330 right
    wide = stats.confusion_intervals(many.tolist())
    assert set(wide) == {"accuracy"} and wide["accuracy"][0] < 300 / 330 < wide["accuracy"][1]
    assert stats.confusion_intervals([[0, 0], [0, 0]]) == {}
