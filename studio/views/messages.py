"""Messages shown next to a field: errors, warnings, and the template with the exact span underlined."""
from __future__ import annotations

from html import escape
from typing import Any, Sequence


def error_html(result_or_error: dict[str, Any] | None, text: str | None = None) -> str:
    """An error box; when ``text`` and the error's span are known, the span is underlined in the text."""
    if not result_or_error:
        return ""
    err = result_or_error.get("error", result_or_error)
    if not isinstance(err, dict):
        err = {"message": str(err)}
    where = []
    if err.get("row") is not None:
        where.append(f"row {err['row']}")
    if err.get("column"):
        where.append(f"column {err['column']!r}")
    loc = f" <span class='ps-where'>({escape(', '.join(where))})</span>" if where else ""
    body = f"<div class='ps-msg ps-error' role='alert'>{escape(str(err.get('message', '')))}{loc}</div>"
    span = err.get("span")
    if text is not None and span:
        body = marked_text(text, [(span, "error", err.get("message", ""))]) + body
    return f"<div class='ps-feedback'>{body}</div>"


def marked_text(text: str, marks: Sequence[tuple[Sequence[int], str, str]]) -> str:
    """``text`` in a pre block with each (span, level, title) marked; overlapping marks are merged."""
    spans = sorted(((max(0, int(s[0])), min(len(text), int(s[1])), lvl, title) for s, lvl, title in marks),
                   key=lambda m: m[0])
    out, pos = [], 0
    for start, end, level, title in spans:
        if start < pos:
            continue
        out.append(escape(text[pos:start]))
        shown = text[start:end] or " "  # an empty span (end of text) still gets a visible caret
        out.append(f"<mark class='ps-mark ps-{level}' title='{escape(title, quote=True)}'>{escape(shown)}</mark>")
        pos = max(end, start)
    out.append(escape(text[pos:]))
    return f"<pre class='ps-marked'>{''.join(out)}</pre>"


def lint_html(lint: Sequence[dict[str, Any]], text: str) -> str:
    """Lint findings under the editor: the spans marked in the text, then one line per finding."""
    if not lint:
        return "<div class='ps-msg ps-ok'>Template OK</div>"
    marks = [(f["span"], f["level"], f["message"]) for f in lint if f.get("span")]
    lines = "".join(f"<div class='ps-msg ps-{escape(f['level'])}'>{escape(f['level'])}: "
                    f"{escape(f['message'])}</div>" for f in lint)
    return f"<div class='ps-feedback'>{marked_text(text, marks) if marks else ''}{lines}</div>"


def info_html(message: str, level: str = "info") -> str:
    return f"<div class='ps-msg ps-{escape(level)}'>{escape(message)}</div>" if message else ""
