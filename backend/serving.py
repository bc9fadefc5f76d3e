"""Serving several trained runs on one loaded base model, switched per request.

Each method's class says how its runs are served (``serving``, one of ``backend.methods.base.SERVING``);
``attach`` follows it. Prompt-based runs (zero-shot, soft prompts, prompt tuning, P-tuning) only add
rows in front of the frozen model, and prefix runs only add a PEFT wrapper that injects nothing, so they
share the base as is. LoRA (or IA3) runs become named adapters of one PEFT host model (loaded from each run's PEFT
adapter folder); a request selects its adapter with ``set_adapter`` and every other request runs with
the adapters disabled. Bottleneck-adapter runs hook their blocks onto the shared base, switched off
except for their own requests. BitFit runs keep their biases aside and swap them in for their own
requests (a few hundred KB), restoring the base's afterwards. Only full fine-tuning, which rewrites every
weight, gets a private copy of the base.

``python -m backend predict --run ID --run ID --text ...`` prints each run's class probabilities.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from peft import PeftConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from storage.paths import safe_join

from backend.batching import EncodeSettings, collate, encode_examples
from backend.errors import ConfigError
from backend.methods import get_method
from backend.methods.heads import attach_soft_verbalizer
from backend.models.quiet import quiet_hf
from backend.prompt_model import PromptModel
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.pipeline import mask_prefix
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import Verbalizer, compile_verbalizer, parse_verbalizer
from backend.training.artifacts import load_trained, read_run_meta
from backend.training.checkpoint import load_trainable_state


@dataclass
class Served:
    pm: PromptModel
    meta: dict[str, Any]
    adapter: str | None = None         # PEFT adapter name on the host
    gates: list[Any] = field(default_factory=list)                  # hooked blocks switched on for this run
    biases: list[tuple[torch.nn.Parameter, torch.Tensor]] = field(default_factory=list)   # BitFit: swapped in
    ensemble: Any = None               # backend.workbench.serve.EnsembleParts: several prompts, one answer


def _verbalizer(meta: dict[str, Any]) -> Verbalizer:
    return parse_verbalizer(meta["verbalizer"], meta["classes"])


class MultiRunServer:
    """One base model, many trained runs; ``predict(key, texts)`` uses run ``key``."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.base = loaded.model
        self.tokenizer = loaded.tokenizer
        self.kind = loaded.kind
        self.info = describe_tokenizer(loaded.tokenizer)
        self.host: PeftModel | None = None
        self.runs: dict[str, Served] = {}

    # ------------------------------------------------------------------ attaching runs

    def attach(self, key: str, run_dir: str | Path) -> None:
        meta = read_run_meta(Path(run_dir))
        if meta["kind"] != self.kind:
            raise ConfigError(f"run {key!r} was trained on a {meta['kind']} model; this server holds a "
                              f"{self.kind} model", field="run")
        serving = get_method(meta["method"]).serving
        if (Path(run_dir) / "soft_ensemble.json").exists():   # several soft prompts, one answer (softensemble.py)
            served = self._attach_soft_ensemble(run_dir, meta)
        elif serving == "shared":
            served = Served(load_trained(run_dir, self.base, self.tokenizer).pm, meta)
        elif serving == "peft-host":
            served = self._attach_hosted(key, meta)
        elif serving == "hooks":
            served = self._attach_hooks(run_dir, meta)
        elif serving == "biases":
            served = self._attach_bitfit(meta)
        else:   # "own-copy"
            served = Served(load_trained(run_dir, copy.deepcopy(self.base), self.tokenizer).pm, meta)
        served.pm.eval()
        self.runs[key] = served

    def _attach_soft_ensemble(self, run_dir: str | Path, meta: dict[str, Any]) -> Served:
        from backend.workbench.softensemble import VECTORS, SoftEnsemble

        spec = json.loads((Path(run_dir) / "soft_ensemble.json").read_text())
        pm = load_trained(run_dir, self.base, self.tokenizer).pm
        ens = SoftEnsemble.build(pm, load_file(str(Path(run_dir) / VECTORS))["soft_prompts"], spec["combine"])
        return Served(pm, meta, ensemble=ens)

    def _attach_hooks(self, run_dir: str | Path, meta: dict[str, Any]) -> Served:
        """Blocks hooked onto the shared base (bottleneck adapters): the run's own submodules (beside the
        base) with an ``active`` switch, off except during the run's own requests."""
        pm = load_trained(run_dir, self.base, self.tokenizer).pm
        gates = [m for n, m in pm.named_children() if n != "plm" and isinstance(getattr(m, "active", None), bool)]
        for gate in gates:
            gate.active = False
        return Served(pm, meta, gates=gates)

    def _attach_hosted(self, key: str, meta: dict[str, Any]) -> Served:
        adapter_dir = Path(meta["_dir"]) / "adapter"
        name = f"run_{len(self.runs)}_{key}".replace(".", "_")
        if self.host is None:
            cfg = PeftConfig.from_pretrained(str(adapter_dir))
            with quiet_hf():   # PEFT's own call of a deprecated transformers property warns otherwise
                self.host = get_peft_model(self.base, cfg, adapter_name=name)
            self.host.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        else:
            try:
                self.host.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            except ValueError as exc:
                raise ConfigError(f"run {key!r} cannot share this server's PEFT host: {exc}", field="run") from None
        return Served(self._own_model(meta, self.host), meta, adapter=name)

    def _own_model(self, meta: dict[str, Any], plm: Any) -> PromptModel:
        """The run's PromptModel on ``plm`` with its own (non-PLM) tensors: soft tokens, soft verbalizer."""
        template = compile_template(meta["template_text"], self.tokenizer)
        verb = compile_verbalizer(_verbalizer(meta), self.tokenizer, prefix=mask_prefix(template))
        pm = PromptModel(plm, self.kind, template, verb)
        if meta["options"].get("head") == "soft":
            attach_soft_verbalizer(pm)
        weights = Path(meta["_dir"]) / "trainable.safetensors"
        if weights.exists():
            own = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("plm.")}
            load_trainable_state(pm, own)
        return pm

    def _attach_bitfit(self, meta: dict[str, Any]) -> Served:
        """The run's biases, matched to the base's parameters by name (PEFT's ``.base_layer`` ignored, so a
        LoRA host on the same base does not hide them)."""
        params = {n.replace(".base_layer", ""): p for n, p in self.base.named_parameters()}
        biases = []
        for name, tensor in load_file(str(Path(meta["_dir"]) / "trainable.safetensors")).items():
            if not name.startswith("plm."):
                continue
            target = params.get(name[len("plm."):])
            if target is None or target.shape != tensor.shape:
                raise ConfigError(f"run {meta.get('run_id', '')} does not fit this base model: {name}", field="run")
            biases.append((target, tensor.to(target.device, target.dtype)))
        return Served(self._own_model(meta, self.base), meta, biases=biases)

    # ------------------------------------------------------------------ requests

    @contextlib.contextmanager
    def _selected(self, served: Served) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.host is not None:
                if served.adapter is not None:
                    self.host.set_adapter(served.adapter)
                else:
                    stack.enter_context(self.host.disable_adapter())
            stack.enter_context(_switched_on(served.gates))
            stack.enter_context(_swapped_in(served.biases))
            yield

    def attach_ensemble(self, key: str, spec: dict[str, Any]) -> None:
        """Serve a recorded ensemble run (its ``ensemble.json``): its members as prompts on the shared base."""
        from backend.workbench.serve import ensemble_parts

        parts = ensemble_parts(spec, self.base, self.kind, self.tokenizer)
        self.runs[key] = Served(parts.first, {"config": {"max_length": spec["max_length"],
                                                         "truncate": spec["truncate"]}, **spec}, ensemble=parts)

    def scores(self, key: str, examples: Sequence[Example]) -> torch.Tensor:
        """Class log-probabilities (N, C) of run ``key`` for ``examples``."""
        if key not in self.runs:
            raise ConfigError(f"no run {key!r} attached (attached: {', '.join(self.runs) or 'none'})", field="run")
        served = self.runs[key]
        cfg = served.meta["config"]
        settings = EncodeSettings(profile=served.pm.kind, max_length=cfg.get("max_length", 256),
                                  truncate=cfg.get("truncate", "tail"))
        if served.ensemble is not None:   # the members run on the plain base: no run's adapter or blocks on
            with contextlib.ExitStack() as stack:
                if self.host is not None:
                    stack.enter_context(self.host.disable_adapter())
                return served.ensemble.scores(list(examples), self.tokenizer, settings, self.info)
        encs = encode_examples(served.pm.template, list(examples), self.tokenizer, settings, self.info)
        with torch.inference_mode(), self._selected(served):
            return served.pm(collate(encs, self.info.pad_id, served.pm.label_rows.device)).float().cpu()

    def predict(self, key: str, texts: Sequence[str], text_b: str | None = None) -> list[dict[str, Any]]:
        examples = [Example(guid=i, text_a=t, text_b=text_b or "") for i, t in enumerate(texts)]
        probs = self.scores(key, examples).exp()
        classes = list(self.runs[key].pm.verbalizer.classes)
        return [{"text": t, "predicted": classes[int(p.argmax())],
                 "probs": {c: float(p[i]) for i, c in enumerate(classes)}} for t, p in zip(texts, probs)]


@contextlib.contextmanager
def _switched_on(gates: Sequence[Any]) -> Iterator[None]:
    for g in gates:
        g.active = True
    try:
        yield
    finally:
        for g in gates:
            g.active = False


@contextlib.contextmanager
def _swapped_in(biases: Sequence[tuple[torch.nn.Parameter, torch.Tensor]]) -> Iterator[None]:
    saved = [p.detach().clone() for p, _ in biases]
    with torch.no_grad():
        for p, t in biases:
            p.copy_(t)
    try:
        yield
    finally:
        with torch.no_grad():
            for (p, _), old in zip(biases, saved):
                p.copy_(old)


def materialize_run(store: Any, run_id: int, dest: Path) -> Path:
    """Copy a run's trained artifacts from the store into ``dest`` (verified by hash on read).

    Artifact names come from the database (and so from imported bundles): ``safe_join`` refuses any
    that would land outside the run's folder."""
    from backend.jobs.paths import folder_name

    out = Path(dest) / folder_name(run_id, store.get_run(run_id).uid)   # ids repeat across databases
    for art in store.list_artifacts(run_id):
        if art.kind not in ("config", "weights", "adapter"):
            continue
        target = safe_join(out, art.name, f"run {run_id}: artifact name")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.artifact_path(art.sha256), target)
    if not (out / "run.json").exists():
        raise ConfigError(f"run {run_id} has no trained artifacts (is it finished?)", field="run")
    return out


def predict_command(args: argparse.Namespace) -> int:
    from storage import open_store

    from backend.models import load_model

    from backend.workbench.record import read_ensemble

    store = open_store(args.db)
    with tempfile.TemporaryDirectory(prefix="ps-serve-") as tmp:
        ensembles = {rid: spec for rid in args.run if (spec := read_ensemble(store, rid)) is not None}
        dirs = {rid: materialize_run(store, rid, Path(tmp)) for rid in args.run if rid not in ensembles}
        models = {read_run_meta(d)["config"]["model"] for d in dirs.values()} | {e["model"] for e in ensembles.values()}
        if len(models) != 1:
            raise ConfigError(f"these runs use different base models {sorted(models)}; predict serves one",
                              field="run")
        server = MultiRunServer(load_model(models.pop()))
        for rid, d in dirs.items():
            server.attach(str(rid), d)
        for rid, spec in ensembles.items():
            server.attach_ensemble(str(rid), spec)
        out = {str(rid): server.predict(str(rid), args.text, args.text_b) for rid in args.run}
    print(json.dumps(out, indent=2))
    return 0


__all__ = ["MultiRunServer", "materialize_run", "predict_command"]
