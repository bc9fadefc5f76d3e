"""``python -m backend ...`` prints the result on stdout and only progress on stderr: no library noise.

Why: transformers 5 drew a "Loading weights" bar on every command and PEFT's use of a deprecated
transformers property printed a FutureWarning on every training run; ``... > out.json`` must be clean JSON
and the terminal must show only what the user needs. Each command runs in a subprocess, as a user runs it.
"""
from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest

from tests.cli_helpers import backend_cli
from tests.job_helpers import write_assets

NOISE = ("FutureWarning", "DeprecationWarning", "Loading weights", "Writing model shards", "warnings.warn",
         "Traceback")


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = backend_cli(*args, drop_env=("PYTHONWARNINGS",))   # Python's default filters: a FutureWarning would show
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _assert_quiet(stderr: str) -> None:
    noisy = [line for line in stderr.replace("\r", "\n").splitlines() if any(n in line for n in NOISE)]
    assert not noisy, f"library noise on stderr: {noisy[:5]}"


@pytest.fixture(scope="module")
def configs(tmp_path_factory, bert_tok) -> dict[str, Path]:
    root = write_assets(tmp_path_factory.mktemp("quiet"), bert_tok, repeat=2)
    train = {"model": str(root / "model"), "template": "{text_a} {soft} It was {mask}.",
             "verbalizer": {"negative": ["bad"], "positive": ["good"]},
             "data": {"train": str(root / "data.jsonl"), "eval": str(root / "dev.jsonl")},
             "method": {"name": "lora", "r": 4}, "train": {"steps": 2, "batch_size": 4, "eval_every": None}}
    evaluate = {k: v for k, v in train.items() if k not in ("method", "train")}
    evaluate["data"] = {"eval": str(root / "dev.jsonl")}
    evaluate["template"] = "{text_a} It was {mask}."
    paths = {"train": root / "train.json", "eval": root / "eval.json"}
    paths["train"].write_text(json.dumps(train))
    paths["eval"].write_text(json.dumps(evaluate))
    return paths


def test_eval_stdout_is_exactly_the_metrics_json_and_stderr_is_quiet(configs):
    proc = _run("eval", str(configs["eval"]), "--no-db")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    out = json.loads(lines[0])
    assert set(out) >= {"accuracy", "macro_f1", "n", "accuracy_ci_low", "accuracy_ci_high"}
    # the 95% bootstrap interval over the rows scored
    assert out["accuracy_ci_low"] <= out["accuracy"] <= out["accuracy_ci_high"]
    assert proc.stderr.strip() == "", proc.stderr


def test_train_stdout_is_exactly_the_result_json_and_stderr_only_progress(configs):
    proc = _run("train", str(configs["train"]), "--no-db")
    result = json.loads(proc.stdout)            # the whole of stdout is one JSON document
    assert result["status"] == "succeeded" and result["steps"] == 2
    _assert_quiet(proc.stderr)
    assert "2/2" in proc.stderr                 # the progress is there, on stderr
    # unrecorded and no train.output_dir: the weights go to the studio's home (they went to a /tmp folder
    # nobody named or cleaned), and stderr says where
    home = Path(os.environ["PROMPT_STUDIO_HOME"])
    [out] = [line.split(" go to ", 1)[1] for line in proc.stderr.splitlines()
             if "weights and checkpoints go to" in line]
    assert Path(out).parent == home / "runs" and (Path(out) / "result.json").exists()


def test_quiet_hf_restores_the_bar_setting_and_keeps_other_warnings():
    from transformers.utils import logging as hf_logging

    from backend.models.quiet import quiet_hf

    assert hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_hf():
            assert not hf_logging.is_progress_bar_enabled()
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
            warnings.warn("the user's own deprecation", FutureWarning)
    assert hf_logging.is_progress_bar_enabled()
    assert [str(w.message) for w in seen] == ["the user's own deprecation"]


@pytest.mark.slow
def test_smollm2_eval_from_the_embedded_gguf_is_quiet():
    """The default model (converted GGUF cache; converted first if this machine has none: ~30 s)."""
    from backend.errors import ModelError
    from backend.models import embedded_gguf

    try:
        embedded_gguf()
    except ModelError:
        pytest.skip("the embedded SmolLM2 GGUF is not installed")
    proc = _run("eval", "demo", "--no-db", "--limit", "4")
    assert json.loads(proc.stdout)["n"] == 4
    _assert_quiet(proc.stderr)
