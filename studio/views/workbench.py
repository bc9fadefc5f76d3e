"""Renderers of the prompt comparison: the table rows and the rows where two runs disagree."""
from __future__ import annotations

from html import escape
from typing import Any

COMPARE_HEADERS = ["#", "run", "template", "label words", "accuracy [95% CI]", "macro-F1 [95% CI]",
                   "calibrated accuracy [95% CI]", "vs baseline: only it / only baseline right, p"]


def _ci(value: float, ci: list[float] | tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}–{ci[1]:.3f}]"


def _vs(test: dict[str, Any] | None) -> str:
    return "baseline" if test is None else f"{test['only_a']} / {test['only_b']}, p={test['p_value']:.3g}"


def compare_rows(res: dict[str, Any]) -> list[list[Any]]:
    """One table row per combination, in the order compared (the table sorts by any column)."""
    rows = []
    for i, r in enumerate(res["rows"]):
        u, c = r["uncalibrated"], r["calibrated"]
        rows.append([i + 1, r["run_id"], f"{r['template']}: {res['templates'][r['template']]}",
                     f"{r['label_words']}: {res['label_words'][r['label_words']]}",
                     _ci(u["accuracy"], u["accuracy_ci"]), _ci(u["macro_f1"], u["macro_f1_ci"]),
                     _ci(c["accuracy"], c["accuracy_ci"]), _vs(u["vs_baseline"])])
    return rows


def _probs(p: dict[str, Any]) -> str:
    return ", ".join(f"{escape(str(k))} {float(v):.2f}" for k, v in p.items())


def flips_html(res: dict[str, Any]) -> str:
    """Both sides of a disagreement: the rows only A gets right and the rows only B gets right."""
    parts = [f"<div class='ps-flips'><p>Of {res['n']} rows, only run {res['run_a']} is right on "
             f"{res['counts']['a_right']}, only run {res['run_b']} on {res['counts']['b_right']}.</p>"]
    for key, who in (("a_right", res["run_a"]), ("b_right", res["run_b"])):
        if not res[key]:
            continue
        parts.append(f"<h4>Only run {who} right</h4><table class='ps-flip-table'><tr><th>row</th><th>gold</th>"
                     f"<th>run {res['run_a']}</th><th>run {res['run_b']}</th></tr>")
        parts += [f"<tr><td>{r['index']}</td><td>{escape(str(r['gold']))}</td><td>{_probs(r['a'])}</td>"
                  f"<td>{_probs(r['b'])}</td></tr>" for r in res[key]]
        parts.append("</table>")
    return "".join(parts) + "</div>"
