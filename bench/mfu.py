"""Model-FLOPs utilisation: the work a step needed, per second, against the machine's matmul peak.

Why: speed ratios against other code say nothing about how far we are from what the hardware can do.
Achieved FLOP/s counts only the work the task needs (never what an implementation happens to do, so
skipping work does not raise it, while padding, wasted positions or slow kernels lower it); the peak is a
large square matmul timed in the same process, in the same run, so machine load hits both alike.

What counts (FORMULA below is the text the benches print):
- N = non-embedding parameters of the base model (input embedding and LM head excluded: a lookup, and our
  head computes only the label-word rows at one position; norms included).
- tokens needed = per row, the non-pad tokens up to the read position for a causal LM (later tokens cannot
  change it), all non-pad tokens for a masked LM, plus a method's virtual tokens that run through every
  layer (prompt tuning). A shared prefix the model runs once is still counted once per row.
- forward = 2 N per token (one multiply-add per weight). Attention's score and value products
  (4 x layers x context x width per token, ~2% of 2N at SST-2's ~60 tokens) are left out.
- training = forward + backward: the backward pass computes activation gradients through every frozen
  layer above the first trained part (2 N per token: all methods here train something at the first layer),
  and activation plus weight gradients of trained matrices (4 x their size per token), whose forward is
  2 x their size: 4 N + 6 N_trained per token (6 N for full fine-tuning, the usual figure).
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

FORMULA = ("MFU = achieved FLOP/s / peak FLOP/s. Achieved: eval 2·N·T, training step (4·N + 6·N_trained)·T "
           "per second of wall time, N = non-embedding parameters of the base model (embeddings and LM head "
           "left out, attention's score/value products left out, ~2%), N_trained = trained weights inside "
           "matmuls (LoRA's A and B; soft prompts and prefixes are lookups), T = tokens needed: per row the "
           "non-pad tokens up to the position the label is read at (causal LM) plus virtual tokens that run "
           "through the layers (prompt tuning); a shared prefix run once still counts once per row. "
           "Peak: the best of repeated square matmuls (1024 and 2048) in the same dtype, timed in the same "
           "process between the measured batches; the median of those samples is taken (this VM's matmul "
           "speed drifts by a third within minutes, so one sample before and after is not enough).")


def _unique(params: Iterable[nn.Parameter]) -> dict[int, nn.Parameter]:
    return {id(p): p for p in params}


def non_embedding_params(model: nn.Module) -> int:
    """Parameters outside every embedding table and the output head (tied or not)."""
    skip: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            skip.update(id(p) for p in m.parameters())
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        skip.update(id(p) for p in head.parameters())
    return sum(p.numel() for i, p in _unique(model.parameters()).items() if i not in skip)


def trained_matmul_params(model: nn.Module) -> int:
    """Trainable weights that take part in a per-token matmul (nn.Linear: LoRA's A and B, a head)."""
    params = _unique(p for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False))
    return sum(p.numel() for p in params.values() if p.requires_grad)


def virtual_tokens(model: nn.Module) -> int:
    """Tokens PEFT prompt learning puts in front of every row that run through the layers (prompt
    tuning, P-tuning); prefix tuning's virtual tokens are keys/values only, so 0 there."""
    configs = getattr(model, "peft_config", None) or {}
    for cfg in configs.values():
        kind = str(getattr(cfg, "peft_type", ""))
        if kind.endswith(("PROMPT_TUNING", "P_TUNING")):
            return int(getattr(cfg, "num_virtual_tokens", 0) or 0)
    return 0


def needed_tokens(encoded: Iterable[Any], kind: str, virtual: int = 0) -> int:
    """Tokens a set of encoded rows needs (see the module docstring)."""
    total = 0
    for e in encoded:
        total += (e.mask_positions[0] + 1 if kind == "causal" else e.length) + virtual
    return total


def forward_flops(n_params: int, tokens: int) -> float:
    return 2.0 * n_params * tokens


def train_flops(n_params: int, n_trained: int, tokens: int) -> float:
    return (4.0 * n_params + 6.0 * n_trained) * tokens


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                sizes: tuple[int, ...] | None = None, repeats: int = 6) -> float:
    """FLOP/s of the fastest of ``repeats`` square matmuls (best over ``sizes``), in this process now."""
    dev = torch.device(device)
    sizes = sizes or ((4096, 8192) if dev.type == "cuda" else (1024, 2048))
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=dev).to(dtype)
        b = torch.randn(n, n, device=dev).to(dtype)
        best = max(best, 2.0 * n ** 3 / _fastest_mm(a, b, repeats))
    return best


def _fastest_mm(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` products ``a @ b``, after one warm-up (kernel selection,
    page faults)."""
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b)
        _sync(a.device)
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            _sync(a.device)
            best = min(best, time.perf_counter() - t)
    return best


def _linears(model: nn.Module, skip: tuple[str, ...]) -> list[nn.Linear]:
    """The model's linear layers in order, but those whose name contains one of ``skip``."""
    return [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and not any(s in name for s in skip)]


def shape_ceiling(model: nn.Module, tokens: int, repeats: int = 5,
                  skip: tuple[str, ...] = ("lm_head", "embed")) -> float:
    """FLOP/s of the model's own linear layers as matmuls of ``tokens`` rows, each shape timed alone
    (best of ``repeats``), weighted by how often it occurs. Why: a square matmul of 1024-2048 is the
    machine's peak, but a 135M model's layers are 576 wide and a batch is a few hundred tokens; this says
    how much of the gap the shapes alone explain (MFU against the peak stays the verdict)."""
    from collections import Counter

    shapes = Counter((m.in_features, m.out_features) for m in _linears(model, skip))
    dev = next(model.parameters()).device
    rows = max(tokens, 1)
    flops = seconds = 0.0
    for (k, n), count in shapes.items():
        flops += count * 2.0 * rows * k * n
        seconds += count * _fastest_mm(torch.randn(rows, k, device=dev), torch.randn(k, n, device=dev), repeats)
    return flops / seconds if seconds else 0.0


def streamed_ceiling(model: nn.Module, tokens: int, repeats: int = 3,
                     skip: tuple[str, ...] = ("lm_head", "embed", "lora_")) -> float:
    """FLOP/s of one forward's matmuls alone: the model's own linear layers in order, each with its own
    weight, back to back on ``tokens`` rows (best of ``repeats`` passes). Why beside ``shape_ceiling``:
    a shape timed alone reuses one weight that stays in cache, while a forward reads each of its ~400 MB
    of weights once; this is the matmul speed a forward can reach on this machine before any element-wise
    work, attention or framework overhead."""
    linears = _linears(model, skip)
    if not linears:
        return 0.0
    dev = linears[0].weight.device
    rows = max(tokens, 1)
    dtype = linears[0].weight.dtype
    inputs = {m.in_features: torch.randn(rows, m.in_features, device=dev, dtype=dtype) for m in linears}
    flops = sum(2.0 * rows * m.in_features * m.out_features for m in linears)
    best = float("inf")
    with torch.inference_mode():
        for attempt in range(repeats + 1):      # the first pass warms up (kernel choice, page faults)
            t = time.perf_counter()
            for m in linears:
                torch.nn.functional.linear(inputs[m.in_features], m.weight)
            _sync(dev)
            if attempt:
                best = min(best, time.perf_counter() - t)
    return flops / best


class PeakSamples:
    """The machine's matmul peak sampled between the measured batches: ``sample()`` after each, then
    ``median``. Why: on a shared VM the peak drifts (220-320 GFLOP/s within one run here), so a peak
    taken once, or the higher of before/after, misjudges the work measured in between."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.device, self.dtype, self.values = device, dtype, []

    def sample(self) -> float:
        value = matmul_peak(self.device, self.dtype, repeats=2)
        self.values.append(value)
        return value

    @property
    def median(self) -> float:
        import statistics

        return statistics.median(self.values) if self.values else self.sample()


def ceiling_entry(model: nn.Module, tokens: int, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The shape ceiling with the peak timed right after it, so their ratio is of one moment."""
    ceiling = shape_ceiling(model, tokens)
    streamed = streamed_ceiling(model, tokens)
    peak = matmul_peak(device, repeats=2)
    return {"ceiling_tokens": tokens, "shape_ceiling_gflops": ceiling / 1e9,
            "ceiling_fraction_of_peak": ceiling / peak if peak else 0.0,
            "streamed_ceiling_gflops": streamed / 1e9, "streamed_fraction_of_peak": streamed / peak if peak else 0.0}


def mfu_entry(flops: float, seconds: float, peak: float, bar: float) -> dict[str, Any]:
    """The figures a bench records: achieved FLOP/s, the peak, their ratio and whether the bar holds."""
    achieved = flops / seconds if seconds > 0 else 0.0
    ratio = achieved / peak if peak > 0 else 0.0
    return {"achieved_gflops": achieved / 1e9, "peak_gflops": peak / 1e9, "mfu": ratio, "bar": bar,
            "meets_bar": ratio >= bar}


QUIET_OTHERS = 0.25   # the bars are judged when other processes used less than this many cores meanwhile


class OtherLoad:
    """How many cores processes other than this one (and its children) kept busy while the bench ran.

    Why not the load average: the bench's own threads raise it (two threads on two cores put it near 2
    within a minute), so a load read at the end says nothing about interference. This counts the
    machine's busy CPU time minus our own, over the wall time between ``start`` and ``stop``."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._t0 = time.perf_counter()
        self._busy0, self._own0 = self._busy(), self._own()
        self.cores: float | None = None

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(v for k, v in t._asdict().items() if k not in ("idle", "iowait", "guest", "guest_nice"))

    def _own(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> float:
        """Cores used by others, averaged over the run (clamped at 0: the counters tick at different rates)."""
        wall = max(time.perf_counter() - self._t0, 1e-9)
        self.cores = round(max(0.0, (self._busy() - self._busy0) - (self._own() - self._own0)) / wall, 3)
        return self.cores


def machine() -> dict[str, Any]:
    """The processor a figure was measured on, as far as the OS and PyTorch tell.

    Why: the same code reaches 64% of the peak on one of this workplace's VMs (Intel, AMX, an fp32 peak of
    250-310 GFLOP/s on 2 cores) and 76% on another (AMD, AVX2, ~120 GFLOP/s): the faster the matmuls, the
    larger the share of a forward that the rest (norms, attention, copies) takes. A ratio is only
    comparable on the machine it names."""
    info: dict[str, str] = {}
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in info:
                info[key] = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    from backend.models.device import cpu_has_bf16_units

    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    simd = ("AMX" if amx else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
            else "no AVX2" if flags else "unknown")
    return {"cpu": info.get("model name") or platform.processor() or "unknown",
            "family_model": f"{info['cpu family']}/{info['model']}" if "cpu family" in info and "model" in info else "",
            "arch": platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "simd": simd, "bf16_units": cpu_has_bf16_units(), "torch": torch.__version__}


def machine_label(m: dict[str, Any]) -> str:
    """``AMD EPYC (family/model 25/1), AVX2, no bf16 units, 2 cores``: the key figures are kept under."""
    fam = f" (family/model {m['family_model']})" if m.get("family_model") else ""
    units = "bf16 units" if m.get("bf16_units") else "no bf16 units"
    return f"{m.get('cpu', 'unknown')}{fam}, {m.get('simd', 'unknown')}, {units}, {m.get('cores')} cores"


def by_machine(previous: dict[str, Any] | None, figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The latest MFU figures of each machine the bench ever ran on: ``previous`` (the last results file's
    ``mfu_by_machine``) with this run's ``figures`` (name -> mfu_entry) put under this machine.

    Why: a rerun on another kind of VM would otherwise overwrite the only figures of the first kind, and a
    bar met on one machine would read as met everywhere."""
    from backend.recording import code_version     # what a run records as its code: the same words here

    out = dict((previous or {}).get("mfu_by_machine") or {})
    m = machine()
    out[machine_label(m)] = {"date": time.strftime("%Y-%m-%d"), "commit": code_version(), "machine": m,
                             "figures": {name: {k: e[k] for k in ("mfu", "peak_gflops", "achieved_gflops", "bar",
                                                                   "meets_bar") if k in e}
                                         for name, e in figures.items()}}
    return out


def by_machine_lines(table: dict[str, Any]) -> list[str]:
    """Markdown: one row per machine and figure, the latest run on each."""
    if not table:
        return []
    lines = ["| machine | date, commit | figure | MFU | fp32 peak GFLOP/s | bar |", "|---|---|---|---|---|---|"]
    for label, run in table.items():
        for name, f in run["figures"].items():
            verdict = "meets" if f.get("meets_bar") else "BELOW"
            lines.append(f"| {label} | {run.get('date', '')}, {run.get('commit') or '-'} | {name} | "
                         f"{percent(f['mfu'], f['bar'])} | {f.get('peak_gflops', 0):.0f} | {verdict} {100 * f['bar']:.0f}% |")
    return lines


def percent(mfu: float, bar: float) -> str:
    """``64%``; one decimal where the whole number would read as the bar itself (54.9% below a 55% bar)."""
    for digits in (0, 1, 2):
        shown, at_bar = f"{100 * mfu:.{digits}f}", f"{100 * bar:.{digits}f}"
        if shown != at_bar or mfu == bar:
            return f"{shown}%"
    return f"{100 * mfu:.3f}%"


def mfu_line(name: str, entry: dict[str, Any], others: float | None = None) -> str:
    """One markdown line: what a reader checks first. When other processes kept the machine busy
    (``others``: cores they used meanwhile, >= QUIET_OTHERS) the verdict says so: the peak is the best
    of short matmuls, which catch whole time slices, while the measured work is sustained, so the ratio
    then understates."""
    verdict = "meets" if entry["meets_bar"] else "BELOW"
    line = (f"{name}: {entry['achieved_gflops']:.1f} GFLOP/s achieved against a {entry['peak_gflops']:.1f} GFLOP/s "
            f"matmul peak = **{percent(entry['mfu'], entry['bar'])} MFU** ({verdict} the {100 * entry['bar']:.0f}% bar).")
    if entry.get("ceiling_fraction_of_peak"):
        frac = entry["ceiling_fraction_of_peak"]
        line += (f" The model's own matmul shapes at {entry.get('ceiling_tokens')} tokens a forward, timed alone, "
                 f"run at {100 * frac:.0f}% of the peak: ours reaches {100 * entry['mfu'] / frac:.0f}% of what "
                 "its shapes allow.")
    if entry.get("streamed_fraction_of_peak"):
        frac = entry["streamed_fraction_of_peak"]
        line += (f" Its matmuls alone, back to back with the model's own weights (each read once, as a forward "
                 f"reads them), run at {100 * frac:.0f}% of the peak: ours reaches {100 * entry['mfu'] / frac:.0f}% "
                 "of that.")
    if others is not None and others >= QUIET_OTHERS:
        line += (f" Not a verdict: other processes kept {others:.2f} cores busy meanwhile (>= {QUIET_OTHERS}); "
                 "rerun on a quiet machine.")
    elif others is not None:
        line += f" Other processes used {others:.2f} cores meanwhile."
    return line
