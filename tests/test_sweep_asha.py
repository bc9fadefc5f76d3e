"""ASHA's decision function: rungs, the quantile cut among the runs that arrived first, one stop per run."""
from __future__ import annotations

import math

import pytest

from backend.sweeps.asha import (STOP_CUT, USER_STOP, Curve, decide, quantile, rungs, stop_events, stop_reason)


def curve(run_id, points, active=True):
    """``points``: (step, value, time)."""
    return Curve(run_id=run_id, evals=tuple(points), active=active)


def test_rungs_and_quantile():
    assert rungs(10, 3, 100) == [10, 30, 90]
    assert rungs(10, 3, 9) == []
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert quantile([0.6], 0.5) == 0.6
    assert quantile([0.2, 0.8, 0.5], 2 / 3) == pytest.approx(0.6)


def test_the_worse_of_two_stops_and_the_first_to_arrive_never_alone():
    good = curve(1, [(2, 0.9, 10.0)])
    bad = curve(2, [(2, 0.5, 11.0)])
    stops = decide([good, bad], grace_steps=2, reduction_factor=2)
    assert [(s.run_id, s.step, s.rung) for s in stops] == [(2, 2, 2)]
    assert stops[0].cut == pytest.approx(0.7) and stops[0].value == 0.5
    assert stops[0].reason == "stopped early by ASHA at step 2: accuracy 0.5 < rung cut 0.7"
    # arriving first, alone at the rung, the bad run would have gone on: ASHA does not wait
    bad_first = curve(2, [(2, 0.5, 9.0)])
    assert decide([good, bad_first], grace_steps=2, reduction_factor=2) == []


def test_only_active_runs_stop_and_finished_ones_still_set_the_cut():
    done = curve(1, [(2, 0.9, 1.0), (4, 0.95, 2.0)], active=False)
    stopped_already = curve(2, [(2, 0.1, 1.5)], active=False)
    running = curve(3, [(2, 0.8, 3.0), (4, 0.6, 4.0)])
    stops = decide([done, stopped_already, running], grace_steps=2, reduction_factor=2)
    # rung 2: values 0.9, 0.1, 0.8 -> median 0.8, not below; rung 4: 0.95 and 0.6 -> cut 0.775
    assert [(s.run_id, s.rung, s.step) for s in stops] == [(3, 4, 4)]
    assert stops[0].cut == pytest.approx(0.775)


def test_first_evaluation_past_the_rung_counts_and_nan_is_worst():
    a = curve(1, [(3, 0.7, 1.0)])           # rung 2 reached by the evaluation at step 3
    b = curve(2, [(3, math.nan, 2.0)])
    stops = decide([a, b], grace_steps=2, reduction_factor=2)
    assert [(s.run_id, s.step, s.rung) for s in stops] == [(2, 3, 2)]
    assert decide([curve(1, [(1, 0.1, 1.0)]), curve(2, [(1, 0.9, 2.0)])], grace_steps=2, reduction_factor=2) == []


def test_reduction_factor_keeps_about_one_in_rf():
    runs = [curve(i, [(5, v, float(i))]) for i, v in enumerate([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])]
    stopped = {s.run_id for s in decide(runs, grace_steps=5, reduction_factor=3)}
    # each is compared with those that came before it: 0.8 < q(0.9,0.8), 0.7, 0.6, 0.5 lose; 0.95 goes on
    assert stopped == {1, 2, 3, 4}


def test_stop_events_round_trip_to_the_reason():
    (s,) = decide([curve(1, [(2, 0.9, 1.0)]), curve(2, [(2, 0.4, 2.0)])], grace_steps=2, reduction_factor=2)
    metrics = {e["key"]: e["value"] for e in stop_events(s, 5.0)}
    assert stop_reason(metrics) == s.reason and STOP_CUT in metrics
    assert stop_reason({USER_STOP: 1.0}).startswith("stopped from the sweep table")
    assert stop_reason({"eval/accuracy": 0.5}) is None
