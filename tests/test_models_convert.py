"""GGUF -> cached HF directory: atomic writes, reuse, and the real SmolLM2 round trip (slow)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from backend.errors import ModelError
from backend.models import DEFAULT_MODEL, default_cache_dir, embedded_gguf, load_model
from backend.models import convert
from backend.models.hashing import sha256_file, sha256_files

SHA = "ab" * 32


@pytest.fixture
def fake_gguf(tmp_path):
    path = tmp_path / "src" / "fake.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF not really")
    return path


def _fake_writer(calls):
    def write(gguf, sha, out):
        calls.append(out)
        (out / "config.json").write_text("{}")
        (out / convert.MANIFEST).write_text(json.dumps({"gguf_sha256": sha}))
    return write


def test_converts_once_then_reuses(tmp_path, fake_gguf, monkeypatch):
    calls = []
    monkeypatch.setattr(convert, "_write_conversion", _fake_writer(calls))
    cache = tmp_path / "cache"
    first = convert.ensure_converted(fake_gguf, SHA, "fake", cache)
    again = convert.ensure_converted(fake_gguf, SHA, "fake", cache)
    assert first == again == cache / f"fake-{SHA[:12]}"
    assert len(calls) == 1
    assert sorted(p.name for p in cache.iterdir()) == [first.name]  # no temp dirs left behind


def test_failure_midway_leaves_no_half_cache(tmp_path, fake_gguf, monkeypatch):
    def crash(gguf, sha, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise ModelError("boom")

    monkeypatch.setattr(convert, "_write_conversion", crash)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="boom"):
        convert.ensure_converted(fake_gguf, SHA, "fake", cache)
    assert list(cache.iterdir()) == []


def test_losing_a_concurrent_race_is_fine(tmp_path, fake_gguf, monkeypatch):
    cache = tmp_path / "cache"
    target = convert.converted_dir(cache, "fake", SHA)

    def other_process_wins(gguf, sha, out):
        _fake_writer([])(gguf, sha, out)
        target.mkdir(parents=True)  # the other process renamed its complete copy first
        (target / convert.MANIFEST).write_text("{}")
        (target / "config.json").write_text('{"winner": true}')

    monkeypatch.setattr(convert, "_write_conversion", other_process_wins)
    assert convert.ensure_converted(fake_gguf, SHA, "fake", cache) == target
    assert json.loads((target / "config.json").read_text()) == {"winner": True}
    assert [p.name for p in cache.iterdir()] == [target.name]


def test_incomplete_directory_is_rebuilt(tmp_path, fake_gguf, monkeypatch):
    cache = tmp_path / "cache"
    target = convert.converted_dir(cache, "fake", SHA)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"truncated")  # no manifest: not a finished conversion
    calls = []
    monkeypatch.setattr(convert, "_write_conversion", _fake_writer(calls))
    assert convert.ensure_converted(fake_gguf, SHA, "fake", cache) == target
    assert len(calls) == 1 and not (target / "model.safetensors").exists()


def test_unreadable_gguf_is_a_model_error(tmp_path, fake_gguf):
    with pytest.raises(ModelError, match="cannot read the GGUF file"):
        load_model(str(fake_gguf), device="cpu", cache_dir=tmp_path / "cache")
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "cache").iterdir())


def test_hash_memo_notices_changed_files(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"one")
    assert sha256_files([f], tmp_path)[f] == sha256_file(f)
    f.write_bytes(b"two!")
    os.utime(f, ns=(1, 1))
    assert sha256_files([f], tmp_path)[f] == sha256_file(f)
    (tmp_path / "file-hashes.json").write_text("not json")  # a corrupt memo only costs a re-hash
    assert sha256_files([f], tmp_path)[f] == sha256_file(f)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPT_STUDIO_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("PROMPT_STUDIO_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir().parts[-2:] == (".cache", "prompt-studio")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "prompt-studio"


@pytest.mark.slow
def test_embedded_smollm2_round_trip():
    """The cached conversion (shared default cache dir, so CI converts once) reproduces the GGUF exactly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_model(DEFAULT_MODEL, device="cpu")
    gguf = embedded_gguf()
    assert loaded.model_id == DEFAULT_MODEL and loaded.kind == "causal"
    assert loaded.revision == sha256_file(gguf)
    assert loaded.tokenizer.pad_token is not None
    assert not hasattr(loaded.model.config, "quantization_config")
    cfg = loaded.model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads and cfg.tie_word_embeddings

    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).eval()
    direct_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    text = "The movie was surprisingly good, and the acting"
    ids = loaded.tokenizer(text, return_tensors="pt")
    assert ids["input_ids"].tolist() == direct_tok(text, return_tensors="pt")["input_ids"].tolist()
    with torch.inference_mode():
        assert torch.equal(loaded.model(**ids).logits, direct(**ids).logits)
