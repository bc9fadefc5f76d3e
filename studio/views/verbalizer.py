"""Coverage table, probe results and suggested label words."""
from __future__ import annotations

from html import escape
from typing import Any, Sequence

from studio.views.messages import info_html
from studio.views.tables import html_table, prob_bars
from studio.views.tokens import readable


def coverage_html(res: dict[str, Any]) -> str:
    rows = []
    for r in res["rows"]:
        flags = []
        if r["n_subtokens"] > 1:
            flags.append(f"{r['n_subtokens']} sub-tokens")
        if r["unknown"]:
            flags.append("unknown token")
        if r["collides_with"]:
            flags.append("first token shared with " + ", ".join(r["collides_with"]))
        rows.append([r["class"], r["word"], " ".join(readable(t) for t in r["tokens"]),
                     " ".join(map(str, r["token_ids"])), "; ".join(flags) or "ok"])
    summary = (f"<div class='ps-msg ps-{'warning' if res['problems'] else 'ok'}'>"
               f"{res['problems']} of {len(res['rows'])} label words need attention</div>")
    return summary + html_table(["class", "word", "tokens", "ids", "check"], rows, "ps-coverage")


def probe_html(res: dict[str, Any]) -> str:
    parts = []
    for ex in res["examples"]:
        top = " ".join(f"<span class='ps-chip' title='id {t['id']}'>{escape(readable(t['token']))} "
                       f"<small>{t['prob']:.2g}</small></span>" for t in ex["top_k"])
        words = html_table(["class", "label word", "p(word at mask)"],
                           [[w["class"], w["word"], w["prob"]] for w in ex["label_words"]])
        gold = None if ex["gold"] is None else str(ex["gold"])
        parts.append(f"<div class='ps-example'><div class='ps-ex-head'>Row {ex['row']} · gold "
                     f"<b>{escape(str(gold))}</b> · {escape(str(ex['text'])[:160])}</div>"
                     f"<div>Top tokens at the mask:</div><div class='ps-chips'>{top}</div>"
                     f"<div style='display:flex;gap:16px'>{words}{prob_bars(ex['class_probs'], gold)}</div></div>")
    return "".join(parts)


def suggestions_text(suggestions: dict[str, Sequence[str]]) -> str:
    return "\n".join(f"{c}: {', '.join(ws)}" for c, ws in suggestions.items() if ws)


def suggestions_note(res: dict[str, Any]) -> str:
    """Which probed rows the suggestions were mined from; empty when every labelled row was used."""
    left = int(res.get("left_out") or 0)
    if not left:
        return ""
    used = int(res.get("mined_from") or 0)
    rows = "row is" if left == 1 else "rows are"
    labels = "its label was" if left == 1 else "their labels were"
    why = (f"{left} probed {rows} scored by the Evaluate tab, so {labels} not used for the suggestions "
           "(words picked by looking at a row's label make its score optimistic)")
    then = f"; suggestions from the other {used}." if used else \
        ": probe training rows (set a dev fraction on the Data tab, or pick the training split) to get suggestions."
    return info_html(why + then)
