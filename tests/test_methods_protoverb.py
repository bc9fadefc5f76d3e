"""ProtoVerb: its two contrastive terms on a toy batch, training a tiny model through the normal training
path, the saved run reloading to the same scores, and serving it beside another run on one base."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from backend.batching import EncodeSettings, collate, encode_examples
from backend.config import RunConfig
from backend.errors import ConfigError
from backend.methods import REGISTRY, get_method
from backend.methods.protoverb import ProtoVerb, instance_loss, prototype_head
from backend.prompts.encode import describe_tokenizer
from backend.serving import MultiRunServer
from backend.training import load_trained
from tests.tiny import tiny_model
from tests.training_helpers import DATA, train_tiny


def _toy_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes whose hidden states differ along one direction, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    hidden = torch.randn(6, 16, generator=g) * 0.3
    hidden[:, 0] += torch.where(labels == 0, 2.0, -2.0)
    return hidden, labels


def _train_head(weight: float, steps: int = 60) -> tuple[object, torch.Tensor, torch.Tensor, list[float]]:
    torch.manual_seed(0)
    head = prototype_head(16, 2, 8, 1.0, "prototypes", instance_weight=weight)
    head.train()
    hidden, labels = _toy_batch()
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    pm = type("PM", (), {"class_head": head})()
    losses = []
    for _ in range(steps):
        logp = head(hidden, torch.zeros(6, 2))
        loss = ProtoVerb().batch_loss(pm, logp, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return head, hidden, labels, losses


def _alignment(head, hidden, labels) -> torch.Tensor:
    """Cosine of each class's prototype with the mean of its projected rows: (C,)."""
    with torch.no_grad():
        v = torch.nn.functional.normalize(head.project(hidden), dim=-1)
        p = torch.nn.functional.normalize(head.prototypes, dim=-1)
        means = torch.stack([v[labels == c].mean(0) for c in (0, 1)])
        return torch.nn.functional.cosine_similarity(means, p, dim=-1)


def test_prototypes_move_towards_their_class():
    torch.manual_seed(0)
    fresh = prototype_head(16, 2, 8, 1.0, "prototypes")
    head, hidden, labels, losses = _train_head(1.0)
    assert losses[-1] < losses[0] * 0.8
    before, after = _alignment(fresh, hidden, labels), _alignment(head, hidden, labels)
    assert (after > before).all() and (after > 0.9).all(), (before, after)
    head.eval()
    pred = head(hidden, torch.zeros(6, 2)).argmax(-1)
    assert torch.equal(pred, labels)


def test_instance_term_pulls_a_class_together_and_counts():
    hidden, labels = _toy_batch()
    v = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert float(instance_loss(v, labels, 1.0)) > 0
    # rows of one class identical and the classes opposite: the lowest loss this temperature allows
    tight = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3), dim=-1)
    assert float(instance_loss(tight, labels, 1.0)) < float(instance_loss(v, labels, 1.0))
    assert float(instance_loss(v, torch.zeros(6, dtype=torch.long), 1.0)) == 0.0   # no negatives
    sharp = instance_loss(v, labels, 0.01)     # in log space: a sharp temperature does not overflow
    assert torch.isfinite(sharp) and float(sharp) > 0
    # the weight switches the term: with it the loss is larger than the prototype term alone
    head = prototype_head(16, 2, 8, 1.0, "prototypes", instance_weight=0.0)
    head.train()
    pm = type("PM", (), {"class_head": head})()
    logp = head(hidden, torch.zeros(6, 2))
    alone = float(ProtoVerb().batch_loss(pm, logp, labels).detach())
    head.instance_weight = 1.0
    logp = head(hidden, torch.zeros(6, 2))
    both = float(ProtoVerb().batch_loss(pm, logp, labels).detach())
    assert both > alone > 0


def test_scoring_with_words_standardises_both():
    torch.manual_seed(0)
    head = prototype_head(16, 3, 8, 1.0, "with-words").eval()
    hidden = torch.randn(4, 16)
    words = torch.log_softmax(torch.tensor([[5.0, 0.0, 0.0]] * 4), dim=-1)
    out = head(hidden, words)
    assert torch.allclose(out.exp().sum(-1), torch.ones(4))
    assert (out.argmax(-1) == 0).float().mean() >= 0.5   # a confident word score carries weight
    head.scoring = "prototypes"
    protos = head(hidden, words)
    assert not torch.allclose(protos, out)


def test_options_checked():
    method = get_method("protoverb")
    assert REGISTRY["protoverb"] is ProtoVerb
    assert method.parse_options({})["scoring"] == "with-words"
    with pytest.raises(ConfigError, match="method.dim"):
        method.parse_options({"dim": 0})
    with pytest.raises(ConfigError, match="method.temperature"):
        method.parse_options({"temperature": 0})
    with pytest.raises(ConfigError, match="method.head"):
        method.parse_options({"head": "soft"})
    with pytest.raises(ConfigError, match="method.scoring"):
        RunConfig.from_dict({"data": {"eval": "x"}, "template": "{text_a} {mask}",
                             "verbalizer": {"a": ["x"], "b": ["y"]},
                             "method": {"name": "protoverb", "scoring": "vote"}})


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_trains_saves_reloads_and_serves(kind, bert_tok, smol_tok, tmp_path):
    tok = bert_tok if kind == "masked" else smol_tok
    res, sink, lm = train_tiny(kind, tok, {"name": "protoverb", "dim": 16}, tmp_path / "pv", lr=0.05, steps=6)
    assert res.status == "succeeded" and res.steps == 6
    losses = sink.values("train/loss")
    assert len(losses) == 6 and all(v == v and v > 0 for v in losses)
    counts = res.params
    assert 0 < counts["trainable"] < counts["total"] * 0.2
    # the PLM stays frozen: no tensor of it was saved (the template's {soft} token trains beside the head)
    saved = load_file(str(tmp_path / "pv" / "final" / "trainable.safetensors"))
    assert {"class_head.project.weight", "class_head.prototypes"} <= set(saved)
    assert not any(k.startswith("plm.") for k in saved), sorted(saved)
    # reload on a fresh base: same scores as the trained model
    ref = load_trained(tmp_path / "pv", tiny_model(kind, tok).model, tok).pm.eval()
    encs = encode_examples(ref.template, DATA.dev, tok, EncodeSettings(profile=kind))
    with torch.no_grad():
        want = ref(collate(encs, describe_tokenizer(tok).pad_id))
    # serving beside a zero-shot-like run on the same shared base
    train_tiny(kind, tok, {"name": "soft-prompt"}, tmp_path / "soft", lr=0.05, steps=2)
    server = MultiRunServer(tiny_model(kind, tok))
    server.attach("pv", tmp_path / "pv")
    server.attach("soft", tmp_path / "soft")
    assert server.runs["pv"].pm.plm is server.base
    for key in ("pv", "soft", "pv"):
        got = server.scores(key, DATA.dev)
        if key == "pv":
            assert (got - want).abs().max() <= 1e-5
    out = server.predict("pv", ["what a lovely film"])
    assert set(out[0]["probs"]) == {"negative", "positive"}
