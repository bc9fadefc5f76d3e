"""Renderers of the prompt comparison: the table rows, the job's progress, the ensembles, the rows where
two runs disagree (with both token views of one of them), and the label-word search's candidates."""
from __future__ import annotations

from html import escape
from typing import Any, Callable

from backend.workbench.stats import holm
from studio.views.evaluation import NO_INTERVAL

COMPARE_HEADERS = ["#", "run", "template", "label words", "accuracy [95% CI]", "macro-F1 [95% CI]",
                   "calibrated accuracy [95% CI]", "calibrated macro-F1 [95% CI]",
                   "vs baseline: only it / only baseline right, p (uncorrected; Holm over the table)",
                   "calibrated vs baseline"]


def _ci(value: float, ci: list[float] | tuple[float, float] | None) -> str:
    """``0.950 [0.764–0.991]``; an interval of None (too few rows, or every row right) is said, not drawn
    as a zero-width one that would read as a certainty."""
    return f"{value:.3f} [{NO_INTERVAL}]" if ci is None else f"{value:.3f} [{ci[0]:.3f}–{ci[1]:.3f}]"


def _vs(test: dict[str, Any] | None, holm_p: float | None = None) -> str:
    """McNemar against the baseline. Its p is uncorrected: a table of hundreds of combinations shows a few
    p < 0.05 by chance, so it is labelled so, beside Holm's adjusted p over every test in the table."""
    if test is None:
        return "baseline"
    adjusted = "" if holm_p is None else f", Holm p={holm_p:.3g}"
    return f"{test['only_a']} / {test['only_b']}, p={test['p_value']:.3g} uncorrected{adjusted}"


def short(text: str, limit: int = 48) -> str:
    """One line of a prompt for a table cell (the whole text is one click away: "use as the current")."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def compare_rows(res: dict[str, Any]) -> list[list[Any]]:
    """One table row per combination, in the order compared (the table sorts by any column)."""
    rows = []
    tests = [r[side]["vs_baseline"] for r in res["rows"] for side in ("uncalibrated", "calibrated")]
    adjusted = iter(holm([None if t is None else t["p_value"] for t in tests]))
    for i, r in enumerate(res["rows"]):
        u, c = r["uncalibrated"], r["calibrated"]
        holm_u, holm_c = next(adjusted), next(adjusted)
        rows.append([i + 1, r["run_id"], f"{r['template']}: {short(res['templates'][r['template']])}",
                     f"{r['label_words']}: {short(res['label_words'][r['label_words']], 40)}",
                     _ci(u["accuracy"], u["accuracy_ci"]), _ci(u["macro_f1"], u["macro_f1_ci"]),
                     _ci(c["accuracy"], c["accuracy_ci"]), _ci(c["macro_f1"], c["macro_f1_ci"]),
                     _vs(u["vs_baseline"], holm_u), _vs(c["vs_baseline"], holm_c)])
    return rows


def job_line(job: dict[str, Any], title: str, elem_id: str, running: Callable[[int], str],
             ended: Callable[[], str]) -> str:
    """One line for a workbench job: queued; running (``running(percent)`` says how far, with a bar);
    cancelled; or how it ended (``ended()``, text already escaped)."""
    n, status = job["job"], job["status"]
    if status == "queued":
        return f"<div class='ps-msg ps-info' id='{elem_id}'>{title} #{n} is queued.</div>"
    if status == "running":
        pct = int(round(100 * job["fraction"]))
        return (f"<div class='ps-msg ps-info' id='{elem_id}'>{title} #{n} running: {running(pct)}"
                f"<progress max='100' value='{pct}' style='width:100%'></progress></div>")
    if status == "cancelled":
        return f"<div class='ps-msg ps-warning' id='{elem_id}'>{title} #{n} was cancelled.</div>"
    return f"<div class='ps-msg ps-ok' id='{elem_id}'>{title} #{n}: {ended()}</div>"


def progress_html(job: dict[str, Any]) -> str:
    """One line for a comparison job: queued / running with rows scored, or how it ended."""
    def ended() -> str:
        res = job["result"] or {}
        ids = [r["run_id"] for r in res.get("rows", [])]
        span = f"runs {ids[0]}–{ids[-1]}" if ids else "no runs"
        return (f"{len(ids)} combinations on {res.get('n', 0)} dev rows in {res.get('seconds', 0):.1f} s "
                f"({res.get('forwards', 0)} forward passes); recorded as {span}, tag "
                f"{escape(str(res.get('group', '')))}.")

    return job_line(job, "Comparison", "ps-cmp-progress",
                    lambda pct: f"{job['rows_scored']} / {job['rows_total'] or '?'} rows scored ({pct}%)", ended)


def ensembles_html(res: dict[str, Any]) -> str:
    """The ensembles fitted on the training rows, each a run (servable in the Playground)."""
    ens = (res or {}).get("ensembles") or []
    if not ens:
        return ""
    rows = "".join(f"<tr><td>#{e['run_id']}</td><td>{escape(e['kind'])}</td><td>{_ci(e['accuracy'], e['accuracy_ci'])}"
                   f"</td><td>{_ci(e['macro_f1'], e['macro_f1_ci'])}</td><td>{_weights(e)}</td></tr>" for e in ens)
    return (f"<div id='ps-cmp-ensembles-out'><h4>Ensembles (weights fitted on {ens[0]['train_rows']} training rows, "
            "calibrated, scored on the same dev rows)</h4><table class='ps-flip-table'><tr><th>run</th><th>kind</th>"
            f"<th>accuracy [95% CI]</th><th>macro-F1 [95% CI]</th><th>weights</th></tr>{rows}</table>"
            "<p>Each ensemble is a run: pick it in the Playground to try it on your own text.</p></div>")


def _weights(e: dict[str, Any]) -> str:
    if e["kind"] == "fitted":
        return f"logistic regression over the {len(e['members'])} members' class log-probs"
    total = sum(e["weights"]) or 1.0
    return ", ".join(f"{escape(m)} {w / total:.2f}" for m, w in zip(e["members"], e["weights"]))


def _probs(p: dict[str, Any]) -> str:
    return ", ".join(f"{escape(str(k))} {float(v):.2f}" for k, v in p.items())


def flips_html(res: dict[str, Any]) -> str:
    """Both sides of a disagreement: the rows only A gets right and the rows only B gets right."""
    parts = [f"<div class='ps-flips'><p>Of {res['n']} rows, only run {res['run_a']} is right on "
             f"{res['counts']['a_right']}, only run {res['run_b']} on {res['counts']['b_right']}. "
             "Give a row's number below to see both prompts' tokens for it.</p>"]
    for key, who in (("a_right", res["run_a"]), ("b_right", res["run_b"])):
        if not res[key]:
            continue
        parts.append(f"<h4>Only run {who} right</h4><table class='ps-flip-table'><tr><th>row</th><th>gold</th>"
                     f"<th>run {res['run_a']}</th><th>run {res['run_b']}</th></tr>")
        parts += [f"<tr class='ps-flip-row' data-row='{r['index']}'><td>{r['index']}</td><td>{escape(str(r['gold']))}"
                  f"</td><td>{_probs(r['a'])}</td><td>{_probs(r['b'])}</td></tr>" for r in res[key]]
        parts.append("</table>")
    return "".join(parts) + "</div>"


def flip_row_html(res: dict[str, Any], example_html: Any) -> str:
    """One row under both prompts: each run's token view (``example_html`` renders a preview example)
    and its class probabilities, side by side."""
    cards = []
    for side in ("a", "b"):
        s = res[side]
        cards.append(f"<div class='ps-card' style='flex:1;min-width:280px' id='ps-flip-{side}'><div><b>Run "
                     f"#{s['run_id']}</b> predicted <b>{escape(str(s['predicted']))}</b> ({_probs(s['probs'])})"
                     f"</div><pre style='white-space:pre-wrap'>{escape(s['template'])}</pre>"
                     f"{example_html(s['example'])}</div>")
    return (f"<div id='ps-flip-row'><p>Row {res['index']}, gold <b>{escape(str(res['gold']))}</b></p>"
            f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{''.join(cards)}</div></div>")


SEARCH_HEADERS = ["class", "word", "likelihood", "separation"]


def search_rows(res: dict[str, Any]) -> list[list[Any]]:
    """Every candidate per class with its scores (the chosen word first in each class)."""
    return [[c, x["word"], round(x["likelihood"], 4), round(x["separation"], 4)]
            for c, cands in res["candidates"].items() for x in cands]


def label_search_html(job: dict[str, Any]) -> str:
    """One line for a label-word search job: queued / running with training rows scored, or how it ended
    (on which training rows, and how well the best words do there)."""
    def ended() -> str:
        res = job["result"] or {}
        rows = f"{res['rows']} training rows" if res["rows"] >= res["of_rows"] else \
            f"a class-stratified sample of {res['rows']} of the {res['of_rows']} training rows"
        return (f"searched on {rows} in {res['seconds']:.1f} s; the best words score {res['train_accuracy']:.3f} "
                f"accuracy there ({res['assignments_tried']} assignments tried). Compare them on the dev rows "
                "before trusting them.")

    return job_line(job, "Label-word search", "ps-search-progress",
                    lambda pct: f"{job['rows_scored']} / {job['rows_total'] or '?'} training rows scored ({pct}%)",
                    ended)


TEMPLATE_SEARCH_HEADERS = ["rank", "family", "template", "accuracy", "rows scored", "last round"]


def search_progress_html(job: dict[str, Any]) -> str:
    """One line for a template-search job: queued / running with row forwards against its budget, or
    how it ended (its ranking message, and the comparison it queued)."""
    def running(pct: int) -> str:
        return (f"{job['forwards']} / at most {job['forwards_budget']} row forwards ({pct}%)"
                if job["forwards_budget"] else "writing candidates")

    def ended() -> str:
        cmp = job.get("comparison") or {}
        then = ""
        if cmp.get("job") is not None:
            best = len((job.get("result") or {}).get("best") or [])
            state = {"succeeded": "done", "cancelled": "cancelled"}.get(cmp.get("status"), cmp.get("status", "queued"))
            then = f" Comparison #{cmp['job']} of yours and the best {best}: {state}, above."
        elif "error" in cmp:
            then = " " + str(cmp["error"].get("message", ""))
        return escape(job.get("message", "") + then)

    return job_line(job, "Template search", "ps-tsearch-progress", running, ended)


def template_search_rows(res: dict[str, Any]) -> list[list[Any]]:
    """The searched templates best first; the accuracy is on the rows each was scored on (fewer for the
    ones dropped early), which the column beside it says."""
    return [[i + 1, r["family"], r["text"], round(float(r["accuracy"]), 4), r["rows"], r["round"]]
            for i, r in enumerate(res.get("ranking") or [])]


def _nearest(near: list[dict[str, Any]]) -> str:
    return ", ".join(f"{n['token']} ({n['cosine']:.2f})" for n in near)


def _bar(value: float, scale: float) -> str:
    width = 0 if scale <= 0 else min(100, int(round(100 * value / scale)))
    return (f"<span style='display:inline-block;width:80px;background:#eee'><span style='display:inline-block;"
            f"height:8px;width:{width}%;background:#6366f1'></span></span> {value:.3f}")


def inspect_html(res: dict[str, Any]) -> str:
    """Soft-prompt inspector: one card per run (side by side): each soft token's nearest vocabulary rows
    and drift from its start, and the drift at every evaluation of training."""
    cards = []
    for r in res["runs"]:
        scale = max([t["relative_change"] for t in r["tokens"]] +
                    [s["max_relative_change"] for s in r["trajectory"]] + [1e-12])
        toks = "".join(
            f"<tr><td>{t['index']}</td><td>{escape(_nearest(t['nearest']))}"
            f"</td><td>{escape(t['initial_nearest']['token'])}</td><td>{t['cosine_to_init']:.3f}</td>"
            f"<td>{_bar(t['relative_change'], scale)}</td></tr>" for t in r["tokens"])
        steps = "".join(f"<tr><td>{s['step']}</td><td>{_bar(s['mean_relative_change'], scale)}</td>"
                        f"<td>{s['max_relative_change']:.3f}</td><td>{s['mean_cosine_to_init']:.3f}</td></tr>"
                        for s in r["trajectory"])
        trajectory = (f"<h5>Drift over training</h5><table class='ps-flip-table ps-drift'><tr><th>step</th>"
                      f"<th>mean change</th><th>largest</th><th>mean cosine to start</th></tr>{steps}</table>"
                      if steps else "<p>No trajectory was recorded for this run (trained before it was kept, "
                                    "or without evaluations).</p>")
        cards.append(f"<div class='ps-card' style='flex:1;min-width:340px' id='ps-inspect-{r['run_id']}'>"
                     f"<div><b>Run #{r['run_id']}</b> {escape(r['method'])} {escape(r.get('name') or '')}: "
                     f"{r['soft_tokens']} soft tokens, start {escape(r['initialisation'])}</div>"
                     "<table class='ps-flip-table'><tr><th>#</th><th>nearest tokens (cosine)</th><th>started near</th>"
                     f"<th>cosine to start</th><th>relative change</th></tr>{toks}</table>{trajectory}</div>")
    return f"<div style='display:flex;gap:12px;flex-wrap:wrap' id='ps-inspect-cards'>{''.join(cards)}</div>"


def soft_ensemble_job_html(job: dict[str, Any]) -> str:
    """A soft-prompt ensemble job: queued / running with replicated rows scored, cancelled, or the
    recorded ensemble against its members."""
    if job["status"] == "succeeded" and job["result"]:
        return soft_ensemble_html(job["result"])
    return job_line(job, "Soft-prompt ensemble", "ps-softens-progress",
                    lambda pct: f"{job['rows_scored']} / {job['rows_total'] or '?'} rows scored, one per prompt "
                                f"and dev row ({pct}%)", lambda: "")


def soft_ensemble_html(res: dict[str, Any]) -> str:
    """The recorded soft-prompt ensemble against each of its members, on the same dev rows."""
    members = "".join(f"<tr><td>#{m['run_id']}</td><td>{m['accuracy']:.3f}</td></tr>" for m in res["members"])
    return (f"<div id='ps-softens-result'><p>Soft-prompt ensemble of {res['prompts']} prompts ({escape(res['combine'])}) "
            f"recorded as run <b>#{res['run_id']}</b>: accuracy {_ci(res['accuracy'], res['accuracy_ci'])}, "
            f"macro-F1 {res['macro_f1']:.3f} on {res['n']} dev rows (one batch, rows replicated per prompt). "
            "Pick it in the Playground to try it.</p><table class='ps-flip-table'><tr><th>member</th>"
            f"<th>accuracy alone</th></tr>{members}</table></div>")
