"""A recorded template ensemble as something that answers: its members rebuilt as prompts on one base
model, scored the way the comparison scored them, calibrated with their recorded content-free priors and
combined with the recorded weights (or fitted classifier), so a served ensemble gives the dev rows the
probabilities its run recorded.

Members that share a template share its forward pass (``compare.score_rows``): only their label-word
rows differ. Nothing here is fitted again: the ensemble is exactly what the run says.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from backend.batching import EncodeSettings, encode_examples
from backend.errors import ConfigError
from backend.pipeline import build_verbalizer, mask_prefix
from backend.prompt_model import PromptModel
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer
from backend.workbench import stats
from backend.workbench.compare import score_rows
from backend.workbench.ensemble import KINDS, Ensemble


@dataclass
class EnsembleParts:
    groups: list[tuple[list[int], list[PromptModel]]]    # member indexes sharing one template, and their models
    priors: list[np.ndarray | None]                      # per member: content-free log prior (None: uncalibrated)
    ensemble: Ensemble
    classes: list[str]
    batch_size: int = 32

    @property
    def first(self) -> PromptModel:
        return self.groups[0][1][0]

    def member_scores(self, examples: Sequence[Example], tokenizer: Any, settings: EncodeSettings,
                      info: Any) -> list[np.ndarray]:
        """Each member's calibrated (N, C) class log-probs."""
        out: list[np.ndarray | None] = [None] * len(self.priors)
        for idx, models in self.groups:
            encs = encode_examples(models[0].template, list(examples), tokenizer, settings, info)
            for i, s in zip(idx, score_rows(models, encs, info.pad_id, self.batch_size)):
                prior = self.priors[i]
                out[i] = s if prior is None else stats.log_softmax(s - prior)
        return [s for s in out if s is not None]

    def scores(self, examples: Sequence[Example], tokenizer: Any, settings: EncodeSettings, info: Any) -> torch.Tensor:
        """(N, C) class log-probs of the ensemble."""
        return torch.from_numpy(self.ensemble.apply(self.member_scores(examples, tokenizer, settings, info))).float()


def ensemble_parts(spec: dict[str, Any], base: Any, kind: str, tokenizer: Any) -> EnsembleParts:
    """The members of a recorded ensemble (``ensemble.json``) as prompt models on ``base``."""
    try:
        members, classes = list(spec["members"]), [str(c) for c in spec["classes"]]
        ens = Ensemble(str(spec["kind"]), [str(m["name"]) for m in members], [float(w) for w in spec["weights"]],
                       dict(spec.get("classifier") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"this ensemble's ensemble.json is incomplete ({type(exc).__name__}: {exc})",
                          field="run") from None
    if ens.kind not in KINDS or len(members) < 2 or len(ens.weights) != len(members):
        raise ConfigError("this ensemble's ensemble.json does not describe an ensemble of two or more prompts",
                          field="run")
    by_text: dict[str, tuple[list[int], list[PromptModel]]] = {}
    for i, m in enumerate(members):
        text = str(m["template"])
        if text not in by_text:
            by_text[text] = ([], [])
        template = by_text[text][1][0].template if by_text[text][1] else compile_template(text, tokenizer)
        verb = build_verbalizer(json.loads(m["verbalizer"]), classes)
        compiled = compile_verbalizer(verb, tokenizer, prefix=mask_prefix(template))
        pm = PromptModel(base, kind, template, compiled)
        pm.eval()
        by_text[text][0].append(i)
        by_text[text][1].append(pm)
    priors = [None if m.get("prior") is None else np.asarray(m["prior"], dtype=np.float64) for m in members]
    return EnsembleParts(list(by_text.values()), priors, ens, classes)
