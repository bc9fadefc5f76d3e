"""Mixed precision says what ran: a precision the device cannot run is refused (accelerate would quietly
train in fp32 under a config saying fp16), and a run's evaluations run in the precision it trains in."""
from __future__ import annotations

import pytest
import torch

import backend.training.loop as loop
import backend.training.run as run
from backend.errors import ConfigError
from backend.training import run_training
from tests.tiny import tiny_model
from tests.training_helpers import DATA, train_config


@pytest.fixture
def fresh_accelerate():
    """accelerate keeps one mixed-precision setting per process (a job child runs one run): tests that set
    another start and leave its state fresh."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_fp16_on_cpu_is_refused_not_run_in_fp32(smol_tok, tmp_path):
    cfg = train_config("causal", {"name": "lora"}, tmp_path, steps=1, mixed_precision="fp16")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU") as err:
        run_training(cfg, loaded=tiny_model("causal", smol_tok), data=DATA)
    assert err.value.field == "train.mixed_precision"


def test_bf16_training_evaluates_in_bf16_too(smol_tok, tmp_path, monkeypatch, fresh_accelerate):
    seen = []
    for module in (loop, run):
        def spy(*args, _real=module.evaluate, **kwargs):
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
            return _real(*args, **kwargs)
        monkeypatch.setattr(module, "evaluate", spy)
    cfg = train_config("causal", {"name": "lora"}, tmp_path, steps=2, eval_every=1, mixed_precision="bf16")
    res = run_training(cfg, loaded=tiny_model("causal", smol_tok), data=DATA)
    assert res.status == "succeeded"
    assert seen == [True, True, True]      # two dev evaluations, then the final one
