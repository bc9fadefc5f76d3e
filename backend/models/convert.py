"""Turn a GGUF checkpoint into a cached Hugging Face directory, once.

transformers can read GGUF directly but must dequantize every tensor (about 20 s for SmolLM2-135M);
reading safetensors takes a fraction of a second. So the first load converts and stores config, tokenizer
and fp32 safetensors under ``<cache_dir>/<name>-<sha12 of the gguf>/``; the sha in the name means a new
GGUF never reuses a stale conversion.

The directory appears atomically: everything is written into a temp directory beside it, checked, and
renamed into place; the manifest file inside marks it complete. Two processes converting at once both
finish, one rename wins and the other discards its copy; a process killed mid-way leaves only a temp
directory, which the next conversion removes once it is old.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, PreTrainedModel

from backend.errors import ModelError
from backend.models.kind import AUTO_CLASSES, model_kind
from backend.models.quiet import quiet_hf
from backend.models.tokenizer import load_tokenizer_from

log = logging.getLogger(__name__)

MANIFEST = "prompt-studio.json"
_STALE_TMP_S = 3600
_CHECK_TEXT = "Prompt Studio checks that the converted weights match the GGUF."


def converted_dir(cache_dir: Path, name: str, gguf_sha256: str) -> Path:
    """Where the conversion of a GGUF with this content hash lives (it may not exist yet)."""
    return cache_dir / f"{name}-{gguf_sha256[:12]}"


def is_converted(target: Path) -> bool:
    return (target / MANIFEST).is_file()


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, object]:
    kwargs = {"gguf_file": gguf.name}
    try:
        config = AutoConfig.from_pretrained(str(gguf.parent), **kwargs)
        tokenizer = load_tokenizer_from(gguf.parent, **kwargs)
        with quiet_hf():   # the dequantizing bar is the GGUF reader's own tqdm and still shows
            model = AUTO_CLASSES[model_kind(config)].from_pretrained(
                str(gguf.parent), dtype=torch.float32, **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # a corrupt or foreign file makes the GGUF reader raise almost anything
        raise ModelError(f"cannot read the GGUF file {gguf}: {type(exc).__name__}: {exc}") from exc
    # The quantizer marks the model as "not serializable"; its weights are plain fp32 tensors already.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


def _logits(model: PreTrainedModel, tokenizer: object) -> torch.Tensor:
    ids = tokenizer(_CHECK_TEXT, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        if model.config.is_encoder_decoder:
            return model(**ids, decoder_input_ids=ids["input_ids"][:, :4]).logits
        return model(**ids).logits


def _write_conversion(gguf: Path, gguf_sha256: str, out: Path) -> None:
    """Convert into ``out`` and prove the saved copy reproduces the GGUF model's logits exactly."""
    model, tokenizer = _load_gguf(gguf)
    with quiet_hf():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)  # type: ignore[attr-defined]
        reloaded = type(model).from_pretrained(str(out), dtype=torch.float32).eval()
    if not torch.equal(_logits(model, tokenizer), _logits(reloaded, tokenizer)):
        raise ModelError(f"converting {gguf.name} changed the model's outputs; not caching it")
    manifest = {"gguf": str(gguf), "gguf_sha256": gguf_sha256, "transformers": transformers.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _remove_stale_temps(cache_dir: Path, target: Path) -> None:
    for tmp in cache_dir.glob(f".tmp-{target.name}-*"):
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def ensure_converted(gguf: Path, gguf_sha256: str, name: str, cache_dir: Path) -> Path:
    """Return the cached HF directory for ``gguf``, converting it first if needed."""
    target = converted_dir(cache_dir, name, gguf_sha256)
    if is_converted(target):
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(cache_dir, target)
        if target.exists():  # incomplete (no manifest), e.g. copied by hand: move aside, then rebuild
            aside = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".tmp-{target.name}-broken-"))
            os.replace(target, aside / "old")
            shutil.rmtree(aside, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".tmp-{target.name}-"))
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {cache_dir}: {exc}") from exc
    try:
        log.info("converting %s once into the model cache (about 20 s; later loads take a second)", gguf.name)
        _write_conversion(gguf, gguf_sha256, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared (CI, several users)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_converted(target):  # not a lost race: a real failure
                raise
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {cache_dir}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
