"""The bottleneck adapter blocks and the hooks that apply them (see ``backend/methods/adapter.py``).

Apart from the method's description so that reading it does not import torch.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from backend.errors import ConfigError

ATTN_OUT = re.compile(r"(attention\.output\.dense|self_attn\.o_proj|SelfAttention\.o|attn\.c_proj|attn\.out_proj)$")
FFN_OUT = re.compile(r"(layer\.\d+\.output\.dense|mlp\.down_proj|DenseReluDense\.wo|mlp\.c_proj|mlp\.fc2|mlp\.dense_4h_to_h)$")


class Bottleneck(nn.Module):
    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(torch.relu(self.down(h.to(self.down.weight.dtype)))).to(h.dtype)


def adapter_sites(model: nn.Module, style: str) -> list[tuple[str, nn.Linear]]:
    """(name, module) of every sublayer output that gets an adapter, in model order."""
    pats = [FFN_OUT] if style == "pfeiffer" else [ATTN_OUT, FFN_OUT]
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(p.search(n) for p in pats)]


class AdapterSet(nn.Module):
    """The adapters of one model, keyed by the sublayer they follow; owns the hooks that apply them."""

    def __init__(self, model: nn.Module, style: str, bottleneck: int) -> None:
        super().__init__()
        sites = adapter_sites(model, style)
        if not sites:
            raise ConfigError("adapter: no attention / feed-forward output layers found in this architecture",
                              field="method")
        self.blocks = nn.ModuleDict()
        self._handles = []
        # Serving keeps several runs' adapters on one base and switches them per request (backend.serving).
        self.active = True
        for name, mod in sites:
            key = name.replace(".", "__")
            block = Bottleneck(mod.out_features, bottleneck).to(mod.weight.device)
            self.blocks[key] = block
            self._handles.append(mod.register_forward_hook(
                lambda _m, _a, out, b=block: b(out) if self.active else out))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
