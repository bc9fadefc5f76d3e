"""Training curves (studio/views/plots.curves): the loss and the dev metrics on their own panels, the loss
smoothed, the metrics told apart, the best checkpoint marked where the trainer keeps it."""
from __future__ import annotations

import math

import pytest

from studio.views.plots import as_smoothing, best_point, curves, ema

LOSS = [(s, 1.0 / s) for s in range(1, 41)]
ACC = [(10, 0.5), (20, 0.8), (30, 0.8), (40, 0.7)]
F1 = [(10, 0.5), (20, 0.78), (30, 0.8), (40, 0.7)]      # equal to accuracy at three steps


def _trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_ema_on_a_known_series():
    assert ema([1.0, 0.0, 0.0, 1.0], 0.5) == [1.0, 0.5, 0.25, 0.625]
    assert ema([3.0, 1.0, 2.0], 0.0) == [3.0, 1.0, 2.0]
    assert ema([], 0.9) == []
    assert ema([math.nan, 2.0, math.inf, 0.0], 0.5) == [pytest.approx(math.nan, nan_ok=True), 2.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="smoothing"):
        ema([1.0], 1.0)


def test_best_point_is_the_first_highest_like_the_trainer():
    assert best_point(ACC) == (20, 0.8)               # 0.8 again at step 30 is not "better"
    assert best_point([(5, math.nan), (6, 0.1)]) == (6, 0.1)
    assert best_point([]) is None


def test_loss_and_metrics_are_on_separate_panels():
    fig = curves({"run": {"train/loss": LOSS, "eval/accuracy": ACC, "eval/macro_f1": F1}})
    assert fig.layout.xaxis2 is not None and fig.layout.yaxis2 is not None       # two rows
    assert _trace(fig, "train/loss").yaxis == "y"
    assert _trace(fig, "train/loss (smoothed)").yaxis == "y"
    assert _trace(fig, "eval/accuracy").yaxis == "y2"
    assert _trace(fig, "eval/macro_f1").yaxis == "y2"
    assert list(fig.layout.yaxis2.range) == [-0.03, 1.03]


def test_loss_is_drawn_raw_and_smoothed():
    fig = curves({"run": {"train/loss": LOSS}}, smoothing=0.5)
    raw, smooth = _trace(fig, "train/loss"), _trace(fig, "train/loss (smoothed)")
    assert list(raw.y) == [v for _, v in LOSS]
    assert list(smooth.y) == pytest.approx(ema([v for _, v in LOSS], 0.5))
    assert raw.opacity < 1 and smooth.line.width > raw.line.width
    assert "moving average 0.5" in fig.layout.annotations[0].text
    no_smoothing = curves({"run": {"train/loss": LOSS}}, smoothing=0)
    assert [t.name for t in no_smoothing.data if t.name] == ["train/loss"]


def test_accuracy_and_macro_f1_are_told_apart():
    fig = curves({"run": {"eval/accuracy": ACC, "eval/macro_f1": F1}})
    acc, f1 = _trace(fig, "eval/accuracy"), _trace(fig, "eval/macro_f1")
    assert acc.line.color != f1.line.color
    assert acc.line.dash != f1.line.dash
    assert acc.marker.symbol != f1.marker.symbol and "markers" in acc.mode and "markers" in f1.mode
    assert fig.layout.showlegend is not False


def test_best_checkpoint_is_marked_at_its_step_with_its_value():
    fig = curves({"run": {"train/loss": LOSS, "eval/accuracy": ACC, "eval/macro_f1": F1}})
    star = _trace(fig, "best accuracy 0.800 at step 20")
    assert list(star.x) == [20] and list(star.y) == [0.8] and star.yaxis == "y2"
    assert [s.x0 for s in fig.layout.shapes] == [20, 20]         # a line through both panels
    assert any(a.text == "best 0.800 @ 20" for a in fig.layout.annotations)
    by_f1 = curves({"run": {"eval/accuracy": ACC, "eval/macro_f1": F1}}, best_key="eval/macro_f1")
    assert list(_trace(by_f1, "best macro_f1 0.800 at step 30").x) == [30]


def test_several_runs_colour_by_run_and_mark_each_best():
    fig = curves({"#1": {"train/loss": LOSS, "eval/accuracy": ACC},
                  "#2": {"train/loss": LOSS, "eval/accuracy": [(10, 0.9), (20, 0.6)]}})
    a, b = _trace(fig, "#1 eval/accuracy"), _trace(fig, "#2 eval/accuracy")
    assert a.line.color != b.line.color
    assert list(_trace(fig, "best accuracy 0.900 at step 10").x) == [10]
    assert list(_trace(fig, "best accuracy 0.800 at step 20").x) == [20]
    assert not fig.layout.shapes                                   # no single step line for several runs


def test_default_keys_leave_out_rates_and_speeds_and_empty_panels_say_so():
    fig = curves({"run": {"train/loss": LOSS, "train/lr": [(1, 1e-3)], "train/tokens_per_s": [(1, 900.0)]}})
    assert {t.name for t in fig.data if t.name} == {"train/loss", "train/loss (smoothed)"}
    assert any(a.text == "no dev evaluation yet" for a in fig.layout.annotations)
    picked = curves({"run": {"train/loss": LOSS, "train/lr": [(1, 1e-3)]}}, keys=["train/lr"])
    assert [t.name for t in picked.data if t.name] == ["train/lr"]
    assert any(a.text == "no training loss yet" for a in picked.layout.annotations)


@pytest.mark.parametrize("value, expected", [(0.3, 0.3), (0, 0.0), ("0.5", 0.5), (None, 0.8), ("x", 0.8),
                                             (2, 0.8), (-1, 0.8), (float("nan"), 0.8), (1e400, 0.8)])
def test_smoothing_from_a_slider_or_the_api(value, expected):
    assert as_smoothing(value) == expected
