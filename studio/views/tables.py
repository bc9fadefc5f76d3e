"""Small HTML tables and cards: version history, diffs, key/value cards, coverage, metrics."""
from __future__ import annotations

import datetime as _dt
from html import escape
from typing import Any, Sequence


def when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return ""
    return str(value)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{escape(fmt(c))}</td>" if isinstance(c, (int, float)) and not isinstance(c, bool)
        else f"<td>{escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='ps-table {escape(cls)}'><tr>{head}</tr>{body}</table>"


def versions_rows(versions: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[v["version"], v["message"], ", ".join(v["aliases"]), v["sha256"], when(v["created_at"])]
            for v in versions]


VERSION_HEADERS = ["version", "message", "aliases", "sha256", "saved"]


def diff_html(diff: str) -> str:
    if not diff:
        return "<div class='ps-msg ps-info'>No differences.</div>"
    lines = []
    for line in diff.splitlines():
        cls = "add" if line.startswith("+") and not line.startswith("+++") else \
            "del" if line.startswith("-") and not line.startswith("---") else ""
        lines.append(f"<div class='{cls}'>{escape(line) or '&nbsp;'}</div>")
    return f"<div class='ps-diff'>{''.join(lines)}</div>"


def kv_card(items: Sequence[tuple[str, Any]], title: str = "") -> str:
    rows = "".join(f"<div>{escape(k)}: <b>{escape(fmt(v))}</b></div>" for k, v in items)
    head = f"<div><b>{escape(title)}</b></div>" if title else ""
    return f"<div class='ps-card'>{head}{rows}</div>"


def prob_bars(probs: dict[str, float], gold: str | None = None, width: int = 160) -> str:
    """Class-probability bars (the gold class in green)."""
    rows = []
    for cls, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        bar = f"<span class='ps-bar{' gold' if cls == gold else ''}' style='width:{max(1, int(p * width))}px'>" \
              "</span>"
        rows.append(f"<tr><td>{escape(str(cls))}</td><td>{bar}</td><td class='num'>{p:.3f}</td></tr>")
    return f"<table class='ps-table ps-probs'>{''.join(rows)}</table>"
