"""Model resolution: from a spec (embedded default, local path, hub id) to a loaded, eval-mode model."""
from backend.models.cache import ModelCache
from backend.models.device import select_device
from backend.models.kind import KINDS, Kind, model_kind
from backend.models.loader import LoadedModel, load_kind, load_model, load_tokenizer
from backend.models.paths import default_cache_dir
from backend.models.resolve import DEFAULT_MODEL, embedded_gguf
from backend.models.tokenizer import ensure_pad_token

__all__ = ["DEFAULT_MODEL", "KINDS", "Kind", "LoadedModel", "ModelCache", "default_cache_dir",
           "embedded_gguf", "ensure_pad_token", "load_kind", "load_model", "load_tokenizer", "model_kind",
           "select_device"]
