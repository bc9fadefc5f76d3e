"""Serving trained runs: several runs of any method answered on one shared base model, each scoring exactly
what its own reloaded run scores."""
from __future__ import annotations

import pytest
import torch

from backend.serving import MultiRunServer
from backend.training import load_trained
from tests.tiny import tiny_model
from tests.training_helpers import DATA, train_tiny


@pytest.mark.slow
def test_several_runs_served_on_one_base(smol_tok, tmp_path):
    runs = {"soft": {"name": "soft-prompt"}, "lora1": {"name": "lora", "r": 4}, "lora2": {"name": "lora"},
            "prefix": {"name": "prefix-tuning", "num_tokens": 4}}
    for key, method in runs.items():
        train_tiny("causal", smol_tok, method, tmp_path / key, lr=0.02)
    server = MultiRunServer(tiny_model("causal", smol_tok))
    for key in runs:
        server.attach(key, tmp_path / key)
    base_params = {id(p) for p in server.base.parameters()}
    for key in ["lora1", "soft", "lora2", "prefix", "lora1"]:      # switch back and forth
        got = server.scores(key, DATA.dev)
        want = _standalone_scores(tmp_path / key, "causal", smol_tok, DATA.dev)
        assert (got - want).abs().max() <= 1e-5, key
    assert base_params <= {id(p) for p in server.base.parameters()}   # the base was never reloaded
    out = server.predict("lora2", ["what a lovely film"])
    assert set(out[0]["probs"]) == {"negative", "positive"}


def _standalone_scores(run_dir, kind, tok, examples):
    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.prompts.encode import describe_tokenizer

    ref = load_trained(run_dir, tiny_model(kind, tok).model, tok).pm.eval()
    encs = encode_examples(ref.template, examples, tok, EncodeSettings(profile=kind))
    with torch.no_grad():
        return ref(collate(encs, describe_tokenizer(tok).pad_id))


@pytest.mark.slow
def test_adapter_and_bitfit_runs_share_the_base(bert_tok, tmp_path):
    """Adapters are switched on per request and BitFit biases swapped in and back: no copy of the base."""
    runs = {"pfeiffer": {"name": "adapter"}, "houlsby": {"name": "adapter", "style": "houlsby"},
            "bitfit": {"name": "bitfit"}, "lora": {"name": "lora"}, "soft": {"name": "soft-prompt"}}
    for key, method in runs.items():
        train_tiny("masked", bert_tok, method, tmp_path / key, lr=0.05)
    server = MultiRunServer(tiny_model("masked", bert_tok))
    pristine = {n: p.detach().clone() for n, p in server.base.named_parameters()}
    for key in runs:
        server.attach(key, tmp_path / key)
    for key in ("pfeiffer", "houlsby", "bitfit"):
        assert server.runs[key].pm.plm is server.base
    want = {key: _standalone_scores(tmp_path / key, "masked", bert_tok, DATA.dev) for key in runs}
    assert (want["bitfit"] - want["soft"]).abs().max() > 1e-4      # the runs really differ
    for key in ["bitfit", "pfeiffer", "soft", "houlsby", "lora", "bitfit", "soft"]:
        got = server.scores(key, DATA.dev)
        assert (got - want[key]).abs().max() <= 1e-5, key
    # BitFit's biases went back after every request (LoRA's host renames wrapped layers to .base_layer).
    after = {n.replace(".base_layer", ""): p for n, p in server.base.named_parameters() if "lora_" not in n}
    assert after.keys() == pristine.keys()
    for name, value in pristine.items():
        assert torch.equal(after[name], value), name
