"""The intervals every table, run and view shows: accuracy's is Wilson's (never (1.0, 1.0) on a few rows),
macro-F1's is a bootstrap or none at all (never zero-width), macro-F1 averages over the classes present,
and a comparison's McNemar p is labelled uncorrected, beside Holm's. No model: pure numbers and views."""
from __future__ import annotations

import numpy as np
import pytest

from backend.evaluate import classification_metrics, interval_scalars
from backend.services.evaluate import result_view
from backend.workbench import stats
from backend.workbench.compare import Comparison, Scored
from studio.views.evaluation import metrics_card
from studio.views.workbench import compare_rows, ensembles_html


def test_accuracy_interval_is_wilson_not_a_percentile_bootstrap():
    # reference values: Wilson score interval, z = 1.959964 (e.g. statsmodels proportion_confint 'wilson')
    assert stats.wilson_interval(19, 20) == pytest.approx((0.76387, 0.99112), abs=1e-4)
    lo, hi = stats.wilson_interval(20, 20)
    assert lo == pytest.approx(0.83887, abs=1e-4) and hi == 1.0        # not (1.0, 1.0)
    assert stats.wilson_interval(1, 1) == pytest.approx((0.20655, 1.0), abs=1e-4)
    assert stats.wilson_interval(0, 3) == pytest.approx((0.0, 0.56150), abs=1e-4)
    with pytest.raises(ValueError):
        stats.wilson_interval(0, 0)
    # the stored-run path (from the confusion matrix) gives the same interval as the comparison path
    assert stats.confusion_intervals([[12, 0], [0, 8]])["accuracy"] == pytest.approx((0.83887, 1.0), abs=1e-4)
    assert stats.confusion_intervals([[1, 0], [0, 0]])["accuracy"] == pytest.approx((0.20655, 1.0), abs=1e-4)
    assert stats.accuracy_interval([0] * 19 + [1], [0] * 20) == pytest.approx((0.76387, 0.99112), abs=1e-4)


def test_macro_f1_has_no_interval_without_spread_or_rows():
    assert stats.confusion_intervals([[12, 0], [0, 8]])["macro_f1"] is None     # every row right
    assert stats.confusion_intervals([[3, 1], [1, 3]])["macro_f1"] is None      # 8 rows: too few
    lo, hi = stats.confusion_intervals([[28, 4], [2, 30]])["macro_f1"]
    assert lo < hi
    # a run records no macro-F1 interval keys then (never 0 or a zero-width pair), accuracy's it keeps
    scalars = interval_scalars(classification_metrics([0] * 12 + [1] * 8, [0] * 12 + [1] * 8, ["a", "b"]))
    assert set(scalars) == {"accuracy_ci_low", "accuracy_ci_high"}
    assert scalars["accuracy_ci_low"] < 1.0 == scalars["accuracy_ci_high"]


def test_macro_f1_averages_over_the_classes_present():
    m = classification_metrics([0] * 5, [0] * 5, ["a", "b"])
    assert m["macro_f1"] == 1.0                                          # was 0.5: 'b' counted as F1=0
    assert m["per_class"]["b"]["support"] == 0 and set(m["per_class"]) == {"a", "b"}
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])   # 'c' never seen
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # inside each resample, the classes present in that resample's gold or predictions
    gold, pred = np.array([0, 0, 1]), np.array([0, 0, 0])
    only_a = np.array([[0, 1, 0]])                                      # rows of class 'a', all right
    assert stats.macro_f1_samples(gold, pred, 3, only_a)[0] == 1.0
    assert stats.macro_f1_samples(gold, pred, 3, np.arange(3)[None, :])[0] == pytest.approx(
        classification_metrics(gold.tolist(), pred.tolist(), ["a", "b", "c"])["macro_f1"])


def _perfect_comparison(n: int) -> Comparison:
    gold = [i % 2 for i in range(n)]
    right = np.log(np.where(np.eye(2)[gold] > 0, 0.9, 0.1))
    wrong = right[:, ::-1].copy()
    wrong[:n // 4] = right[:n // 4]                                    # right on a quarter of the rows
    return Comparison(classes=["neg", "pos"], gold=gold, guids=[str(i) for i in range(n)],
                      scored=[Scored("t", "good", right, calibrated=right), Scored("t", "bad", wrong, calibrated=wrong)])


def test_comparison_table_wilson_accuracy_and_no_zero_width_macro_f1():
    rows = _perfect_comparison(20).table(n_boot=200)
    assert rows[0]["accuracy"] == 1.0
    assert rows[0]["accuracy_ci"] == pytest.approx((0.83887, 1.0), abs=1e-4)
    assert rows[0]["macro_f1_ci"] is None
    lo, hi = rows[1]["macro_f1_ci"]
    assert lo < hi
    assert rows[1]["vs_baseline"]["p_value"] == stats.mcnemar_exact([False] * 15 + [True] * 5,
                                                                    [True] * 20).p_value   # unchanged


def test_views_say_no_interval_and_label_p_uncorrected():
    cmp = _perfect_comparison(20)
    table = (cmp.table(n_boot=200), cmp.table(n_boot=200, calibrated=True))
    res = {"rows": [{"run_id": i + 1, "template": u["template"], "label_words": u["verbalizer"],
                     "uncalibrated": u, "calibrated": c} for i, (u, c) in enumerate(zip(*table))],
           "templates": {"t": "{text_a} {mask}"}, "label_words": {"good": "x", "bad": "y"}}
    first, second = compare_rows(res)
    assert first[5] == "1.000 [no interval: under 10 rows, or no spread]" and first[4].startswith("1.000 [0.839–1.000]")
    p = table[0][1]["vs_baseline"]["p_value"]
    assert f"p={p:.3g} uncorrected, Holm p={min(1.0, 2 * p):.3g}" in second[8]   # two tests in the table
    html = ensembles_html({"ensembles": [{"run_id": 9, "kind": "mean", "accuracy": 1.0, "accuracy_ci": (0.84, 1.0),
                                          "macro_f1": 1.0, "macro_f1_ci": None, "weights": [1.0], "members": ["a"],
                                          "train_rows": 8}]})
    assert "no interval: under 10 rows, or no spread" in html
    # the Evaluate tab's card: macro-F1 of an all-right run has no interval, said as such
    view = result_view(classification_metrics([0] * 12 + [1] * 8, [0] * 12 + [1] * 8, ["a", "b"]), None)
    assert view["intervals"]["macro_f1"] is None
    card = metrics_card(view)
    assert "1.0000 (no interval: under 10 rows, or no spread)" in card and "95% CI 0.8389-1.0000" in card


def test_holm_adjusts_a_family_and_keeps_missing_tests():
    assert stats.holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0] and stats.holm([]) == []
