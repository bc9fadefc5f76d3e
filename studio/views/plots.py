"""Plotly figures: length histogram, label distribution, confusion matrix, training curves."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

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


def curves(series: dict[str, dict[str, list[tuple[int, float]]]], keys: Sequence[str] | None = None,
           title: str = "") -> go.Figure:
    """Metric curves: ``{run_label: {metric_key: [(step, value), ...]}}`` overlaid on one chart."""
    fig = go.Figure()
    for run, by_key in series.items():
        for key, points in by_key.items():
            if keys is not None and key not in keys:
                continue
            if not points:
                continue
            xs, ys = zip(*points)
            fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines+markers" if len(xs) < 30 else "lines",
                                     name=f"{run} {key}" if len(series) > 1 else key))
    fig.update_layout(**_LAYOUT, xaxis_title="step", title=title or None,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(**_LAYOUT, xaxis_visible=False, yaxis_visible=False)
    return fig
