"""The sweep views say what their numbers are: one seed shows no spread (no "± 0.0000", no zero-height
error bar), a survivors' mean is marked in the Pareto plot, and extrapolated costs are called estimates.
Pure: hand-made rows in, HTML / a plotly figure out."""
from __future__ import annotations

from html import unescape

from studio.views.sweep import cost_html, pareto_figure, status_html, table_rows


def _row(key, mean, std, values, *, finished=None, seeds=5, failed=0, stopped=0, trainable=100.0):
    return {"rank": 1, "key": key, "method": "lora", "metric": "accuracy", "mean": mean, "std": std,
            "values": values, "finished": len(values) if finished is None else finished, "seeds": seeds,
            "complete": not failed and not stopped and len(values) == seeds, "running": 0, "queued": 0,
            "stopped": stopped, "failed": failed, "last_eval": mean, "trainable": trainable,
            "seconds_per_step": 0.5, "peak_memory_mb": 300.0, "run_ids": [1], "params": {}}


def test_one_seed_shows_no_spread_and_a_survivors_mean_is_marked():
    good = _row("B", 0.936, 0.003, [0.93, 0.94, 0.935, 0.936, 0.939], trainable=1000.0)
    lucky = _row("A", 0.95, None, [0.95], failed=4, trainable=10.0)
    fig = pareto_figure([good, lucky], "trainable", ["B"])
    points = fig.data[0]
    assert list(points.error_y.array) == [0.003, None]             # no bar for one seed, not a zero-height one
    assert list(points.marker.symbol) == ["circle", "circle-open"]
    assert "not on the front: 4 failed, 0 stopped" in points.text[1]
    assert "1 hollow: failed or stopped seeds, mean of the rest, not on the front" in fig.layout.title.text
    assert table_rows([good, lucky])[1][2] == "0.9500 ± n/a (1 seed)"
    assert "± 0.0000" not in status_html({"name": "s", "rows": [lucky, good], "active": False})


def test_the_cost_card_calls_extrapolated_rows_estimates():
    plan = {"name": "big", "runs": 20, "configurations": 10, "seeds": 2, "steps": 400, "estimated_s": 1000.0,
            "measured": 8, "asha": False, "concurrency": 1,
            "rows": [{"key": "measured", "steps": 20, "trainable": 10, "estimated_s": 50.0, "measured": True},
                     {"key": "guessed", "steps": 40, "trainable": None, "estimated_s": 100.0, "measured": False}]}
    html = unescape(cost_html(plan))
    assert "the other 2 estimated from the measured configurations' mean time per step" in html
    assert "at their time per step" not in html
    assert "1 min 40 s (estimated)" in html and "50 s (estimated)" not in html


def test_a_score_measured_on_the_rows_that_chose_each_checkpoint_is_called_optimistic():
    """Runs that kept the best of several dev evaluations are scored (``final/``) on the rows that chose
    that checkpoint: the column and the plot say so; runs evaluated once (or never) before the end are not."""
    from studio.views.sweep import table_headers

    def with_train(row, **train):
        return dict(row, config={"train": {"steps": 4, **train}})

    picked = with_train(_row("B", 0.9, 0.01, [0.89, 0.91]), eval_every=1)
    once = with_train(_row("A", 0.8, 0.01, [0.79, 0.81]), eval_every=4)
    never = with_train(_row("C", 0.7, 0.01, [0.69, 0.71]))
    headers = table_headers([picked, once])
    assert "accuracy: mean ± std (dev rows that chose each checkpoint: optimistic)" in headers
    assert "accuracy: mean ± std" in table_headers([once, never])          # nothing chosen: as before
    fig = pareto_figure([picked, once], "trainable", ["B"])
    assert fig.layout.yaxis.title.text == "dev accuracy, optimistic (mean ± std)"
    assert "final dev accuracy on the dev rows that chose each checkpoint: optimistic, not held out" in fig.layout.title.text
    plain = pareto_figure([once, never], "trainable", ["A"])
    assert plain.layout.yaxis.title.text == "dev accuracy (mean ± std)" and "optimistic" not in plain.layout.title.text
