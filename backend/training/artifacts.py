"""Trained outputs: safetensors only, plus the run config, so a run reloads to the same predictions.

Layout of ``<output_dir>/final``:
- ``run.json``         : the RunConfig, the method's resolved options, the compiled template text,
                         the verbalizer (classes + label words), model id / revision / kind.
- ``trainable.safetensors`` : every trained tensor by its PromptModel name (soft rows, the whole P-tuning
                         encoder, the soft verbalizer, adapters, biases, PEFT deltas): exact reload/resume.
- ``adapter/``         : methods with ``uses_peft``, PEFT's own adapter format (``PeftModel.from_pretrained``).
Reloading rebuilds the PromptModel with the method's ``reload_options`` and loads the tensors into it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from backend.errors import ConfigError
from backend.methods import get_method
from backend.methods.build import TunedModel, build_tuned_model
from backend.prompts.verbalizer import parse_verbalizer
from backend.training.checkpoint import load_trainable_state, trainable_state

FINAL = "final"


def save_trained(out_dir: Path, tuned: TunedModel, config: dict[str, Any], *, model_id: str = "",
                 revision: str = "", metrics: dict[str, Any] | None = None) -> Path:
    final = Path(out_dir) / FINAL
    final.mkdir(parents=True, exist_ok=True)
    pm = tuned.pm
    meta = {"format": "prompt-studio-run/1", "config": config, "method": tuned.method.name,
            "options": tuned.options, "template_text": tuned.template_text,
            "verbalizer": json.loads(tuned.verbalizer.canonical_json()),
            "classes": list(tuned.verbalizer.classes), "model_id": model_id, "revision": revision,
            "kind": pm.kind, "metrics": metrics or {}}
    (final / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    state = trainable_state(pm)
    if state:
        save_file(state, str(final / "trainable.safetensors"))
    if tuned.method.uses_peft:
        pm.plm.save_pretrained(str(final / "adapter"), safe_serialization=True)
    return final


def read_run_meta(path: Path) -> dict[str, Any]:
    p = Path(path)
    p = p / FINAL if (p / FINAL / "run.json").exists() else p
    try:
        return json.loads((p / "run.json").read_text()) | {"_dir": str(p)}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p} is not a trained run folder (no readable run.json): {exc}") from None


def load_trained(path: Path, plm: Any, tokenizer: Any) -> TunedModel:
    """Rebuild the run's PromptModel on ``plm`` (a fresh base model: PEFT / adapters modify it) and load
    its trained tensors."""
    meta = read_run_meta(path)
    v = meta["verbalizer"]
    verb = parse_verbalizer(v, meta["classes"]) if "label_words" in v else parse_verbalizer(v)
    options = get_method(meta["method"]).reload_options(meta["options"])
    tuned = build_tuned_model(plm, tokenizer, meta["kind"], meta["config"]["template"], verb, meta["method"],
                              options, seed=0)
    weights = Path(meta["_dir"]) / "trainable.safetensors"
    if weights.exists():
        load_trainable_state(tuned.pm, load_file(str(weights)))
    return tuned
