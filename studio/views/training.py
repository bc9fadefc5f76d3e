"""Train tab renderers: the cost card, the progress bar with ETA, the log, the queue."""
from __future__ import annotations

from html import escape
from typing import Any

from studio.views.tables import html_table, kv_card, when


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def cost_card(res: dict[str, Any]) -> str:
    items = [("trainable parameters", f"{res['trainable']:,} of {res['total']:,} ({res['percent']:.3f}%)"),
             ("training examples", res["train_examples"]), ("dev examples", res["dev_examples"]),
             ("tokens per epoch", f"{res['tokens_per_epoch']:,}"),
             ("steps", f"{res['steps']} (~{res['epochs']:.1f} epochs, batch {res['batch_size']}, lr {res['lr']:g})"),
             ("estimated time", f"{duration(res['estimated_s'])} on {res['device']}"),
             ("training steps", duration(res.get("train_s"))
              + (f" at {res['tokens_per_s']:.0f} tokens/s ({res['speed_source']})" if res["tokens_per_s"] else "")),
             ("evaluations", _evaluations(res)),
             ("writing weights", _writes(res)),
             ("start and finish", _start(res))]
    return kv_card(items, "Cost before starting")


def _writes(res: dict[str, Any]) -> str:
    """Checkpoints and best weights: nothing for a soft prompt, a large share of a full fine-tuning."""
    if res.get("saving_s") is None:
        return "not priced"
    took = duration(res["saving_s"]) if res["saving_s"] >= 0.5 else "under a second"
    return (f"{took} (checkpoints, best and final weights: {res.get('writes', 0)} writes of the trained "
            f"weights at most; {res.get('saving_source', '')})")


def _start(res: dict[str, Any]) -> str:
    """The run's process starting, loading the model and recording its outputs, learnt from earlier runs."""
    server = "; this run also starts the studio's job server (imports torch once), not priced" \
        if res.get("starts_job_server") else ""
    if res.get("start_s") is None:
        return "not priced yet (no earlier run of this model here; one run teaches it)" + server
    return f"{duration(res['start_s'])} (as {res['start_source']}){server}"


def _evaluations(res: dict[str, Any]) -> str:
    """What the dev evaluations add: a run on a few examples can spend as long evaluating as training."""
    if not res.get("eval_rows"):
        return "none"
    n = res.get("evaluations") or 0
    what = (f"{n} during training + the final one" if n else "the final one") + f", {res['eval_rows']:,} rows in all"
    return f"{duration(res.get('eval_s'))} ({what})"


def progress_html(res: dict[str, Any]) -> str:
    pct = int(round(100 * res["fraction"]))
    status = res["status"]
    bits = [f"Run #{res['run_id']} · {escape(res['method'])} · <b data-status='{escape(status)}' "
            f"id='ps-train-status'>{escape(status)}</b>"]
    if res["total_steps"]:
        bits.append(f"step {res['step']}/{res['total_steps']}")
    if res.get("loss") is not None:
        bits.append(f"loss {res['loss']:.4f}")
    if res.get("eta_s") is not None:
        bits.append(f"ETA {duration(res['eta_s'])}")
    if res.get("tokens_per_s"):
        bits.append(f"{res['tokens_per_s']:.0f} tokens/s")
    final = res.get("final") or {}
    if "accuracy" in final:
        bits.append(f"final accuracy {final['accuracy']:.4f}"
                    + (f" (95% CI {final['accuracy_ci_low']:.4f}-{final['accuracy_ci_high']:.4f})"
                       if "accuracy_ci_low" in final and "accuracy_ci_high" in final else "")
                    + (f" on the dev rows that chose its checkpoint (best of {int(final['chosen_among'])} "
                       "evaluations: optimistic)" if final.get("chosen_among") else ""))
    bar = f"<div class='ps-progress'><div style='width:{pct}%'></div></div>"
    err = f"<div class='ps-msg ps-error'>{escape(res['run_error'])}</div>" if res.get("run_error") else ""
    return f"<div class='ps-card' id='ps-train-card'>{' · '.join(bits)}{bar}{err}</div>"


def log_html(res: dict[str, Any]) -> str:
    return "<pre class='ps-marked' id='ps-train-log-text'>" + escape("\n".join(res["log"])) + "</pre>"


def queue_html(res: dict[str, Any]) -> str:
    if not res["runs"]:
        return "<div class='ps-msg ps-info'>The queue is empty.</div>"
    return html_table(["run", "status", "method", "name", "queued at"],
                      [[f"#{r['id']}", r["status"], r["method"], r["name"] or "", when(r["created_at"])]
                       for r in res["runs"]], "ps-queue")
