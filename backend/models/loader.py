"""``load_model``: one call from a spec to a ready, eval-mode model with its tokenizer and provenance."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from backend.errors import ModelError
from backend.models.device import select_device
from backend.models.kind import AUTO_CLASSES, Kind, model_kind
from backend.models.lean import make_lean
from backend.models.paths import default_cache_dir
from backend.models.quiet import quiet_hf
from backend.models.resolve import DEFAULT_MODEL, Source, resolve_spec, tokenizer_location
from backend.models.tokenizer import load_tokenizer_from


# At the transformers boundary a corrupt or foreign checkpoint raises almost anything (struct.error,
# SafetensorError, ValueError, ...); every such failure is about the user's file, so all become ModelError.


@dataclass
class LoadedModel:
    spec: str                     # what the user asked for
    model_id: str                 # canonical id: DEFAULT_MODEL, a hub id, or an absolute path
    revision: str                 # sha256 of the GGUF / weight files, or the hub commit
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel        # eval mode, on ``device``, in ``dtype``
    kind: Kind
    device: torch.device
    dtype: torch.dtype


def _load_config(source: Source) -> Any:
    if source.config is not None:
        return source.config
    try:
        return AutoConfig.from_pretrained(source.location, **source.load_kwargs)
    except Exception as exc:  # see the note at the top
        raise ModelError(f"cannot read the config of {source.model_id}: {exc}") from exc


def _load_weights(source: Source, kind: Kind, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    """Load straight onto the device in the target dtype (transformers 5 always loads lazily, so
    there is no full fp32 copy in CPU memory first) and refuse checkpoints without a trained LM head."""
    kwargs: dict[str, Any] = dict(source.load_kwargs, dtype=dtype, output_loading_info=True)
    if device.type != "cpu":
        kwargs["device_map"] = device
    try:
        with quiet_hf():   # no "Loading weights" bar on every command: it takes a fraction of a second
            model, info = AUTO_CLASSES[kind].from_pretrained(source.location, **kwargs)
    except Exception as exc:  # see the note at the top
        raise ModelError(f"cannot load the weights of {source.model_id} as a {kind} LM: {exc}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelError(
            f"{source.model_id} has no trained language-model head for a {kind} LM: {len(missing)} weights "
            f"would be random (e.g. {', '.join(missing[:3])}); it is probably an encoder-only or "
            "sentence-embedding checkpoint. Use a checkpoint with an LM head (e.g. *ForMaskedLM / *ForCausalLM)")
    return model.eval()


def _check_vocab(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_id: str) -> None:
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelError(f"the tokenizer of {model_id} has {len(tokenizer)} tokens but the model only "
                         f"{rows} embeddings; tokenizer and weights do not belong together")


def load_model(spec: str = DEFAULT_MODEL, *, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None,
               cache_dir: Path | None = None, lean: bool = True) -> LoadedModel:
    """Resolve ``spec`` (embedded default, local directory / .gguf, or hub id) and load it for inference.

    ``device``/``dtype`` default to CUDA in bf16 (fp16 without bf16 support) when a GPU is present, else
    CPU fp32. ``cache_dir`` holds converted GGUF models and weight hashes (``default_cache_dir()``).
    Every failure a user can cause is a ModelError (or ConfigError for a bad device/dtype).
    ``lean`` switches on the leaner attention / MLP paths of ``backend.models.lean`` (same results, less
    memory for training); ``lean=False`` gives the model exactly as transformers builds it.
    """
    dev, dt = select_device(device, dtype)
    source = resolve_spec(spec, cache_dir if cache_dir is not None else default_cache_dir())
    kind = model_kind(_load_config(source))
    tokenizer = load_tokenizer_from(source.location, **source.load_kwargs)
    model = _load_weights(source, kind, dev, dt)
    _check_vocab(model, tokenizer, source.model_id)
    if lean:
        make_lean(model)
    return LoadedModel(spec=spec, model_id=source.model_id, revision=source.revision, tokenizer=tokenizer,
                       model=model, kind=kind, device=dev, dtype=dt)


def load_tokenizer(spec: str = DEFAULT_MODEL, *, cache_dir: Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer alone, for previews (token counts, label-word checks) without loading weights.

    For the embedded default it reads the converted cache when present and otherwise the GGUF's own
    tokenizer (a few seconds; no conversion is triggered).
    """
    location, kwargs = tokenizer_location(spec, cache_dir if cache_dir is not None else default_cache_dir())
    return load_tokenizer_from(location, **kwargs)


def load_kind(spec: str = DEFAULT_MODEL, *, cache_dir: Path | None = None) -> Kind:
    """The kind ``load_model(spec)`` gives (masked, causal or seq2seq), read from the config alone.

    Why: a preview without weights (the CLI's) must encode with the profile the loaded model would have,
    decided by the same ``model_kind`` rule; like ``load_tokenizer`` it never converts the embedded GGUF.
    """
    location, kwargs = tokenizer_location(spec, cache_dir if cache_dir is not None else default_cache_dir())
    try:
        config = AutoConfig.from_pretrained(location, **kwargs)
    except Exception as exc:  # see the note at the top
        raise ModelError(f"cannot read the config of {spec}: {exc}") from exc
    return model_kind(config)

