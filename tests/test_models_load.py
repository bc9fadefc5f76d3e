"""load_model on local directories, and every way a spec can be wrong."""
from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch

from backend.errors import ModelError
from backend.models import LoadedModel, ModelCache, load_model, load_tokenizer
from backend.models import resolve as resolve_mod
from tests.tiny import bert_tokenizer, minilm_dir, smol_tokenizer, t5_like_tokenizer, tiny_model


def _save_tiny(kind, tokenizer, path):
    tiny = tiny_model(kind, tokenizer, seed=3)
    tiny.model.save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return tiny


def _logits(loaded: LoadedModel, text: str) -> torch.Tensor:
    ids = loaded.tokenizer(text, return_tensors="pt")
    extra = {"decoder_input_ids": ids["input_ids"][:, :2]} if loaded.kind == "seq2seq" else {}
    with torch.inference_mode():
        return loaded.model(**ids, **extra).logits


@pytest.mark.parametrize("kind,make_tok", [("masked", bert_tokenizer), ("causal", smol_tokenizer),
                                           ("seq2seq", t5_like_tokenizer)])
def test_local_directory_round_trip(tmp_path, kind, make_tok):
    tiny = _save_tiny(kind, make_tok(), tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "cache")
    assert loaded.kind == kind
    assert loaded.model_id == str((tmp_path / "m").resolve())
    assert len(loaded.revision) == 64
    assert not loaded.model.training
    assert (loaded.device, loaded.dtype) == (torch.device("cpu"), torch.float32)
    assert loaded.tokenizer.pad_token is not None and loaded.tokenizer.padding_side == "right"
    assert torch.equal(_logits(loaded, "a fine test"), _logits(tiny, "a fine test"))


def test_revision_tracks_weight_content(tmp_path):
    _save_tiny("masked", bert_tokenizer(), tmp_path / "m")
    first = load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "cache").revision
    again = load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "cache").revision
    assert first == again
    tiny_model("masked", bert_tokenizer(), seed=4).model.save_pretrained(tmp_path / "m")
    changed = load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "cache").revision
    assert changed != first


def test_dtype_is_applied(tmp_path):
    _save_tiny("causal", smol_tokenizer(), tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"), device="cpu", dtype="bf16", cache_dir=tmp_path / "c")
    assert loaded.dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_model_without_lm_head_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no trained language-model head") as err:
        load_model(str(minilm_dir()), device="cpu", cache_dir=tmp_path)
    assert "cls.predictions" in err.value.message


def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_offline_hub_id_not_cached(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(ModelError) as err:
        load_model("prompt-studio-tests/never-downloaded-model", device="cpu", cache_dir=tmp_path)
    assert "not in the local Hugging Face cache" in err.value.message
    assert "offline" in err.value.message
    assert err.value.field == "model"


def test_cached_hub_model_loads_offline_with_its_commit(tmp_path, monkeypatch):
    commit = "c0ffee" * 6 + "abcd"
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    tiny = _save_tiny("masked", bert_tokenizer(), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    _offline(monkeypatch)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model("acme/tiny-bert", device="cpu", cache_dir=tmp_path / "c")
    assert (loaded.model_id, loaded.revision, loaded.kind) == ("acme/tiny-bert", commit, "masked")
    assert torch.equal(_logits(loaded, "hub test"), _logits(tiny, "hub test"))


def test_unreachable_hub_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(resolve_mod.AutoConfig, "from_pretrained", no_network)
    with pytest.raises(ModelError, match="cannot be reached"):
        load_model("some-org/some-model", device="cpu", cache_dir=tmp_path)


@pytest.mark.parametrize("spec,message", [
    ("", "no model given"),
    ("./no/such/dir", "no such model file or directory"),
    ("missing.gguf", "no such model file or directory"),
    ("not a valid id!!", "neither a local path nor a valid hub model id"),
])
def test_bad_specs(tmp_path, spec, message):
    with pytest.raises(ModelError, match=message):
        load_model(spec, device="cpu", cache_dir=tmp_path)


def test_directory_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        load_model(str(tmp_path / "empty"), cache_dir=tmp_path)


def test_directory_without_weights(tmp_path):
    tiny = tiny_model("masked", bert_tokenizer())
    tiny.model.config.save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match="no weight files"):
        load_model(str(tmp_path / "m"), cache_dir=tmp_path)


def test_plain_file_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="not a .gguf model"):
        load_model(str(tmp_path / "notes.txt"), cache_dir=tmp_path)


def test_tokenizer_from_another_model_is_refused(tmp_path):
    tiny = tiny_model("masked", bert_tokenizer())
    tiny.model.save_pretrained(tmp_path / "m")
    smol_tokenizer().save_pretrained(tmp_path / "m")  # 49152 tokens vs 30522 embeddings
    with pytest.raises(ModelError, match="do not belong together"):
        load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "c")


def test_load_tokenizer_alone(tmp_path):
    _save_tiny("masked", bert_tokenizer(), tmp_path / "m")
    tok = load_tokenizer(str(tmp_path / "m"), cache_dir=tmp_path / "c")
    assert tok.tokenize("Hello World") == ["hello", "world"]


def test_model_cache_is_lru(tmp_path):
    calls = []

    def fake_loader(spec, **kwargs):
        calls.append(spec)
        return object()

    cache = ModelCache(maxsize=2, loader=fake_loader)
    a = cache.get("a", device="cpu", cache_dir=tmp_path)
    assert cache.get("a", device="cpu", cache_dir=tmp_path) is a
    cache.get("b", device="cpu", cache_dir=tmp_path)
    cache.get("a", device="cpu", cache_dir=tmp_path)          # a is now most recent
    cache.get("c", device="cpu", cache_dir=tmp_path)          # evicts b
    cache.get("b", device="cpu", cache_dir=tmp_path)
    assert calls == ["a", "b", "c", "b"]
    assert len(cache) == 2
    cache.get("a", device="cpu", dtype="bf16", cache_dir=tmp_path)  # dtype is part of the key
    assert calls[-1] == "a"
    with pytest.raises(ValueError):
        ModelCache(maxsize=0)


def test_corrupt_weights_are_a_model_error(tmp_path):
    _save_tiny("masked", bert_tokenizer(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot load the weights"):
        load_model(str(tmp_path / "m"), device="cpu", cache_dir=tmp_path / "c")


def test_gpu_load_goes_straight_to_the_device(monkeypatch):
    """No GPU here: check the arguments a CUDA load would use (direct placement, target dtype)."""
    from backend.models import loader
    from backend.models.resolve import Source

    seen = {}

    class FakeAuto:
        @staticmethod
        def from_pretrained(location, **kwargs):
            seen.update(kwargs, location=location)
            return tiny_model("masked", bert_tokenizer()).model, {"missing_keys": set()}

    monkeypatch.setitem(loader.AUTO_CLASSES, "masked", FakeAuto)
    src = Source(model_id="m", location="/models/m", revision="r")
    loader._load_weights(src, "masked", torch.device("cuda", 0), torch.bfloat16)
    assert seen["device_map"] == torch.device("cuda", 0) and seen["dtype"] == torch.bfloat16
    seen.clear()
    loader._load_weights(src, "masked", torch.device("cpu"), torch.float32)
    assert "device_map" not in seen and seen["dtype"] == torch.float32
