"""Build the RunConfig for what the studio shows: the one contract shared with the CLI and the runner.

Every button that evaluates or trains goes through ``build``, so "copy as command" prints exactly what
the run executes, and a run started from the studio can be repeated with ``python -m backend``.
"""
from __future__ import annotations

import json
import shlex
from typing import Any

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.services.context import StudioContext
from backend.services.data import seed_of
from backend.services.versions import parse_label_words


def build(ctx: StudioContext, *, template: str, label_words: str, selection: dict[str, Any],
          max_length: Any = 256, truncate: str = "tail", name: str | None = None,
          eval_split: str | None = None, train_split: str | None = None, eval_limit: int | None = None,
          method: str = "zero-shot", options: dict[str, Any] | None = None,
          train: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None,
          label_names: list[str] | None = None, tags: list[str] | None = None) -> RunConfig:
    """A validated RunConfig (ConfigError / VerbalizerError name the offending field)."""
    try:
        max_len = int(max_length)
    except (TypeError, ValueError, OverflowError):   # OverflowError: int(float("inf")) from a number field
        raise ConfigError(f"max length must be a whole number, got {max_length!r}", field="max_length") from None
    source = (selection or {}).get("source")
    seed = seed_of(selection or {})   # the project's one seed: sampling, the split and training
    if not source:
        raise ConfigError("no data loaded: pick a dataset on the Data tab", field="data")
    # "" (an emptied split box) means the default split, as the Data tab reads it; a split is checked
    # by the schema as a plain name (never a path), wherever it came from
    data: dict[str, Any] = {"eval": source, "eval_split": eval_split or selection.get("split") or None,
                            "columns": selection.get("columns") or _guessed_columns(ctx, selection),
                            "label_names": label_names,
                            "limit": eval_limit, "seed": seed,
                            "dev_fraction": selection.get("dev_fraction")}   # the Data tab's train / dev split
    if method != "zero-shot":
        data.update(train=source, train_split=train_split or None, shots=selection.get("shots") or None)
    raw: dict[str, Any] = {
        "model": ctx.model.spec, "data": data, "template": template,
        "verbalizer": parse_label_words(label_words), "max_length": max_len, "truncate": truncate,
        "method": {"name": method, **(options or {})}, "name": name or ctx.project, "tags": tags or [],
        "project": ctx.project, "train": {"seed": seed, **(train or {})},
    }
    dtype = getattr(ctx.model, "dtype", "auto")
    if method == "zero-shot" and dtype != "auto":   # scored on the studio's model, in its dtype
        evaluation = {"dtype": dtype, **(evaluation or {})}
    if evaluation:
        raw["eval"] = evaluation
    return RunConfig.from_dict(raw)


def _guessed_columns(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """The mapping the Data tab guessed, written out, so the run's config says which column fed what (and
    repeats even if the guesser changes); {} when the data cannot be loaded (the run then says why)."""
    from backend.services.data import loaded

    try:
        m = loaded(ctx, selection).mapping
    except Exception:  # noqa: BLE001 - a loading error is reported by the run that needs the data
        return {}
    out: dict[str, Any] = {"text_a": m.text_a, "text_b": m.text_b, "label": m.label}
    if m.meta:
        out["meta"] = dict(m.meta)
    return out


def command(cfg: RunConfig, store_url: str | None = None) -> str:
    """The shell lines that run ``cfg`` from the CLI: write the config, then evaluate or train it."""
    verb = "eval" if cfg.method.name == "zero-shot" else "train"
    db = f" --db {shlex.quote(store_url)}" if store_url else ""
    body = json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False)
    return f"cat > run.json <<'JSON'\n{body}\nJSON\npython -m backend {verb} run.json{db}"
