"""Device and dtype selection, with CUDA availability mocked both ways."""
from __future__ import annotations

import pytest
import torch

from backend.errors import ConfigError
from backend.models import select_device


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, *, available: bool, bf16: bool = True, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)


def test_cpu_defaults_to_fp32(monkeypatch):
    _fake_cuda(monkeypatch, available=False)
    assert select_device() == (torch.device("cpu"), torch.float32)
    assert select_device("auto", "auto") == (torch.device("cpu"), torch.float32)


def test_cuda_prefers_bf16_when_supported(monkeypatch):
    _fake_cuda(monkeypatch, available=True, bf16=True)
    assert select_device() == (torch.device("cuda"), torch.bfloat16)


def test_cuda_without_bf16_uses_fp16(monkeypatch):
    _fake_cuda(monkeypatch, available=True, bf16=False)
    assert select_device(None, None) == (torch.device("cuda"), torch.float16)


def test_explicit_cpu_on_a_gpu_machine_stays_fp32(monkeypatch):
    _fake_cuda(monkeypatch, available=True)
    assert select_device("cpu") == (torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("name,expected", [("bf16", torch.bfloat16), ("bfloat16", torch.bfloat16),
                                           ("FP16", torch.float16), ("torch.float32", torch.float32),
                                           (torch.float16, torch.float16)])
def test_explicit_dtype_wins(monkeypatch, name, expected):
    _fake_cuda(monkeypatch, available=False)
    assert select_device("cpu", name) == (torch.device("cpu"), expected)


def test_explicit_cuda_index(monkeypatch):
    _fake_cuda(monkeypatch, available=True, count=2)
    assert select_device("cuda:1")[0] == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="does not exist"):
        select_device("cuda:2")


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch):
    _fake_cuda(monkeypatch, available=False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        select_device("cuda")


@pytest.mark.parametrize("device", ["tpu-9000", "gpu", "xla"])
def test_unknown_device(monkeypatch, device):
    _fake_cuda(monkeypatch, available=False)
    with pytest.raises(ConfigError) as err:
        select_device(device)
    assert err.value.field == "device"


def test_unknown_dtype():
    with pytest.raises(ConfigError, match="unknown dtype 'int3'"):
        select_device("cpu", "int3")
