"""Pick the device and dtype a model runs in.

Defaults follow what is fast *and* numerically safe: on CUDA bf16 when the GPU supports it (same exponent
range as fp32, so no overflow in attention logits), else fp16; on CPU fp32, because most laptop CPUs have
no bf16 matrix units (bf16 there is emulated and slower) and a default should give the same scores on
every machine. Where the CPU has them (AMX), an evaluation may ask for bf16 (``eval.dtype``): measured
~2.6x faster, with a few predictions changed (bench/results/engine.md).
"""
from __future__ import annotations

import torch

from backend.errors import ConfigError

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"`` / ``"bfloat16"`` / ``torch.bfloat16`` ... -> torch dtype; None or ``"auto"`` -> None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key in ("", "auto"):
        return None
    if key not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of auto, float32, bfloat16, float16",
                          field="dtype")
    return _DTYPES[key]


def parse_device(device: str | torch.device | None) -> torch.device:
    """``None`` / ``"auto"`` -> CUDA when available else CPU; explicit CUDA without a GPU is an error."""
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N", field="device") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but no CUDA GPU is available", field="device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist: {torch.cuda.device_count()} GPU(s) visible",
                              field="device")
    elif dev.type not in ("cpu", "mps"):
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N", field="device")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: how configs and run records name a dtype."""
    return str(dtype).removeprefix("torch.")


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX-512 BF16); without them
    PyTorch emulates bf16 and it runs slower than fp32 (it still halves the weights' memory)."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, name, lambda: False)()) for name in
               ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def dtype_note(dtype: torch.dtype, device: torch.device) -> str:
    """What a user should know about running in ``dtype`` on ``device`` ("" when nothing)."""
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_bf16_units():
        return "this CPU has no bf16 units: slower than float32, though half the memory"
    return ""


def eval_dtype(choice: str | None, device: torch.device, setting: str = "eval.dtype") -> torch.dtype:
    """The dtype an evaluation on ``device`` loads its model in, for ``choice`` of ``setting``.

    Half precision a device cannot run is refused (a ConfigError naming the setting) rather than run
    slowly or quietly in another dtype under a config that says otherwise.
    """
    dt = parse_dtype(choice) if choice not in (None, "auto") else None
    if dt is None:
        return default_dtype(device)
    if dt == torch.float16 and device.type == "cpu":
        raise ConfigError("evaluating in float16 on a CPU is slow and overflows easily; choose bfloat16 "
                          "(fast on CPUs with AMX) or float32", field=setting)
    if dt == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 to evaluate in; choose float16 or float32", field=setting)
    return dt


def eval_device_dtype(choice: str | None, setting: str = "eval.dtype") -> tuple[torch.device, torch.dtype]:
    """The default device and, on it, the dtype ``choice`` of ``setting`` resolves to (``eval_dtype``): where
    an evaluation that loads its own model puts it."""
    device = parse_device(None)
    return device, eval_dtype(choice, device, setting)


def select_device(device: str | torch.device | None = None,
                  dtype: str | torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """Resolve the user's (possibly empty) device and dtype choice to concrete values."""
    dev = parse_device(device)
    dt = parse_dtype(dtype)
    return dev, (dt if dt is not None else default_dtype(dev))
