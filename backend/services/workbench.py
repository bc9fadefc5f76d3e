"""The studio's prompt comparison: every chosen template x label-word set scored on the same dev rows,
recorded as a group of runs, and the rows where two of them disagree."""
from __future__ import annotations

from typing import Any, Sequence

from backend.services.context import StudioContext
from backend.services.results import service, user_error

MAX_PROMPTS = 12      # per side: a comparison answers within a request, so it stays small


@service("compare")
def compare(ctx: StudioContext, *, templates: Sequence[str], label_words: Sequence[str],
            selection: dict[str, Any], max_length: Any = 256, truncate: str = "tail", baseline: int = 0,
            limit: int | None = None) -> dict[str, Any]:
    """Score ``templates`` x ``label_words`` (editor texts) on the selection's dev rows; record the group."""
    from backend.pipeline import Split, settings_for
    from backend.services import runconfig
    from backend.services.data import confine_config, label_names, split_summary
    from backend.services.evaluate import eval_examples
    from backend.services.versions import parse_label_words
    from backend.workbench.compare import Prompt, compare_prompts
    from backend.workbench.record import record_comparison

    templates = [t for t in templates if isinstance(t, str) and t.strip()]
    label_words = [w for w in label_words if isinstance(w, str) and w.strip()]
    if not templates or not label_words:
        return user_error("pick at least one template and one set of label words to compare", "compare")
    if len(templates) > MAX_PROMPTS or len(label_words) > MAX_PROMPTS:
        return user_error(f"compare at most {MAX_PROMPTS} templates and {MAX_PROMPTS} label-word sets at a time",
                          "compare")
    if not 0 <= int(baseline) < len(templates) * len(label_words):
        return user_error(f"the baseline must be one of the {len(templates) * len(label_words)} combinations",
                          "baseline")
    cfg = runconfig.build(ctx, template=templates[0], label_words=label_words[0], selection=selection,
                          max_length=max_length, truncate=truncate, eval_limit=limit, tags=["compare"])
    confine_config(ctx, cfg)
    dev = eval_examples(ctx, cfg)
    classes = label_names(ctx, selection)
    loaded = ctx.model.get()
    t_prompts = [Prompt(f"T{i + 1}", t) for i, t in enumerate(templates)]
    v_prompts = [Prompt(f"V{i + 1}", parse_label_words(w)) for i, w in enumerate(label_words)]
    with ctx.model.lock:
        cmp = compare_prompts(loaded, t_prompts, v_prompts, dev, classes,
                              settings=settings_for(cfg, loaded.kind), batch_size=cfg.eval.batch_size)
    summary = split_summary(ctx, selection)   # the same description every other run of this data records
    split = Split(examples=dev, label_names=classes, fingerprint="", source=str(cfg.data.eval), columns={},
                  how=summary["how"] if summary else "",
                  counts={k: summary[k] for k in ("train", "dev")} if summary else {})
    rec = record_comparison(ctx.store, cfg, loaded, cmp, t_prompts, v_prompts, split, baseline=int(baseline),
                            project=ctx.project)
    rows = []
    for i, (u, c) in enumerate(zip(cmp.table(baseline=int(baseline)), cmp.table(baseline=int(baseline),
                                                                                  calibrated=True))):
        rows.append({"run_id": rec["run_ids"][i], "template": u["template"], "label_words": u["verbalizer"],
                     "uncalibrated": u, "calibrated": c})
    return {"group": rec["group"], "rows": rows, "n": len(dev), "baseline": int(baseline),
            "templates": {p.name: p.content for p in t_prompts}, "label_words": dict(
                (f"V{i + 1}", w) for i, w in enumerate(label_words)), "forwards": cmp.forwards,
            "seconds": cmp.seconds}


@service("compare")
def flips(ctx: StudioContext, run_a: int, run_b: int, limit: int = 50) -> dict[str, Any]:
    """The rows where exactly one of two runs is right, with both runs' class probabilities. Both runs
    must have scored the same rows (same guids and gold labels, in the same order)."""
    a, b = ctx.store.get_predictions(int(run_a)), ctx.store.get_predictions(int(run_b))
    if not a or not b:
        return user_error("both runs need stored predictions (pick two finished evaluations)", "flips")
    key_a = [(p.get("guid"), str(p["gold"])) for p in a]
    if key_a != [(p.get("guid"), str(p["gold"])) for p in b]:
        return user_error(f"runs {run_a} and {run_b} were not scored on the same rows: their flips mean nothing",
                          "flips")
    out: dict[str, list[dict[str, Any]]] = {"a_right": [], "b_right": []}
    for pa, pb in zip(a, b):
        ok_a, ok_b = str(pa["predicted"]) == str(pa["gold"]), str(pb["predicted"]) == str(pb["gold"])
        if ok_a != ok_b:
            out["a_right" if ok_a else "b_right"].append(
                {"index": pa["index"], "guid": pa.get("guid"), "gold": pa["gold"], "a": pa["probs"], "b": pb["probs"]})
    return {"run_a": int(run_a), "run_b": int(run_b), "n": len(a),
            "a_right": out["a_right"][:int(limit)], "b_right": out["b_right"][:int(limit)],
            "counts": {"a_right": len(out["a_right"]), "b_right": len(out["b_right"])}}



DRAFT = "the editor's draft"


@service("compare")
def saved_prompts(ctx: StudioContext) -> dict[str, Any]:
    """Every saved template and label-word version, by a label the picker shows (``name vN [aliases]``),
    with its editor text; the editors' drafts are offered under ``DRAFT``."""
    from backend.services.versions import label_words_text

    out: dict[str, dict[str, str]] = {"template": {}, "verbalizer": {}}
    for kind in out:
        for name in ctx.store.list_names(kind):
            for v in ctx.store.list_versions(kind, name):
                alias = f" [{', '.join(v.aliases)}]" if v.aliases else ""
                text = v.content if kind == "template" else label_words_text(v.content)
                out[kind][f"{name} v{v.number}{alias}"] = text
    return {"templates": out["template"], "label_words": out["verbalizer"]}


def resolve(picked: Sequence[str], saved: dict[str, str], draft: str) -> list[str]:
    """The editor texts behind the picker's labels, in the order picked (an unknown label is skipped:
    a version deleted since the picker was drawn)."""
    return [draft if p == DRAFT else saved[p] for p in picked if p == DRAFT or p in saved]
