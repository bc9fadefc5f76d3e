"""The GPU path, checked end to end: one short script to run when a CUDA machine is lent (<= 8 minutes on
SmolLM2), and its CPU fallback in CI (tests/test_gpu_check.py, tiny model).

    .venv/bin/python bench/gpu_check.py [--model smollm2-135m-instruct] [--steps 3] [--out bench/results]
                                        [--skip worker,...]

Checks, each a row of the table (ok / FAILED / not run: why):
  matmul    peak FLOP/s per dtype (fp32, bf16, and fp16 on CUDA): the denominators of the MFU figures
  train     every method that trains a causal LM, a few steps through run_training (the accelerator, autocast
            and, for fp16, the GradScaler the training loop uses), in bf16 and fp16: the compute dtype the
            Linear layers actually ran in, whether loss scaling was on, finite loss, s/step, peak memory
  packed    packed rows == the same rows padded (same weights, under autocast in the run's dtype): one
            sequence attended row by row (our attention), else packs under a boolean block-diagonal mask
  lean      which attention function ran: the lean grouped-query kernel (CPU) or transformers' SDPA (CUDA,
            where lean_sdpa_forward falls back), and that it matches stock SDPA
  eval      zero-shot throughput in the model's default dtype (bf16 on CUDA), MFU against that dtype's
            matmul peak, peak memory
  worker    a run queued through the studio's JobRunner, trained by its child process: the run succeeds and,
            on CUDA, device memory in use rises while the child runs (the child uses the GPU)
Peak memory: torch.cuda.max_memory_allocated on CUDA, the process's peak RSS (VmHWM, reset per check) on
CPU. Results: <out>/gpu.md and gpu.json; exit status 1 when a check FAILED.

On the lent GPU machine the real weights cannot travel (SmolLM2's GGUF is 98 MB, a call carries 64 MiB), so
``--random-weights DIR`` builds the same architecture from ``DIR``'s config.json with seeded random weights
and the real tokenizer beside it, saves it as a local model folder and runs every check on that:
speed, memory, dtypes, packing, the attention path and the worker are the architecture's; accuracies are
chance and the report says so. ``bench/gpu_bundle.py`` makes that folder and the wheels the machine lacks.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mfu import forward_flops, matmul_peak, mfu_entry, needed_tokens, non_embedding_params  # noqa: E402

SST2 = ROOT.parent / "shared" / "datasets" / "sst2"
BUILTIN = ROOT / "backend" / "data" / "builtin" / "movie-reviews"
TEMPLATE = "Review: {text_a} Sentiment (positive or negative):{mask}"
SOFT_TEMPLATE = "{soft} {soft} Review: {text_a} Sentiment (positive or negative):{mask}"
VERBALIZER = {"negative": ["negative"], "positive": ["positive"]}
NO_CUDA = "not run: no CUDA"
EVAL_MFU_BAR = 0.65


# ------------------------------------------------------------------------------------------- helpers

def _row(check: str, setting: str, result: str, details: str = "", **figures: Any) -> dict[str, Any]:
    return {"check": check, "setting": setting, "result": result, "details": details, **figures}


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        try:
            Path("/proc/self/clear_refs").write_text("5")   # Linux: VmHWM back to the current RSS
        except OSError:
            pass


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _examples(path: Path, limit: int) -> list:
    from backend.prompts.example import Example

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()][:limit]
    return [Example(guid=i, text_a=r["text_a"], label=r["label"]) for i, r in enumerate(rows)]


def _data(n_train: int, n_dev: int) -> tuple[list, list, str]:
    root = SST2 if (SST2 / "dev.jsonl").exists() else BUILTIN
    train = _examples(root / "train.jsonl", 4 * n_train)
    by: dict[str, list] = {}
    for e in train:
        by.setdefault(e.label, []).append(e)
    train = [e for rows in zip(*by.values()) for e in rows][:n_train]   # classes alternate
    return train, _examples(root / "dev.jsonl", n_dev), root.name


class DtypeSpy:
    """Records the output dtypes of every nn.Linear while active (a global forward hook): what autocast
    really ran the matmuls in, not what was asked."""

    def __enter__(self) -> set[str]:
        self.seen: set[str] = set()

        def hook(module: torch.nn.Module, _args: Any, out: Any) -> None:
            if isinstance(module, torch.nn.Linear) and isinstance(out, torch.Tensor):
                self.seen.add(str(out.dtype).removeprefix("torch."))
        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self.seen

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def _capture_accelerators(box: list) -> Callable[[], None]:
    """Keep every Accelerator run_training makes (to read its mixed precision and GradScaler).

    accelerate keeps one process-wide state and refuses a second Accelerator with another mixed precision
    ("AcceleratorState has already been initialized and cannot be changed"), so the state is cleared
    before each run and after the last: bf16 then fp16 in one process, and whatever runs next starts clean."""
    import backend.training.run as run_mod
    from accelerate.state import AcceleratorState

    original = run_mod._accelerator

    def spy(precision: str, device: torch.device) -> Any:
        AcceleratorState._reset_state(reset_partial_state=True)
        acc = original(precision, device)
        box.append(acc)
        return acc

    def restore() -> None:
        run_mod._accelerator = original
        AcceleratorState._reset_state(reset_partial_state=True)
    run_mod._accelerator = spy
    return restore


def random_weights_model(config_dir: Path, dest: Path, seed: int = 0) -> Path:
    """A local model folder at ``dest``: ``config_dir``'s architecture with seeded random weights, and its
    tokenizer files (what load_model reads from any local folder)."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    for f in config_dir.iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.endswith((".safetensors", ".bin", ".gguf")):
            shutil.copy2(f, dest / f.name)
    return dest


# ------------------------------------------------------------------------------------------- checks

def check_matmul(device: torch.device) -> tuple[list[dict], dict[str, float]]:
    rows, peaks = [], {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if name == "fp16" and device.type != "cuda":
            rows.append(_row("matmul", name, NO_CUDA, "CPU fp16 matmuls are not a path the studio uses"))
            continue
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            rows.append(_row("matmul", name, "not run: this GPU has no bf16"))
            continue
        peaks[name] = matmul_peak(device, dt, sizes=(512, 1024) if device.type == "cpu" else None, repeats=4)
        rows.append(_row("matmul", name, "ok", f"{peaks[name] / 1e9:.1f} GFLOP/s", gflops=peaks[name] / 1e9))
    return rows, peaks


def _methods() -> list[str]:
    from backend.methods import REGISTRY

    return [name for name, cls in REGISTRY.items() if cls.trains and "causal" in cls.kinds]


def check_training(loaded32: Any, device: torch.device, train: list, dev: list, steps: int,
                   methods: list[str]) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ps-gpu-check-") as tmp:
        _train_all(loaded32, device, train, dev, steps, methods, Path(tmp), rows)
    return rows


def _train_all(loaded32: Any, device: torch.device, train: list, dev: list, steps: int, methods: list[str],
               scratch: Path, rows: list[dict]) -> None:
    from backend.config import RunConfig
    from backend.errors import StudioError
    from backend.training.events import MemorySink
    from backend.training.run import RunData, run_training

    for precision in ("bf16", "fp16"):
        if precision == "fp16" and device.type != "cuda":
            rows.append(_row("train", "every method, fp16 + GradScaler", NO_CUDA,
                             "refused on CPU: accelerate would train in fp32 under an fp16 config"))
            continue
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            rows.append(_row("train", "every method, bf16", "not run: this GPU has no bf16"))
            continue
        for name in methods:
            template = SOFT_TEMPLATE if name in ("soft-prompt", "p-tuning") else TEMPLATE
            cfg = RunConfig.from_dict({"model": loaded32.model_id, "template": template, "verbalizer": VERBALIZER,
                                       "data": {"eval": "gpu-check"}, "method": {"name": name}, "max_length": 96,
                                       "train": {"steps": steps, "batch_size": 8, "mixed_precision": precision,
                                                 "output_dir": str(scratch / f"{name}-{precision}")},
                                       "eval": {"batch_size": 32}})
            fresh = dataclasses.replace(loaded32, model=copy.deepcopy(loaded32.model))
            accelerators: list = []
            sink = MemorySink()
            restore = _capture_accelerators(accelerators)
            _reset_peak(device)
            t0 = time.perf_counter()
            try:
                with DtypeSpy() as dtypes:
                    res = run_training(cfg, loaded=fresh, data=RunData(train=train, dev=dev), sink=sink,
                                       owns_model=True)   # its own copy: frozen weights stored as the job child does
            except StudioError as exc:
                rows.append(_row("train", f"{name}, {precision}", "not run: " + str(exc).split(";")[0][:160]))
                continue
            finally:
                restore()
                del fresh
            acc = accelerators[-1] if accelerators else None
            scaler = acc is not None and acc.scaler is not None
            losses = sink.values("train/loss")
            want = {"bf16": "bfloat16", "fp16": "float16"}[precision]
            problems = []
            if want not in dtypes:
                problems.append(f"no Linear ran in {want} (saw {sorted(dtypes)})")
            if precision == "fp16" and not scaler:
                problems.append("fp16 without a GradScaler")
            if len(losses) != steps or not all(math.isfinite(x) for x in losses):
                problems.append(f"training losses {losses}")
            if res.status != "succeeded" or res.steps != steps:
                problems.append(f"status {res.status} after {res.steps} steps")
            acc_metric = res.metrics.get("accuracy", math.nan)
            if not math.isfinite(acc_metric):
                problems.append("final accuracy is not finite")
            rows.append(_row("train", f"{name}, {precision}", "FAILED: " + "; ".join(problems) if problems else "ok",
                             f"Linear outputs (steps and evaluations) {'/'.join(sorted(dtypes))}, loss scaling {'on' if scaler else 'off'}, "
                             f"losses {', '.join(f'{x:.3f}' for x in losses)}, dev accuracy {acc_metric:.3f}",
                             s_per_step=(sink.values("train/seconds_per_step") or [math.nan])[-1],
                             peak_mb=_peak_mb(device), losses=losses, wall_s=time.perf_counter() - t0))


def _prompt_model(loaded: Any, template: str = TEMPLATE) -> Any:
    from backend.config import RunConfig
    from backend.pipeline import build_prompt_model

    cfg = RunConfig.from_dict({"template": template, "verbalizer": VERBALIZER, "data": {"eval": "gpu-check"}})
    return build_prompt_model(loaded, cfg, ["negative", "positive"])


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def check_packed(loaded32: Any, device: torch.device, dev: list) -> list[dict]:
    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.prompts.encode import describe_tokenizer

    rows = []
    pm, tpl, _ = _prompt_model(loaded32)
    info = describe_tokenizer(loaded32.tokenizer)
    by_length = sorted(dev, key=lambda e: len(e.text_a))
    rows_in = by_length[:6] + by_length[-2:]   # short and long rows: padding them wastes work, so they pack
    encs = encode_examples(tpl, rows_in, loaded32.tokenizer, EncodeSettings(profile=loaded32.kind, max_length=96), info)
    batch = collate(encs, info.pad_id, device)
    dtypes = [torch.float32, torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    for dt in dtypes:
        pm.train()   # packing is the training path
        with torch.no_grad(), _autocast(device, dt):
            packs = pm.packing(batch, pm.shared_prefix_length(batch))
            packed = pm.mask_hidden(batch).float()
            pm.pack = False
            try:
                padded = pm.mask_hidden(batch).float()
            finally:
                pm.pack = True
        pm.eval()
        diff = float((packed - padded).abs().max() / padded.abs().max().clamp_min(1e-6))
        tol = 1e-4 if dt == torch.float32 else 3e-2
        name = str(dt).removeprefix("torch.")
        if packs is None:
            rows.append(_row("packed", name, f"FAILED: rows were not packed ({loaded32.kind} model)"))
            continue
        rows.append(_row("packed", name, "ok" if diff <= tol else f"FAILED: relative difference {diff:.2e} > {tol}",
                         f"{len(encs)} rows " + ("in one sequence, attended row by row" if pm.attends_per_row
                                                 else f"in {len(packs)} pack(s)")
                         + f", relative max difference {diff:.1e}",
                         rel_diff=diff))
    return rows


def check_lean(loaded32: Any, device: torch.device, dev: list) -> list[dict]:
    import backend.models.lean as lean
    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.prompts.encode import describe_tokenizer

    model = loaded32.model
    if getattr(model.config, "_attn_implementation", None) != lean.LEAN_SDPA:
        return [_row("lean", "attention", "not run: the model is not on the lean attention path",
                     f"attention implementation {model.config._attn_implementation}")]
    calls = {"fallback": 0}
    original = lean.sdpa_attention_forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["fallback"] += 1
        return original(*args, **kwargs)
    pm, tpl, _ = _prompt_model(loaded32)
    pm.share_prefix, pm.pack = False, False   # a plain padded batch: the attention mask is what decides the path
    info = describe_tokenizer(loaded32.tokenizer)
    encs = encode_examples(tpl, dev[:8], loaded32.tokenizer, EncodeSettings(profile=loaded32.kind, max_length=96), info)
    batch = collate(encs, info.pad_id, device)
    lean.sdpa_attention_forward = counting
    try:
        with torch.no_grad():
            mine = pm.mask_hidden(batch).float()
    finally:
        lean.sdpa_attention_forward = original
    model.set_attn_implementation("sdpa")
    try:
        with torch.no_grad():
            stock = pm.mask_hidden(batch).float()
    finally:
        model.set_attn_implementation(lean.LEAN_SDPA)
    diff = float((mine - stock).abs().max() / stock.abs().max().clamp_min(1e-6))
    layers = model.config.num_hidden_layers
    expected = "fallback" if device.type != "cpu" else "lean"
    took = "fallback" if calls["fallback"] >= layers else ("lean" if calls["fallback"] == 0 else "mixed")
    ok = took == expected and diff <= 1e-4
    what = {"fallback": "transformers' SDPA (fallback)", "lean": "lean grouped-query kernel", "mixed": "mixed"}
    return [_row("lean", f"attention on {device.type}", "ok" if ok else f"FAILED: ran {what[took]}, diff {diff:.1e}",
                 f"{what[took]} in {layers} layers, relative max difference to stock SDPA {diff:.1e}", rel_diff=diff)]


def check_eval(loaded: Any, device: torch.device, dev: list, peaks: dict[str, float]) -> list[dict]:
    from backend.batching import EncodeSettings, encode_examples
    from backend.evaluate import evaluate

    pm, tpl, _ = _prompt_model(loaded)
    settings = EncodeSettings(profile=loaded.kind, max_length=128)
    evaluate(pm, loaded.tokenizer, dev[:8], settings=settings, batch_size=8, with_predictions=False)   # warm-up
    _reset_peak(device)
    res = evaluate(pm, loaded.tokenizer, dev, settings=settings, batch_size=32, with_predictions=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tokens = needed_tokens(encode_examples(tpl, dev, loaded.tokenizer, settings), loaded.kind)
    name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(loaded.dtype, "fp32")
    n = non_embedding_params(loaded.model)
    entry = mfu_entry(forward_flops(n, tokens), res.metrics["seconds"], peaks.get(name, 0.0), EVAL_MFU_BAR)
    return [_row("eval", f"zero-shot, {name}, {len(dev)} rows", "ok",
                 f"{res.metrics['examples_per_s']:.1f} ex/s, {tokens / res.metrics['seconds']:.0f} tokens/s, "
                 f"{100 * entry['mfu']:.0f}% MFU of the {name} matmul peak, accuracy {res.metrics['accuracy']:.3f}",
                 examples_per_s=res.metrics["examples_per_s"], peak_mb=_peak_mb(device), **entry)]


def check_worker(spec: str, device: torch.device, timeout_s: float = 240.0) -> list[dict]:
    from backend.config import RunConfig
    from backend.services.jobs import JobRunner
    from storage import open_store

    root = SST2 if (SST2 / "dev.jsonl").exists() else BUILTIN
    with tempfile.TemporaryDirectory(prefix="ps-gpu-worker-") as tmp:
        store = open_store(f"sqlite:///{tmp}/studio.db")
        runner = JobRunner(store, log_dir=Path(tmp) / "logs").start()
        try:
            cfg = RunConfig.from_dict({"model": spec, "template": TEMPLATE, "verbalizer": VERBALIZER,
                                       "data": {"train": str(root / "train.jsonl"), "eval": str(root / "dev.jsonl"),
                                                "shots": 8, "limit": 64},
                                       "method": {"name": "lora"},
                                       "train": {"steps": 3, "batch_size": 8, "output_dir": f"{tmp}/out"}})
            base = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
            used_max, t0 = 0, time.monotonic()
            run_id = runner.submit(cfg)
            while store.get_run(run_id).status in ("queued", "running") and time.monotonic() - t0 < timeout_s:
                if device.type == "cuda":
                    used_max = max(used_max, base - torch.cuda.mem_get_info(device)[0])
                time.sleep(0.05)
            info = store.get_run(run_id)
            tail = " | ".join(runner.log_tail(run_id, 3))
        finally:
            runner.stop()
            store.close()
    if info.status != "succeeded":
        return [_row("worker", "JobRunner child, lora 3 steps", f"FAILED: run {info.status}", tail[-300:])]
    if device.type != "cuda":
        return [_row("worker", "JobRunner child, lora 3 steps", "ok",
                     f"succeeded in {time.monotonic() - t0:.0f} s on CPU; GPU use {NO_CUDA}")]
    gpu = used_max > 64 * 2 ** 20
    return [_row("worker", "JobRunner child, lora 3 steps", "ok" if gpu else "FAILED: the child did not use the GPU",
                 f"succeeded in {time.monotonic() - t0:.0f} s; device memory in use rose by {used_max / 2 ** 20:.0f} MiB "
                 "while the child ran", child_gpu_mb=used_max / 2 ** 20)]


# ------------------------------------------------------------------------------------------- report

def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# GPU path check ({env['device_name']}, torch {env['torch']}, model {env['model']})", "",
             f"{report['verdict']}. {env['note']} Wall time {report['wall_s']:.0f} s. Load average at start "
             f"{env['load_average']}.", "",
             "| check | setting | result | details | s/step | peak memory |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        step = f"{r['s_per_step']:.2f}" if "s_per_step" in r else ""
        mem = f"{r['peak_mb']:.0f} MiB" if "peak_mb" in r else ""
        lines.append(f"| {r['check']} | {r['setting']} | {r['result']} | {r['details']} | {step} | {mem} |")
    lines += ["", "Peak memory: torch.cuda.max_memory_allocated on CUDA (reset per check); on CPU the process's "
              "peak resident size (VmHWM, reset per check, so it includes the loaded weights). MFU as in "
              "bench/mfu.py, against the matmul peak of the model's dtype measured in the same run."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model spec (a name, a local path)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--train-rows", type=int, default=16)
    ap.add_argument("--dev-rows", type=int, default=256)
    ap.add_argument("--methods", default="", help="comma-separated subset (default: every method that trains)")
    ap.add_argument("--skip", default="", help="comma-separated checks to leave out: matmul,train,packed,lean,eval,worker")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--random-weights", default=None, metavar="DIR",
                    help="a folder with config.json and tokenizer files: run on that architecture with random "
                         "weights (the lent GPU machine cannot receive the real ones)")
    args = ap.parse_args(argv)
    from backend.models import load_model

    t0 = time.perf_counter()
    scratch = tempfile.TemporaryDirectory(prefix="ps-gpu-model-")
    if args.random_weights:
        args.model = str(random_weights_model(Path(args.random_weights), Path(scratch.name) / "model"))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    loaded32 = load_model(args.model, device=device, dtype="float32")      # training loads fp32 (autocast runs bf16)
    train, dev, source = _data(args.train_rows, args.dev_rows)
    env = {"torch": torch.__version__, "device": device.type, "model": loaded32.model_id,
           "device_name": torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.machine()}, "
                                                                          f"{torch.get_num_threads()} threads)",
           "cuda": torch.version.cuda, "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
           "data": source, "load_average": [round(x, 2) for x in os.getloadavg()],
           "weights": "random (seeded), architecture and tokenizer of " + Path(args.random_weights).name
                      + ": accuracies are chance" if args.random_weights else "as loaded",
           "note": ("CUDA checks ran." if cuda else "No CUDA here: the CPU fallback ran the paths it can (bf16 "
                    "autocast on CPU, packed rows, the lean kernel, eval, the worker); rows marked 'not run: no "
                    "CUDA' need a GPU.") + (f" Left out on request: {', '.join(sorted(skip))}." if skip else "")
                   + (" Weights: random (seeded) on the real architecture and tokenizer, so accuracies are "
                      "chance; speed, memory, dtypes and the equality checks hold." if args.random_weights else "")}
    if args.random_weights:
        env["model"] = f"{Path(args.random_weights).name} architecture, random weights"
    rows: list[dict] = []
    peaks: dict[str, float] = {}
    if "matmul" not in skip:
        r, peaks = check_matmul(device)
        rows += r
    methods = [m for m in args.methods.split(",") if m] or _methods()
    if "train" not in skip:
        rows += check_training(loaded32, device, train, dev[:32], args.steps, methods)
    if "packed" not in skip:
        rows += check_packed(loaded32, device, dev)
    if "lean" not in skip:
        rows += check_lean(loaded32, device, dev)
    if "eval" not in skip:
        loaded = load_model(args.model, device=device) if cuda else loaded32   # default dtype: bf16 on CUDA
        rows += check_eval(loaded, device, dev, peaks)
        del loaded
    if "worker" not in skip:
        rows += check_worker(args.model, device)
    failed = [r for r in rows if r["result"].startswith("FAILED")]
    report = {"environment": env, "rows": rows, "wall_s": time.perf_counter() - t0,
              "verdict": f"{len(failed)} check(s) FAILED" if failed else
              f"all {sum(r['result'] == 'ok' for r in rows)} checks that ran passed"}
    scratch.cleanup()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (out / "gpu.md").write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
