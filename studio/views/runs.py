"""Runs tab renderers: the runs table, the comparison tables and one run's detail."""
from __future__ import annotations

import json
from html import escape
from typing import Any, Sequence

from studio.views.tables import fmt, html_table, kv_card, when

RUN_COLUMNS = ["id", "status", "method", "name", "accuracy", "macro_f1", "duration (s)", "created", "tags"]


def runs_frame_rows(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[r["id"], r["status"], r["method"], r["name"] or "", _num(r["accuracy"]), _num(r["macro_f1"]),
             _seconds(r["duration_s"]), when(r["created_at"]), ", ".join(r["tags"])] for r in rows]


def _num(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _seconds(v: float | None) -> float | None:
    """Tenths of a second: a run's duration is not known to the microsecond (still a number, so it sorts)."""
    return None if v is None else round(float(v), 1)


def config_diff_html(res: dict[str, Any]) -> str:
    ids = [f"#{i}" for i in res["runs"]]
    if not res["config_diff"]:
        return "<div class='ps-msg ps-info'>The configs are identical.</div>"
    rows = [[k] + [_cell(v) for v in values] for k, values in res["config_diff"].items()]
    return ("<div><b>Config differences</b> (only keys that differ; <code>lineage.*</code>: what the run computed "
            "on and with)</div>") + html_table(["key"] + ids, rows, "ps-config-diff")


def _cell(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)[:200]
    return fmt(v)


def metric_table_html(res: dict[str, Any]) -> str:
    ids = [f"#{i}" for i in res["runs"]]
    rows = [["status"] + list(res["status"])]
    rows += [[k] + [_num(v) if isinstance(v, (int, float)) else v for v in values]
             for k, values in res["metrics"].items()]
    return "<div><b>Metrics</b> (last value of each)</div>" + html_table(["metric"] + ids, rows, "ps-metric-table")


def detail_html(res: dict[str, Any]) -> str:
    r = res["run"]
    items = [("status", r["status"]), ("method", r["method"]), ("model", r["model"]), ("name", r["name"]),
             ("duration (s)", _seconds(r["duration_s"])), ("predictions stored", res["predictions"]),
             ("data", res.get("data", "")), ("computed on", res.get("computed_on", "")),
             ("made from", f"run #{r['parent']}" if r.get("parent") else "")]
    parts = [kv_card(items, f"Run #{r['id']}")]
    if res.get("run_error"):
        parts.append(f"<div class='ps-msg ps-error'>{escape(res['run_error'])}</div>")
    parts += [f"<div class='ps-msg ps-warning'>{escape(c)}</div>" for c in res.get("caveats") or []]
    for kind, v in res["versions"].items():
        parts.append(f"<div><b>{escape(kind)}</b> {escape(v['name'])} v{v['version']} "
                     f"<small>sha256 {escape(v['sha256'][:16])}</small></div>"
                     f"<pre class='ps-marked'>{escape(v['content'])}</pre>")
    if res["metrics"]:
        parts.append(html_table(["metric", "last value"], [[k, _num(v)] for k, v in sorted(res["metrics"].items())]))
    if res["artifacts"]:
        parts.append(html_table(["kind", "name", "size", "sha256"],
                                [[a["kind"], a["name"], a["size"], a["sha256"]] for a in res["artifacts"]],
                                "ps-artifacts"))
    if res.get("prediction_rows"):
        shown = res["prediction_rows"]
        parts.append(f"<div><b>Predictions</b> ({len(shown)} of {res['predictions']}; pick this run on the Evaluate "
                     "tab to click through its confusion matrix)</div>")
        parts.append(html_table(["example", "gold", "predicted", "confidence", ""],
                                [[p["index"], p["gold"], p["predicted"], _num(p["confidence"]),
                                  "" if p["correct"] else "wrong"] for p in shown], "ps-predictions"))
    if res["history"]:
        parts.append(html_table(["status", "at", "host", "note"],
                                [[h["status"], when(h["at"]), h["host"], h["note"] or ""] for h in res["history"]]))
    return "".join(parts)
