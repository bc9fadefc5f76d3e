"""bench/gpu_check.py's CPU fallback on a tiny causal model: every check that can run without CUDA runs and
passes, the ones that need CUDA say so, and the table and JSON it writes say the same (into a tmp dir,
never over the committed bench/results/gpu.md)."""
from __future__ import annotations

import json

import pytest
import torch

from bench import gpu_check
from tests.tiny import smol_tokenizer, tiny_model


@pytest.fixture(scope="module")
def tiny_causal_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-check-model")
    tok = smol_tokenizer()
    tiny_model("causal", tok).model.save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; on CUDA run the script itself")
def test_cpu_fallback_runs_every_path_it_can(tiny_causal_dir, tmp_path):
    code = gpu_check.main(["--model", str(tiny_causal_dir), "--steps", "2", "--train-rows", "8", "--dev-rows", "24",
                           "--skip", "worker", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu.json").read_text())
    rows = report["rows"]
    failed = [r for r in rows if r["result"] != "ok" and not r["result"].startswith("not run")]
    assert code == 0 and not failed, failed
    by = {(r["check"], r["setting"]): r for r in rows}
    trained = {s.split(",")[0] for (c, s), r in by.items() if c == "train" and r["result"] == "ok"}
    # every method that trains a causal LM ran in bf16 (bitfit: Llama has no bias terms, refused with why)
    assert trained >= set(gpu_check._methods()) - {"bitfit"}, trained
    assert all("bfloat16" in r["details"] for (c, s), r in by.items() if c == "train" and r["result"] == "ok")
    assert by[("train", "every method, fp16 + GradScaler")]["result"] == gpu_check.NO_CUDA
    assert by[("matmul", "fp16")]["result"] == gpu_check.NO_CUDA
    assert by[("matmul", "fp32")]["gflops"] > 0 and by[("matmul", "bf16")]["gflops"] > 0
    assert {s for c, s in by if c == "packed"} == {"float32", "bfloat16"}
    assert "lean grouped-query kernel" in by[("lean", "attention on cpu")]["details"]
    ev = next(r for (c, _), r in by.items() if c == "eval")
    assert ev["examples_per_s"] > 0 and 0 < ev["mfu"] and ev["peak_mb"] > 0
    assert all(len(r["losses"]) == 2 for (c, _), r in by.items() if c == "train" and r["result"] == "ok")
    from accelerate import Accelerator   # accelerate's process-wide state is left clean for what runs next

    Accelerator(cpu=True, mixed_precision="no")
    md = (tmp_path / "gpu.md").read_text()
    assert md.count("\n| ") == len(rows) + 1 and "not run: no CUDA" in md and "checks that ran passed" in md


def test_random_weights_run_the_architecture_from_a_config_and_tokenizer_alone(tiny_causal_dir, tmp_path):
    """What the lent GPU machine gets (the real weights cannot travel): config.json and the tokenizer, no
    weights; gpu_check builds that architecture with seeded random weights and says so in its report."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_causal_dir, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    assert not list(bare.glob("*.safetensors"))
    code = gpu_check.main(["--random-weights", str(bare), "--steps", "1", "--dev-rows", "16",
                           "--skip", "matmul,train,worker", "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert code == 0 and {r["check"] for r in report["rows"]} == {"packed", "lean", "eval"}
    assert all(r["result"] == "ok" for r in report["rows"]), report["rows"]
    assert report["environment"]["model"] == "bare architecture, random weights"
    assert "accuracies are chance" in (tmp_path / "out" / "gpu.md").read_text()
    one = gpu_check.random_weights_model(bare, tmp_path / "one")
    two = gpu_check.random_weights_model(bare, tmp_path / "two")
    from safetensors.torch import load_file   # seeded: two builds are the same model

    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
