"""Training on tiny models: learning, determinism, save -> reload equality, cancel, resume."""
from __future__ import annotations

import pytest
import torch

from backend.training import MemorySink, RunData, load_trained, run_training
from tests.tiny import tiny_model
from tests.training_helpers import DATA, examples, train_config, train_tiny


@pytest.mark.slow
def test_loss_goes_down_and_events_arrive(bert_tok, tmp_path):
    res, sink, _ = train_tiny("masked", bert_tok, {"name": "soft-prompt"}, tmp_path, steps=12, lr=0.05,
                              eval_every=6)
    assert res.status == "succeeded" and res.steps == 12
    losses = sink.values("train/loss")
    assert len(losses) == 12 and min(losses[-3:]) < losses[0]
    keys = {k for k, _, _ in sink.events}
    for k in ("train/lr", "train/tokens_per_s", "train/step_tokens_per_s", "train/eta_s", "train/elapsed_s",
              "train/epoch", "eval/accuracy", "params/trainable", "params/percent", "final/accuracy",
              "train/saving_s", "train/loop_s"):
        assert k in keys, k
    # the loop's whole time: beyond its last step's elapsed time by that step's evaluation and checkpoint
    assert sink.values("train/loop_s")[-1] > sink.values("train/elapsed_s")[-1] > sink.values("train/saving_s")[-1] > 0
    # two checkpoints (weights, AdamW's two moments) and the best weights at least once: on disk, as counted
    trainable = int(sink.values("params/trainable")[0]) * 4
    assert 2 * 3 * trainable + trainable <= sink.values("train/saved_bytes")[-1] < 2 * 3 * trainable + 2 * trainable + 65536
    # the steps' own rate leaves the evaluation at step 6 out, the loop's rate does not
    assert sink.values("train/step_tokens_per_s")[-1] > sink.values("train/tokens_per_s")[-1]
    assert res.best_step in (6, 12)
    lrs = sink.values("train/lr")
    assert lrs[-1] < max(lrs)   # linear decay


@pytest.mark.slow
def test_same_config_and_seed_give_same_metrics(bert_tok, tmp_path):
    a, sa, _ = train_tiny("masked", bert_tok, {"name": "lora"}, tmp_path / "a")
    b, sb, _ = train_tiny("masked", bert_tok, {"name": "lora"}, tmp_path / "b")
    assert sa.values("train/loss") == sb.values("train/loss")
    timing = ("seconds", "examples_per_s")
    assert {k: v for k, v in a.metrics.items() if k not in timing} == \
        {k: v for k, v in b.metrics.items() if k not in timing}


@pytest.mark.slow
@pytest.mark.parametrize("kind,method", [("masked", {"name": "p-tuning"}), ("masked", {"name": "lora", "head": "soft"}),
                                         ("masked", {"name": "adapter", "style": "houlsby"}),
                                         ("masked", {"name": "bitfit"}), ("causal", {"name": "prefix-tuning"}),
                                         ("causal", {"name": "prompt-tuning", "num_tokens": 4}),
                                         ("causal", {"name": "ia3"})])
def test_save_then_reload_gives_the_same_predictions(bert_tok, smol_tok, tmp_path, kind, method):
    tok = bert_tok if kind == "masked" else smol_tok
    res, _, lm = train_tiny(kind, tok, method, tmp_path, lr=0.01)
    fresh = tiny_model(kind, tok)
    tuned = load_trained(tmp_path, fresh.model, tok)
    from backend.batching import EncodeSettings, collate, encode_examples
    from backend.prompts.encode import describe_tokenizer

    encs = encode_examples(tuned.pm.template, DATA.dev, tok, EncodeSettings(profile=kind))
    batch = collate(encs, describe_tokenizer(tok).pad_id)
    got = tuned.pm.eval()(batch)
    want = torch.log(torch.tensor([[p["probs"]["negative"], p["probs"]["positive"]] for p in res.predictions]))
    assert (got.exp() - want.exp()).abs().max() <= 1e-5
    assert not list((tmp_path / "final").glob("*.bin")) and not list((tmp_path / "final").glob("*.pt"))
    if method["name"] in ("lora", "ia3", "prefix-tuning"):
        from peft import PeftModel

        PeftModel.from_pretrained(tiny_model(kind, tok).model, str(tmp_path / "final" / "adapter"))


@pytest.mark.slow
def test_cancel_stops_within_one_step_and_resume_matches_uninterrupted(bert_tok, tmp_path):
    full, sfull, _ = train_tiny("masked", bert_tok, {"name": "lora"}, tmp_path / "full", steps=6)
    calls = {"n": 0}

    def cancel_after_3() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    lm = tiny_model("masked", bert_tok)
    part = run_training(train_config("masked", {"name": "lora"}, tmp_path / "part", steps=6), loaded=lm,
                        data=DATA, cancel_check=cancel_after_3)
    assert part.status == "cancelled" and part.steps == 3
    sink = MemorySink()
    resumed = run_training(train_config("masked", {"name": "lora"}, tmp_path / "part", steps=6), sink=sink,
                           loaded=tiny_model("masked", bert_tok), data=DATA, resume_from=tmp_path / "part")
    assert resumed.status == "succeeded" and resumed.steps == 6
    assert sink.values("train/loss") == sfull.values("train/loss")[3:]
    assert resumed.metrics["accuracy"] == full.metrics["accuracy"]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "final" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "part" / "final" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_micro_batches_give_the_same_step(bert_tok, smol_tok, tmp_path, kind):
    """Splitting a batch by token budget accumulates to the same update as the whole batch."""
    tok = bert_tok if kind == "masked" else smol_tok
    states = []
    for budget in (0, 20):
        lm = tiny_model(kind, tok)
        for m in lm.model.modules():      # BERT's dropout would draw different masks per chunk
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        sink = MemorySink()
        run_training(train_config(kind, {"name": "lora"}, tmp_path / str(budget), steps=2, lr=0.01,
                                  micro_batch_tokens=budget), sink=sink, loaded=lm, data=DATA)
        lora = {n: p.detach().clone() for n, p in lm.model.named_parameters() if "lora_" in n}
        states.append((lora, sink.values("train/loss")))
    (whole, loss_whole), (split, loss_split) = states
    assert whole.keys() == split.keys() and whole
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)
    # Adam's first steps are about +-lr per element whatever the gradient's size, so float-summation noise
    # on a near-zero gradient can move an element by a little: compare at 1% of one step (lr 0.01).
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], atol=1e-4, rtol=0, msg=name)


def test_test_split_gets_the_final_metrics_and_dev_picks_the_checkpoint(bert_tok, tmp_path):
    data = RunData(train=DATA.train, dev=DATA.dev, test=examples(5, 2, opening="in short, a"))
    sink = MemorySink()
    res = run_training(train_config("masked", {"name": "soft-prompt"}, tmp_path, steps=4, eval_every=2),
                       sink=sink, loaded=tiny_model("masked", bert_tok), data=data)
    assert res.metrics["n"] == 5                                     # final: the test split
    assert [h["step"] for h in res.history] == [2, 4] and res.best_step in (2, 4)   # selection: dev
    assert sink.values("eval/n") == [8, 8]
    assert "chosen_among" not in res.metrics                          # held out from the choice: no caveat


def test_a_final_score_on_the_rows_that_chose_the_checkpoint_says_so(bert_tok, tmp_path):
    from types import SimpleNamespace

    from backend.services.runs import caveats

    sink = MemorySink()
    res = run_training(train_config("masked", {"name": "soft-prompt"}, tmp_path, steps=4, eval_every=2),
                       sink=sink, loaded=tiny_model("masked", bert_tok), data=DATA)
    assert res.metrics["n"] == 8 and res.metrics["chosen_among"] == 2 == sink.values("final/chosen_among")[0]
    said = caveats(SimpleNamespace(tags=[], method="prompt-tuning", parent_run_id=None,
                                   metrics={f"final/{k}": v for k, v in res.metrics.items()}))
    assert "the best of 2 dev evaluations" in said[0] and "optimistic" in said[0]
    plain, _, _ = train_tiny("masked", bert_tok, {"name": "soft-prompt"}, tmp_path / "plain")   # no dev choice
    assert "chosen_among" not in plain.metrics
    from studio.views.training import progress_html

    shown = progress_html({"run_id": 1, "method": "soft-prompt", "status": "succeeded", "step": 4,
                           "total_steps": 4, "fraction": 1.0,
                           "final": {"accuracy": 0.5, "chosen_among": 2.0}})
    assert "on the dev rows that chose its checkpoint (best of 2 evaluations: optimistic)" in shown


def test_learning_rate_of_soft_tokens():
    from backend.config import TrainOptions
    from backend.training.options import resolve

    own = resolve(TrainOptions(lr=1e-3), "p-tuning", 32)          # a soft method: the rate as given
    assert own.lr == own.soft_lr == 1e-3
    beside = resolve(TrainOptions(), "lora", 32)                  # beside LoRA: at least the soft-prompt rate
    assert beside.lr == 5e-4 and beside.soft_lr == 3e-3
    assert resolve(TrainOptions(), "prompt-tuning", 32).soft_lr == 3e-2


def test_progress_leaves_evaluations_out_of_the_steps_own_rate(monkeypatch):
    from backend.training import events

    clock = iter([0.0, 1.0, 3.0])       # start; step 1 after 1 s; step 2 after 1 s of evaluation and 1 s of training
    monkeypatch.setattr(events.time, "perf_counter", lambda: next(clock))
    sink = MemorySink()
    progress = events.Progress(sink, total_steps=2)
    progress.step(1, loss=1.0, lr=0.1, epoch=0.5, tokens=100)
    progress.pause(1.0)
    progress.step(2, loss=0.5, lr=0.1, epoch=1.0, tokens=100)
    assert sink.values("train/tokens_per_s") == [100.0, pytest.approx(200 / 3)]
    assert sink.values("train/step_tokens_per_s") == [100.0, 100.0]
    assert sink.values("train/eta_s") == [1.0, 0.0]


def test_progress_leaves_writes_out_of_the_steps_own_rate_and_totals_them(monkeypatch):
    from backend.training import events

    clock = iter([0.0, 1.0, 4.0, 5.0])   # start; step 1 after 1 s; step 2 after 2 s of writes and 1 s of training; close
    monkeypatch.setattr(events.time, "perf_counter", lambda: next(clock))
    sink = MemorySink()
    progress = events.Progress(sink, total_steps=2)
    progress.step(1, loss=1.0, lr=0.1, epoch=0.5, tokens=100)
    progress.saved(2.0, 4096)
    progress.step(2, loss=0.5, lr=0.1, epoch=1.0, tokens=100)
    progress.close(2)
    assert sink.values("train/step_tokens_per_s") == [100.0, 100.0]
    assert sink.values("train/saving_s") == [2.0] and sink.values("train/loop_s") == [5.0]
    assert sink.values("train/saved_bytes") == [4096.0]
