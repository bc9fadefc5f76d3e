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


@pytest.mark.parametrize("method", [{"name": "lora"}, {"name": "prefix-tuning", "num_tokens": 3},
                                    {"name": "prompt-tuning", "num_tokens": 3}, {"name": "ia3"}])
def test_frozen_linears_stored_in_bf16_give_the_same_step_as_autocast_casting_them(smol_tok, method):
    """What autocast does to a frozen fp32 weight at every forward, done once: the loss and every trained
    gradient are bit-identical, the frozen Linear weights are bf16, the rest keeps its dtype."""
    import copy

    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.methods.build import build_tuned_model
    from backend.models.lean import store_frozen_linears_in
    from backend.prompts.encode import describe_tokenizer
    from backend.prompts.verbalizer import parse_verbalizer
    from tests.training_helpers import TEMPLATE

    lm = tiny_model("causal", smol_tok)
    verb = parse_verbalizer({"negative": ["bad"], "positive": ["good"]})
    opts = {k: v for k, v in method.items() if k != "name"}
    built = [build_tuned_model(copy.deepcopy(lm.model), smol_tok, "causal", TEMPLATE["causal"], verb, method["name"],
                               opts, seed=0) for _ in range(2)]
    changed = store_frozen_linears_in(built[1].pm.plm, torch.bfloat16)
    assert changed > 0
    plm = built[1].pm.plm
    frozen = [m for m in plm.modules() if isinstance(m, torch.nn.Linear) and m is not plm.get_output_embeddings()
              and not m.weight.requires_grad]
    assert frozen and all(m.weight.dtype == torch.bfloat16 for m in frozen)
    assert all(p.dtype == torch.float32 for p in built[1].pm.parameters() if p.requires_grad)
    assert plm.get_input_embeddings().weight.dtype == torch.float32       # the residual stream is unchanged
    batch = collate(encode_examples(built[0].pm.template, DATA.train[:6], smol_tok, EncodeSettings(profile="causal")),
                    describe_tokenizer(smol_tok).pad_id)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    losses, grads = [], []
    for tuned in built:
        tuned.pm.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.nll_loss(tuned.pm(batch), labels)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in tuned.trainable()})
    assert torch.equal(losses[0], losses[1])
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name


def test_a_run_stores_its_own_models_frozen_weights_in_bf16_never_a_model_handed_in(smol_tok, tmp_path, monkeypatch,
                                                                                     fresh_accelerate):
    """The job child loads its model: stored in bf16 once, trained bit-identically to a run on a model
    handed in (which other runs may share, so it is never changed)."""
    import backend.models.lean as lean
    from safetensors.torch import load_file

    from backend.models import load_model
    from backend.services.testing import on_disk

    path = tmp_path / "model"
    on_disk(tiny_model("causal", smol_tok), path)
    calls = []
    real = lean.store_frozen_linears_in
    monkeypatch.setattr(lean, "store_frozen_linears_in", lambda model, dtype: calls.append(real(model, dtype)) or calls[-1])
    results = {}
    for who in ("owned", "handed"):
        cfg = train_config("causal", {"name": "lora"}, tmp_path / who, steps=3, mixed_precision="bf16")
        cfg.model = str(path)
        handed = load_model(str(path), device="cpu", cache_dir=tmp_path / "cache") if who == "handed" else None
        results[who] = run_training(cfg, loaded=handed, data=DATA)
        if handed is not None:
            assert all(p.dtype == torch.float32 for p in handed.model.parameters())
    assert len(calls) == 1 and calls[0] > 0                   # the owned run only
    from types import SimpleNamespace

    from backend.services.runs import computed_on
    from storage import open_store

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")   # a recorded bf16 run says so on its detail
    try:
        from backend.jobs import submit
        from backend.jobs.child import execute

        cfg = train_config("causal", {"name": "lora"}, tmp_path / "recorded", steps=1, mixed_precision="bf16")
        cfg.model = str(path)
        cfg.data.train, cfg.data.eval = str(_jsonl(tmp_path / "train.jsonl", DATA.train)), str(_jsonl(tmp_path / "dev.jsonl", DATA.dev))
        run_id = submit(store, cfg.to_dict())
        assert execute(store, run_id) == "succeeded", store.get_run(run_id).error
        assert computed_on(SimpleNamespace(store=store), run_id) == "cpu, float32 weights under bf16 autocast"
    finally:
        store.close()
    assert results["owned"].history == results["handed"].history
    files = sorted(p.relative_to(tmp_path / "owned") for p in (tmp_path / "owned").rglob("*.safetensors"))
    assert files
    for rel in files:
        a, b = load_file(str(tmp_path / "owned" / rel)), load_file(str(tmp_path / "handed" / rel))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), rel


def test_seeds_on_copies_store_their_copy_and_never_the_shared_model(smol_tok, tmp_path, monkeypatch, fresh_accelerate):
    import backend.models.lean as lean
    from backend.sweeps.seeds import run_seeds

    calls = []
    real = lean.store_frozen_linears_in
    monkeypatch.setattr(lean, "store_frozen_linears_in", lambda model, dtype: calls.append(real(model, dtype)) or calls[-1])
    shared = tiny_model("causal", smol_tok)
    for method, copies in (({"name": "lora"}, 2), ({"name": "prompt-tuning", "num_tokens": 2}, 0)):
        calls.clear()
        cfg = train_config("causal", method, tmp_path / method["name"], steps=1, mixed_precision="bf16")
        out = run_seeds(cfg, [1, 2], loaded=shared, data_for_seed=lambda c: DATA)
        assert [r["status"] for r in out["runs"]] == ["succeeded", "succeeded"]
        assert len(calls) == copies and all(calls)        # LoRA's seeds train copies; prompt tuning shares the base
        assert all(p.dtype == torch.float32 for p in shared.model.parameters())
    from backend.services.testing import on_disk

    calls.clear()       # a base the seeds loaded themselves is theirs alone: stored once, by the first seed
    cfg = train_config("causal", {"name": "prompt-tuning", "num_tokens": 2}, tmp_path / "own", steps=1,
                       mixed_precision="bf16")
    cfg.model = str(on_disk(tiny_model("causal", smol_tok), tmp_path / "model").spec)
    out = run_seeds(cfg, [1, 2], data_for_seed=lambda c: DATA)
    assert [r["status"] for r in out["runs"]] == ["succeeded", "succeeded"] and calls[0] > 0 and calls[1:] == [0]


def _jsonl(path, examples):
    import json

    path.write_text("\n".join(json.dumps({"text_a": e.text_a, "label": e.label}) for e in examples))
    return path


@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
def test_p_tuning_computes_its_prompt_in_fp32_under_bf16_autocast_and_trains(smol_tok, tmp_path, fresh_accelerate,
                                                                             encoder):
    """The encoder is a few dozen rows: in fp32 it costs nothing, while oneDNN's CPU LSTM has no bf16 kernel
    without AVX-512 BF16 (a bf16 p-tuning run crashed on such a CPU) and would round the prompt elsewhere."""
    from backend.methods.ptuning_encoder import PTuningEncoder

    torch.manual_seed(0)
    enc = PTuningEncoder(torch.randn(5, 16), encoder, hidden=8, residual=False)
    plain = enc.table()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = enc.table()
    assert under.dtype == torch.float32 and torch.equal(under, plain)
    cfg = train_config("causal", {"name": "p-tuning", "encoder": encoder, "num_tokens": 3}, tmp_path, steps=2,
                       mixed_precision="bf16")
    assert run_training(cfg, loaded=tiny_model("causal", smol_tok), data=DATA).status == "succeeded"


def test_bf16_training_on_a_cpu_without_bf16_units_says_it_is_slower(smol_tok, tmp_path, fresh_accelerate,
                                                                     monkeypatch, caplog):
    from backend.models import device

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    cfg = train_config("causal", {"name": "lora"}, tmp_path, steps=1, mixed_precision="bf16")
    with caplog.at_level("INFO", logger="backend.training.run"):
        assert run_training(cfg, loaded=tiny_model("causal", smol_tok), data=DATA).status == "succeeded"
    assert "train.mixed_precision bf16: this CPU has no bf16 units: slower than float32" in caplog.text
