"""Token chips and the wrapped-segments table of the template preview."""
from __future__ import annotations

from html import escape
from typing import Any, Sequence

from studio.views.messages import error_html

# Byte-level BPE and SentencePiece markers shown as visible whitespace.
_VISIBLE = {"Ġ": "␣", "▁": "␣", "Ċ": "↵", "ĉ": "⇥"}


def readable(token: str) -> str:
    for raw, shown in _VISIBLE.items():
        token = token.replace(raw, shown)
    return token


def chip_classes(t: dict[str, Any]) -> list[str]:
    classes = ["ps-chip"]
    for key, cls in (("special", "special"), ("mask", "mask"), ("truncated", "trunc"), ("read", "read")):
        if t.get(key):
            classes.append(f"ps-{cls}")
    if t.get("soft"):
        classes.append("ps-soft")
    if t.get("loss") == 1:
        classes.append("ps-loss")
    if t.get("demo", -1) >= 0:
        classes.append("ps-demo")
    return classes


def chip_title(t: dict[str, Any]) -> str:
    bits = [f"id {t['id']}"]
    if t.get("soft"):
        bits.append(f"soft token {t['soft']}")
    if t.get("special"):
        bits.append("special (added by the tokenizer)")
    if t.get("mask"):
        bits.append("mask: the label is read here")
    if t.get("read"):
        bits.append("the label is predicted right after this token")
    if t.get("demo", -1) >= 0:
        bits.append(f"demonstration {t['demo'] + 1}")
    if t.get("truncated"):
        bits.append("dropped: the demonstration did not fit max length" if t.get("demo", -1) >= 0
                    else "truncated: cut to fit max length")
    if t.get("piece", -1) >= 0:
        bits.append(f"segment {t['piece']}")
    return " · ".join(bits)


def chips_html(tokens: Sequence[dict[str, Any]]) -> str:
    chips = "".join(f"<span class='{' '.join(chip_classes(t))}' title='{escape(chip_title(t), quote=True)}' "
                    f"data-id='{t['id']}'>{escape(readable(str(t['text'])))}</span>" for t in tokens)
    return f"<div class='ps-chips'>{chips}</div>"


def segments_table_html(pieces: Sequence[dict[str, Any]]) -> str:
    head = "<tr><th>#</th><th>kind</th><th>text</th><th>loss_ids</th><th>shortenable_ids</th>" \
           "<th>soft_token_ids</th></tr>"
    rows = "".join(
        f"<tr class='ps-seg-{escape(p['kind'])}'><td>{i}</td><td>{escape(p['kind'])}</td>"
        f"<td class='ps-seg-text'>{escape(repr(p['text']) if p['text'] is not None else 'None')}</td>"
        f"<td>{p['loss_ids']}</td><td>{p['shortenable_ids']}</td><td>{p['soft_token_ids']}</td></tr>"
        for i, p in enumerate(pieces))
    return f"<table class='ps-table ps-segments'>{head}{rows}</table>"


LEGEND = ("<div class='ps-legend'>Tokens: <span class='ps-chip'>text</span>"
          "<span class='ps-chip ps-special'>special</span><span class='ps-chip ps-mask ps-loss'>mask</span>"
          "<span class='ps-chip ps-soft'>soft</span><span class='ps-chip ps-read'>label read after</span>"
          "<span class='ps-chip ps-trunc'>truncated</span><span class='ps-chip ps-demo'>demonstration</span>"
          " · hover a token for its id</div>")


def example_html(ex: dict[str, Any], loading_message: str = "") -> str:
    label = f" · label <b>{escape(str(ex['label']))}</b>" if ex.get("label") is not None else ""
    head = f"<div class='ps-ex-head'>Row {ex['row']}{label}"
    if ex.get("length") is not None:
        head += f" · {ex['length']} tokens"
        if ex.get("n_truncated"):
            head += f" · <span class='ps-warning'>{ex['n_truncated']} truncated</span>"
    head += demos_note(ex) + "</div>"
    parts = [head]
    if ex.get("error"):
        parts.append(error_html(ex["error"]))
    if ex.get("tokens") is not None:
        parts.append(chips_html(ex["tokens"]))
    elif not ex.get("error") and loading_message:
        parts.append(f"<div class='ps-msg ps-info'>tokens: {escape(loading_message)}</div>")
    parts.extend(f"<div class='ps-msg ps-warning'>{escape(w)}</div>" for w in ex.get("warnings", []))
    if ex.get("pieces"):
        parts.append(f"<details><summary>wrapped segments</summary>{segments_table_html(ex['pieces'])}</details>")
    return f"<div class='ps-example'>{''.join(parts)}</div>"


def demos_note(ex: dict[str, Any]) -> str:
    """Which demonstrations the example is shown with (training rows and the word shown), and which of
    them were dropped to fit max length."""
    demos = ex.get("demos") or []
    if not demos:
        return ""
    gone = set(ex.get("demos_dropped") or [])
    items = [f"{'<s>' if i in gone else ''}{escape(str(d.get('guid')))} → {escape(str(d.get('word')))}"
             f"{'</s>' if i in gone else ''}" for i, d in enumerate(demos)]
    note = f" · <span class='ps-demo-note'>{len(demos) - len(gone)} demonstration(s): {', '.join(items)}</span>"
    if gone:
        note += f" · <span class='ps-warning'>{len(gone)} dropped to fit max length</span>"
    return note


def preview_html(result: dict[str, Any]) -> str:
    """The whole preview pane for a ``services.preview.preview`` result (or nothing on a template error)."""
    if "error" in result:
        return "<div class='ps-msg ps-info'>Fix the template to see the preview.</div>"
    model = result.get("model", {})
    loading = model.get("message", "") if model.get("state") != "ready" else ""
    if not result["examples"]:
        return "<div class='ps-msg ps-info'>No examples to preview: load data on the Data tab.</div>"
    return LEGEND + "".join(example_html(ex, loading) for ex in result["examples"])
