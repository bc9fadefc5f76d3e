"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020), a small own implementation.

The maintained library (AdapterHub ``adapters``) pins transformers 4.x and does not load with our pinned
transformers 5, so this is ~60 lines instead: a down-project / nonlinearity / up-project block added to
the output of a sublayer, with the up-projection initialised to zero so the model is unchanged at step 0.
Houlsby places one after the attention output and one after the feed-forward output of every layer,
Pfeiffer only after the feed-forward output. Sublayers are found by name across BERT-, Llama-, GPT- and
T5-style models; the adapters are applied with forward hooks, so the PLM's own code is untouched. The
blocks themselves are in ``backend/methods/adapter_blocks.py`` (torch, imported when ``prepare`` runs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.methods.base import Method, MethodContext
from backend.schema import Option

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class Adapter(Method):
    name = "adapter"
    label = "Adapters (small bottleneck layers)"
    description = "small bottleneck layers after the attention / feed-forward outputs (Houlsby, Pfeiffer)"
    default_lr = 1e-3
    serving = "hooks"
    options = {
        "style": Option(str, "pfeiffer", choices=("houlsby", "pfeiffer"), label="Style",
                        doc="pfeiffer: one adapter per layer (after the feed-forward); houlsby: two, more "
                            "capacity and cost"),
        "bottleneck": Option(int, 64, min=1, max=65_536, label="Bottleneck size",
                             doc="width of each adapter; raise it when the task needs more capacity"),
    }

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        from backend.methods.adapter_blocks import AdapterSet

        pm.add_module("adapters", AdapterSet(pm.plm, opts["style"], opts["bottleneck"]))
