"""ProtoVerb (Cui et al. 2022, "Prototypical Verbalizer for Prompt-based Few-shot Tuning").

Why a learned verbalizer at all: hand-written label words need words the model already puts at the mask
for each class; a prototype per class, learned from the mask's hidden states of a few labelled rows,
needs none. The mask's hidden state ``h`` is projected (``v = W h``, no bias, as the paper's linear
encoder) and compared by cosine with one prototype per class. Two contrastive terms train ``W`` and the
prototypes (the PLM stays frozen):

- instance-prototype: each row against every prototype, its own class's the positive;
- instance-instance: each pair of rows of one class against that anchor's rows of other classes, which
  pulls a class's rows together before the prototypes have settled.

Scoring: the prototypes alone (softmax of cosine / temperature), or, as the paper does, beside the label
words: both class-score vectors are standardised per row (mean 0, std 1 over the classes) and averaged,
so neither scale dominates (OpenPrompt's ``ensemble_logits``). Training always scores with the
prototypes alone, as the paper trains them; the label words' scores come from the frozen model and
have nothing to learn.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.errors import ConfigError
from backend.methods.base import Method, MethodContext
from backend.schema import Option

if TYPE_CHECKING:
    import torch

    from backend.prompt_model import PromptModel

SCORING = ("with-words", "prototypes")


def prototype_head(hidden_size: int, n_classes: int, dim: int, temperature: float, scoring: str,
                   instance_weight: float = 1.0) -> Any:
    """The head (a torch module, built here so importing this module loads no torch)."""
    import torch
    from torch import nn

    class PrototypeHead(nn.Module):
        """Projection + prototypes; ``forward(hidden, words)`` -> (B, C) class log-probs."""

        def __init__(self) -> None:
            super().__init__()
            self.project = nn.Linear(hidden_size, dim, bias=False)
            self.prototypes = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_classes, dim)))
            self.temperature = temperature
            self.scoring = scoring
            self.instance_weight = instance_weight
            # The last training forward's projected rows, read by the instance-instance loss of the same
            # step (``ProtoVerb.batch_loss``); never read in evaluation.
            self.embeddings: torch.Tensor | None = None

        def similarities(self, hidden: torch.Tensor) -> torch.Tensor:
            v = nn.functional.normalize(self.project(hidden.float()), dim=-1)
            if self.training:
                self.embeddings = v
            return v @ nn.functional.normalize(self.prototypes, dim=-1).T

        def forward(self, hidden: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
            protos = torch.log_softmax(self.similarities(hidden) / self.temperature, dim=-1)
            if self.training or self.scoring == "prototypes":
                return protos
            return torch.log_softmax((_standardise(words.float()) + _standardise(protos)) / 2, dim=-1)

    return PrototypeHead()


def _standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp_min(1e-6)


def instance_loss(v: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Instance-instance contrastive loss, summed over anchors: for anchor ``j`` and each row ``a`` of its
    class (itself included, as OpenPrompt's ``pcl_loss``), ``-log(e^s(a,j) / (e^s(a,j) + sum of e^s(k,j)
    over the rows k of other classes))``, averaged over the anchor's positives. A batch of one class has
    no negatives and gives 0."""
    import torch

    sim = (v @ v.T) / temperature                           # (B, B), symmetric
    same = labels[:, None] == labels[None, :]
    log_neg = torch.logsumexp(sim.masked_fill(same, float("-inf")), dim=0)   # (B,) per anchor, in log space
    if bool(torch.isinf(log_neg).all()):
        return sim.new_zeros(())
    per_pair = torch.logaddexp(sim, log_neg[None, :]) - sim                   # (a, j); 0 without negatives
    per_anchor = (per_pair * same).sum(0) / same.sum(0)
    return per_anchor.sum()


class ProtoVerb(Method):
    name = "protoverb"
    label = "ProtoVerb (class prototypes learned at the mask)"
    description = ("a projection of the mask's hidden state and one prototype per class train with "
                   "contrastive losses; the model stays frozen")
    default_lr = 1e-2
    modifies_base = False
    serving = "shared"
    options = {
        "scoring": Option(str, "with-words", choices=SCORING, label="Score with",
                          doc="with-words: prototypes and label words averaged (standardised), as the paper "
                              "combines them; prototypes: the prototypes alone, when no label words fit"),
        "dim": Option(int, 64, min=2, max=4096, label="Prototype size",
                      doc="size of the projected space the prototypes live in (the paper's 64 by default)"),
        "temperature": Option(float, 1.0, min=0.01, max=10.0, label="Temperature", advanced=True,
                              doc="cosine similarities are divided by it before the softmax; lower is sharper "
                                  "(1.0 as in the paper's code)"),
        "instance_weight": Option(float, 1.0, min=0.0, max=10.0, label="Instance-instance weight",
                                  advanced=True,
                                  doc="weight of the instance-instance term beside the instance-prototype one "
                                      "(0 trains with prototypes only)"),
    }

    def check_options(self, opts: dict[str, Any]) -> None:
        if opts.get("head") == "soft":
            raise ConfigError("method.head: protoverb scores with its prototypes and the frozen label words; "
                              "a soft verbalizer head would get no training signal (use head 'words')")

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        weight = pm.plm.get_output_embeddings().weight
        head = prototype_head(int(weight.shape[1]), len(pm.verbalizer.classes), opts["dim"], opts["temperature"],
                              opts["scoring"], opts["instance_weight"])
        pm.class_head = head.to(weight.device)

    def batch_loss(self, pm: PromptModel, logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Instance-prototype (the cross-entropy of the prototypes' scores ``logp``) plus the weighted
        instance-instance term, both summed over the rows."""
        import torch

        loss = torch.nn.functional.nll_loss(logp.float(), labels, reduction="sum")
        head = pm.class_head
        if head.instance_weight and head.embeddings is not None and len(labels) > 1:
            loss = loss + head.instance_weight * instance_loss(head.embeddings, labels, head.temperature)
        head.embeddings = None
        return loss
