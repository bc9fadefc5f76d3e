"""Plotly figures: length histogram, label distribution, confusion matrix, training curves."""
from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

_LAYOUT = dict(margin=dict(l=40, r=10, t=30, b=40), height=260, template="plotly_white")


def length_histogram(lengths: Sequence[int], max_length: int, full_lengths: Sequence[int] = ()) -> go.Figure:
    """Encoded lengths before truncation, with the max-length line: what is right of it gets cut."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=list(full_lengths or lengths), name="length before truncation",
                               marker_color="#6b8fd6", nbinsx=40))
    fig.add_vline(x=max_length, line_color="#d33", line_dash="dash", annotation_text=f"max {max_length}")
    fig.update_layout(**_LAYOUT, xaxis_title="tokens", yaxis_title="examples", showlegend=False)
    return fig


def label_distribution(counts: dict[str, int]) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color="#6b8fd6"))
    fig.update_layout(**_LAYOUT, xaxis_title="label", yaxis_title="examples")
    return fig


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> go.Figure:
    """Rows are gold classes, columns predictions; click a cell to list its examples."""
    names = [str(c) for c in classes]
    fig = go.Figure(go.Heatmap(z=[list(r) for r in matrix], x=names, y=names, colorscale="Blues",
                               text=[[str(v) for v in r] for r in matrix], texttemplate="%{text}",
                               hovertemplate="gold %{y} → predicted %{x}: %{z}<extra>click to list</extra>"))
    fig.update_layout(**{**_LAYOUT, "height": 120 + 40 * len(names)}, xaxis_title="predicted",
                      yaxis_title="gold", yaxis_autorange="reversed")
    return fig


LOSS_COLOR, LOSS_RAW_COLOR = "#2b5cb8", "#9db4e0"
# Each dev metric its own colour, dash and marker, so two metrics on the same values stay both visible.
METRIC_STYLES = {"accuracy": ("#1b9e77", "solid", "circle"), "macro_f1": ("#d95f02", "dash", "diamond-open")}
OTHER_STYLES = [("#7570b3", "dot", "square-open"), ("#e7298a", "dashdot", "triangle-up-open"),
                ("#66a61e", "longdash", "x")]
RUN_COLORS = ["#2b5cb8", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666"]
DEFAULT_SMOOTHING = 0.8
Points = Sequence[tuple[int, float]]


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average, the first value as the start (TensorBoard's smoothing): a noisy loss
    reads as a trend. ``weight`` 0 returns the values; a non-finite value keeps the previous average."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out: list[float] = []
    last: float | None = None
    for v in values:
        v = float(v)
        if math.isfinite(v):
            last = v if last is None else weight * last + (1.0 - weight) * v
        out.append(last if last is not None else v)
    return out


def as_smoothing(value: object) -> float:
    """A smoothing weight from a slider or the HTTP API: anything not a number in [0, 0.95] becomes the
    default (a garbage value from a client must not break the chart it only decorates)."""
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_SMOOTHING
    return weight if 0.0 <= weight <= 0.95 else DEFAULT_SMOOTHING


def best_point(points: Points) -> tuple[int, float] | None:
    """The (step, value) the trainer keeps as best: the highest value, the earliest step on a tie
    (backend.training.loop keeps a new best only when it is strictly higher)."""
    best: tuple[int, float] | None = None
    for step, value in points:
        if math.isfinite(value) and (best is None or value > best[1]):
            best = (int(step), float(value))
    return best


def _is_loss(key: str) -> bool:
    return "loss" in key


def _metric_style(key: str, others: dict[str, tuple[str, str, str]]) -> tuple[str, str, str]:
    short = key.split("/", 1)[-1]
    if short in METRIC_STYLES:
        return METRIC_STYLES[short]
    return others.setdefault(key, OTHER_STYLES[len(others) % len(OTHER_STYLES)])


def curves(series: dict[str, dict[str, list[tuple[int, float]]]], keys: Sequence[str] | None = None,
           title: str = "", smoothing: float = DEFAULT_SMOOTHING, best_key: str = "eval/accuracy") -> go.Figure:
    """Training curves of one or more runs, ``{run_label: {metric_key: [(step, value), ...]}}``.

    Two panels sharing the step axis, because a loss (unbounded, falling) and dev metrics (0..1, rising)
    on one axis squash each other: top, the loss, raw and faint with its moving average on top; bottom,
    the dev metrics, each with its own colour, dash and marker so equal values never hide one another.
    The best ``best_key`` evaluation (the checkpoint the trainer keeps) is marked with its step and value.
    With several runs the colour is the run's and the dash / marker the metric's. ``keys=None`` draws the
    losses and the ``eval/`` metrics (not learning rate, speed or ETA, which would flatten the 0..1 scale).
    """
    chosen = [(run, key, pts) for run, by_key in series.items() for key, pts in by_key.items()
              if pts and (key in keys if keys is not None else _is_loss(key) or key.startswith("eval/"))]
    lower = [k for _, k, _ in chosen if not _is_loss(k)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("training loss" + (f" (moving average {smoothing:g})" if smoothing else ""),
                                        "dev metrics" if all(k.startswith("eval/") for k in lower) else "metrics"))
    several = len(series) > 1
    others: dict[str, tuple[str, str, str]] = {}
    for run, key, pts in chosen:
        xs, ys = [int(p[0]) for p in pts], [float(p[1]) for p in pts]
        run_color = RUN_COLORS[list(series).index(run) % len(RUN_COLORS)]
        name = f"{run} {key}" if several else key
        if _is_loss(key):
            raw_color = run_color if several else LOSS_RAW_COLOR
            fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines", opacity=0.5 if smoothing else 1.0,
                                     line=dict(color=raw_color, width=1), legendgroup=name,
                                     hovertemplate="step %{x}: %{y:.4f}<extra>" + name + "</extra>"), row=1, col=1)
            if smoothing:
                fig.add_trace(go.Scatter(x=xs, y=ema(ys, smoothing), name=f"{name} (smoothed)", mode="lines",
                                         line=dict(color=run_color if several else LOSS_COLOR, width=2.5),
                                         legendgroup=name, hovertemplate="step %{x}: %{y:.4f}<extra>smoothed</extra>"),
                              row=1, col=1)
            continue
        color, dash, symbol = _metric_style(key, others)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines+markers",
                                 line=dict(color=run_color if several else color, dash=dash, width=2),
                                 marker=dict(symbol=symbol, size=8 if len(xs) < 40 else 5),
                                 hovertemplate="step %{x}: %{y:.4f}<extra>" + name + "</extra>"), row=2, col=1)
        if key == best_key:
            _mark_best(fig, best_point(list(zip(xs, ys))), key, run_color if several else color, one_run=not several)
    _style_axes(fig, [p for _, k, pts in chosen if not _is_loss(k) for p in pts])
    steps = [int(p[0]) for _, _, pts in chosen for p in pts]
    for row, present, note in ((1, any(_is_loss(k) for _, k, _ in chosen), "no training loss yet"),
                               (2, any(not _is_loss(k) for _, k, _ in chosen), "no dev evaluation yet")):
        if not present:   # an invisible trace keeps the empty panel's axes drawn, so the layout never jumps
            fig.add_trace(go.Scatter(x=[min(steps, default=0), max(steps, default=1)], y=[0, 1], mode="markers",
                                     marker=dict(opacity=0), showlegend=False, hoverinfo="skip"), row=row, col=1)
            fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="x domain", yref="y domain",
                               font=dict(color="#888"), row=row, col=1)
    fig.update_layout(**{**_LAYOUT, "height": 480, "margin": dict(l=50, r=20, t=50, b=60)}, title=title or None,
                      legend=dict(orientation="h", y=-0.2, yanchor="top"), hovermode="x unified")
    return fig


def _mark_best(fig: go.Figure, best: tuple[int, float] | None, key: str, color: str, one_run: bool) -> None:
    """A star on the best evaluation, and for a single run a dotted line at its step through both panels."""
    if best is None:
        return
    step, value = best
    label = f"best {key.split('/', 1)[-1]} {value:.3f} at step {step}"
    fig.add_trace(go.Scatter(x=[step], y=[value], name=label, mode="markers",
                             marker=dict(symbol="star", size=16, color=color, line=dict(color="#222", width=1)),
                             hovertemplate=label + "<extra></extra>"), row=2, col=1)
    if one_run:
        fig.add_annotation(x=step, y=value, text=f"best {value:.3f} @ {step}", showarrow=True, arrowhead=0, ax=0,
                           ay=-26, bgcolor="rgba(255,255,255,0.85)", font=dict(size=11), row=2, col=1)
        for row in (1, 2):
            fig.add_vline(x=step, line_color="#888", line_dash="dot", line_width=1, row=row, col=1)


def _style_axes(fig: go.Figure, metric_points: Points) -> None:
    """Step axis on both panels; the metric axis 0..1 when every value is a proportion (accuracy, F1)."""
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    values = [v for _, v in metric_points if math.isfinite(v)]
    if values and all(0.0 <= v <= 1.0 for v in values):
        fig.update_yaxes(range=[-0.03, 1.03], row=2, col=1)
    fig.update_yaxes(title_text="value", row=2, col=1)


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(**_LAYOUT, xaxis_visible=False, yaxis_visible=False)
    return fig
