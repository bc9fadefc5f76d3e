"""Sweep renderers: the whole sweep's cost card, the live table, its status line, one configuration's
runs, and the Pareto plot (the metric against trainable parameters, time per step or peak memory). Where
the runs kept their best dev checkpoint, the score shown is on the rows that chose it, and the column
header and the plot say "optimistic" (``chose_checkpoints``).

Pure: service results in, HTML / table rows / a plotly figure out. Each point of the plot carries its
configuration's key (``customdata``), which the page's click handler puts into the configuration box.
"""
from __future__ import annotations

from html import escape
from typing import Any, Sequence

import plotly.graph_objects as go

from backend.sweeps.pareto import survivors_only
from backend.sweeps.table import score_text
from studio.views.tables import html_table, kv_card
from studio.views.training import duration

TABLE_COLUMNS = ["#", "configuration", "mean ± std", "seeds done", "state", "last dev", "trainable params",
                 "s / step", "peak MB"]
AXES = {"trainable": "trainable parameters", "seconds_per_step": "seconds per training step (dev evaluations included)",
        "peak_memory_mb": "peak memory (MB)"}
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")


def cost_html(plan: dict[str, Any]) -> str:
    """Runs, configurations x seeds, steps and the estimated time of the whole sweep."""
    est = plan["estimated_s"]
    time_text = duration(est) if est is not None else "unknown (no throughput measured yet)"
    if plan["concurrency"] > 1 and est is not None:
        time_text += f" of run time; about {duration(est / plan['concurrency'])} with {plan['concurrency']} at a time"
    if plan["asha"]:
        time_text += " at most: ASHA stops the losing configurations early"
    items = [("runs", f"{plan['runs']} ({plan['configurations']} configurations x {plan['seeds']} seeds)"),
             ("training steps in all", f"{plan['steps']:,}"), ("estimated time on this machine", time_text)]
    if plan["measured"] < plan["configurations"]:
        items.append(("measured", f"the first {plan['measured']} configurations; the other "
                                  f"{plan['configurations'] - plan['measured']} estimated from the measured "
                                  "configurations' mean time per step (an extrapolation: not timed)"))
    per = html_table(["configuration", "steps", "trainable params", "time per seed"],
                     [[r["key"], r["steps"], f"{r['trainable']:,}" if r["trainable"] is not None else "",
                       _seed_time(r)] for r in plan["rows"]], "ps-sweep-cost-rows")
    return kv_card(items, f"Sweep {plan['name']}: cost before starting") + per


def _seed_time(row: dict[str, Any]) -> str:
    """A row's time per seed; an extrapolated one says so (it was never timed on this configuration)."""
    return duration(row["estimated_s"]) + ("" if row.get("measured", True) or row["estimated_s"] is None
                                           else " (estimated)")


def _state(row: dict[str, Any]) -> str:
    parts = [f"{row[k]} {k}" for k in ("running", "queued", "stopped", "failed") if row[k]]
    return ", ".join(parts) or "done"


def _num(value: Any, fmt: str) -> Any:
    return "" if value is None else format(value, fmt)


OPTIMISTIC = "dev rows that chose each checkpoint: optimistic"


def chose_checkpoints(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether a configuration's runs kept the best of several dev evaluations (``train.eval_every`` below
    its steps): their ``final/`` score, which the table and the plot show, is then on the dev rows that chose
    each checkpoint, the best of several tries on the same rows, not a held-out figure."""
    for row in rows:
        train = (row.get("config") or {}).get("train") or {}
        every, steps = train.get("eval_every"), train.get("steps")
        if every and (steps is None or every < steps):
            return True
    return False


def table_headers(rows: Sequence[dict[str, Any]]) -> list[str]:
    """TABLE_COLUMNS with the metric the sweep ranks by named (macro-F1 is not accuracy), and called
    optimistic where the runs chose their checkpoints on the rows it is measured on. "last dev": each
    seed's last dev evaluation (the highest over the seeds), which after early stopping is not its best."""
    metric = rows[0]["metric"] if rows else "accuracy"
    mean = f"{metric}: mean ± std" + (f" ({OPTIMISTIC})" if chose_checkpoints(rows) else "")
    named = {"mean ± std": mean, "last dev": f"last dev {metric} (top seed)"}
    return [named.get(c, c) for c in TABLE_COLUMNS]


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The live table (best first): one line per configuration."""
    return [[r["rank"], r["key"], score_text(r), f"{r['finished']}/{r['seeds']}", _state(r), _num(r["last_eval"], ".4f"),
             _num(r["trainable"], ",.0f"), _num(r["seconds_per_step"], ".3f"), _num(r["peak_memory_mb"], ",.0f")]
            for r in rows]


def status_html(res: dict[str, Any]) -> str:
    rows = res["rows"]
    runs = sum(r["finished"] + r["running"] + r["queued"] + r["stopped"] + r["failed"] for r in rows)
    done = sum(r["finished"] + r["stopped"] + r["failed"] for r in rows)
    state = "running" if res["active"] else "finished"
    best = rows[0] if rows and rows[0]["mean"] is not None else None
    lead = f" · best so far: <b>{escape(best['key'])}</b> {escape(best['metric'])} {score_text(best)}" if best else ""
    return (f"<div class='ps-card' id='ps-sweep-state' data-state='{state}'>Sweep <b>{escape(res['name'])}</b> · "
            f"{len(rows)} configurations · {done}/{runs} runs ended · <b>{state}</b>{lead}</div>")


def configuration_html(conf: dict[str, Any]) -> str:
    """The runs of one configuration: seed, status, the sweep's metric at the end and at the last dev
    evaluation, why it stopped."""
    params = ", ".join(f"{k} = {v!r}" if not isinstance(v, str) or len(v) < 60 else f"{k} = {v[:57]!r}..."
                       for k, v in conf["params"].items())
    rows = [[f"#{r['id']}", r["seed"], r["status"], _num(r["final"], ".4f"), _num(r["last_eval"], ".4f"),
             r["reason"] or ""] for r in conf["runs"]]
    metric = conf["metric"]
    return (f"<div class='ps-card' id='ps-sweep-config-card'><b>{escape(conf['key'])}</b><div>{escape(params)}</div>"
            + html_table(["run", "seed", "status", f"final {metric}", f"last dev {metric}", "stopped because"], rows,
                         "ps-sweep-config-runs") + "</div>")


def pareto_figure(rows: Sequence[dict[str, Any]], axis: str, front_keys: Sequence[str]) -> go.Figure:
    """Mean ± std of the metric against ``axis``, one colour per method; the front joined by a line.
    Configurations without a finished seed or without the cost are left out (said in the title); one seed
    has no error bar (no spread to show); a configuration with a failed or stopped seed is drawn hollow
    and kept off the front (its mean is over the survivors), which the title and its hover say."""
    label = AXES.get(axis, axis)
    shown = [r for r in rows if r.get(axis) is not None and r["mean"] is not None]
    fig = go.Figure()
    methods = list(dict.fromkeys(r["method"] for r in shown))
    for i, method in enumerate(methods):
        pts = [r for r in shown if r["method"] == method]
        fig.add_trace(go.Scatter(
            x=[r[axis] for r in pts], y=[r["mean"] for r in pts], mode="markers", name=method,
            error_y={"type": "data", "array": [r["std"] for r in pts], "visible": True},
            marker={"size": 12, "color": PALETTE[i % len(PALETTE)], "line": {"width": 1, "color": "#111"},
                    "symbol": ["circle-open" if survivors_only(r) else "circle" for r in pts]},
            customdata=[r["key"] for r in pts],
            text=[f"{r['key']}<br>{score_text(r)} ({r['finished']}/{r['seeds']} seeds)<br>"
                  + (f"not on the front: {r['failed']} failed, {r['stopped']} stopped; mean of the seeds left<br>"
                     if survivors_only(r) else "")
                  + "runs " + " ".join(f"#{i}" for i in r["run_ids"]) for r in pts],
            hovertemplate="%{text}<extra></extra>"))
    on_front = sorted((r for r in shown if r["key"] in set(front_keys)), key=lambda r: r[axis])
    if len(on_front) > 1:
        fig.add_trace(go.Scatter(x=[r[axis] for r in on_front], y=[r["mean"] for r in on_front], mode="lines",
                                 name="Pareto front", line={"dash": "dot", "color": "#555"}, hoverinfo="skip"))
    left_out = len(rows) - len(shown)
    partial = sum(1 for r in shown if survivors_only(r))
    metric = rows[0]["metric"] if rows else "accuracy"
    optimistic = chose_checkpoints(shown)
    title = f"{metric} against {label}" + \
        (f" ({left_out} configurations without a finished seed not shown)" if left_out else "") + \
        (f" · {partial} hollow: failed or stopped seeds, mean of the rest, not on the front" if partial else "") + \
        " · click a point for its runs" + \
        (f"<br>final dev {metric} on the {OPTIMISTIC}, not held out" if optimistic else "")
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=380,
                      margin={"l": 50, "r": 20, "t": 70 if optimistic else 50, "b": 45}, xaxis_title=label,
                      yaxis_title=f"dev {metric}{', optimistic' if optimistic else ''} (mean ± std)",
                      clickmode="event", hovermode="closest", legend={"orientation": "h", "y": -0.2})
    if axis == "trainable" and shown and min(r[axis] for r in shown) > 0:
        fig.update_xaxes(type="log")
    return fig
