"""Evaluation results: the metric card, the per-class table and the examples behind a matrix cell."""
from __future__ import annotations

from html import escape
from typing import Any

from studio.views.tables import html_table, kv_card, prob_bars

NO_INTERVAL = "no interval: under 10 rows, or no spread"   # what a metric whose interval is None shows beside it


def metrics_card(res: dict[str, Any]) -> str:
    m = res["metrics"]
    items = [("accuracy", _with_interval(m.get("accuracy"), res, "accuracy")),
             ("macro-F1", _with_interval(m.get("macro_f1"), res, "macro_f1")), ("examples", m.get("n")),
             ("calibration", res.get("calibration", "none"))]
    if m.get("seconds") is not None:
        items.append(("seconds", m["seconds"]))
    if m.get("truncated"):
        items.append(("inputs truncated", m["truncated"]))
    title = f"Run {res['run_id']}" if res.get("run_id") is not None else "Result"
    # what the score cannot be taken for (scored on rows that chose its checkpoint...), beside the number
    return kv_card(items, title) + "".join(f"<div class='ps-msg ps-warning'>{escape(c)}</div>"
                                           for c in res.get("caveats") or [])


def _with_interval(value: Any, res: dict[str, Any], key: str) -> Any:
    """``0.9062 (95% CI 0.8281-0.9688)``: the metric with its interval over the rows scored; where the
    backend found none (``None``: too few rows, or every row right) it says so, so the bare number is not
    read as exact, and never shows a made-up 0 or zero-width interval."""
    intervals = res.get("intervals") or {}
    if value is None or key not in intervals:
        return value
    lo_hi = intervals[key]
    if not lo_hi:
        return f"{value:.4f} ({NO_INTERVAL})"
    return f"{value:.4f} ({round(100 * res.get('confidence', 0.95))}% CI {lo_hi[0]:.4f}-{lo_hi[1]:.4f})"


def per_class_html(res: dict[str, Any]) -> str:
    rows = [[c, round(v["precision"], 4), round(v["recall"], 4), round(v["f1"], 4), v["support"]]
            for c, v in res["per_class"].items()]
    return html_table(["class", "precision", "recall", "F1", "support"], rows, "ps-per-class")


def cell_html(res: dict[str, Any]) -> str:
    head = (f"<div class='ps-msg ps-info'>{res['count']} examples with gold <b>{escape(str(res['gold']))}</b> "
            f"predicted as <b>{escape(str(res['predicted']))}</b>"
            + (f" (first {len(res['rows'])} shown)" if res["count"] > len(res["rows"]) else "") + "</div>")
    items = "".join(
        f"<div class='ps-example'><div class='ps-ex-head'>Example {r['index']}</div>"
        f"<pre class='ps-marked'>{escape(r['input'])}</pre>{prob_bars(r['probs'], str(r['gold']))}</div>"
        for r in res["rows"])
    return head + items
