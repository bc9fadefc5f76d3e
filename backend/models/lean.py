"""Leaner compute paths for a loaded model, same results as transformers' own.

Training a prompt or a delta on a laptop CPU is bounded by what autograd keeps for the backward pass.
transformers' SDPA path expands grouped-query keys/values to every query head (``repeat_kv``) whenever a
padding mask is present, so for SmolLM2 (9 query heads, 3 key/value heads) each layer keeps three copies of
its keys and values and runs attention three times wider than needed. PyTorch's CPU flash kernel takes the
grouped heads as they are (``enable_gqa``), with masks: the same numbers, ~4x faster attention, and a third
of the key/value memory. transformers enables that only without a mask (a CUDA kernel restriction), so on
CPU we route attention through a registered implementation that always does.

The gated MLP (``down(silu(gate(x)) * up(x))``: Llama, Mistral, Qwen, SmolLM) keeps three intermediate-size
tensors per token for the backward pass under plain autograd (gate, silu(gate), up); the fused product below
keeps two and recomputes silu in the backward pass (bit-identical gradients, ~1% of a step). Together these
cut what a SmolLM2 training step keeps for the backward pass by about a third.

The same attention function attends rows run back to back as one sequence one row at a time
(RowAttention), so a batch's projections and MLPs see no padding; and in bf16/fp16 training on a CPU it
attends through matmuls, since PyTorch's CPU flash kernel is several times slower there in the backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

LEAN_SDPA = "prompt_studio_sdpa"
# The keyword a model call carries its RowAttention under; transformers hands a call's extra keywords
# down to every layer's attention function.
ROWS = "prompt_studio_rows"
# Causal architectures that honour per-token position ids as given and hand a call's extra keywords to their
# attention function, so their rows can run back to back (each tested, packed == padded:
# tests/test_lean_and_packing.py).
ROW_ATTENTION_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt2", "smollm3", "gemma", "phi3", "olmo2",
                                 "granite"})


@dataclass(frozen=True)
class RowAttention:
    """Rows that run back to back in one sequence, attended to one row at a time.

    A padded batch spends every projection and MLP on its padding (7% of a length-sorted SST-2 eval, half
    of a few-shot training batch), and a pack with a block-diagonal mask spends attention on the blocks it
    masks out (the CPU kernels skip none). Here the layers run on the rows' tokens alone, and only attention,
    a small share of the work, sees them re-laid as padded rows: each row attends to the prefix in front of
    every row (a shared prefix's cache, prefix tuning's keys and values) and to its own earlier tokens.
    """
    gather: torch.Tensor       # (rows, width): sequence position of each row's tokens; padding repeats the row's first
    keys: torch.Tensor         # (rows, prefix + width): the same for keys, the prefix's positions in front
    place: torch.Tensor        # (tokens,): where each sequence position is in the flattened (rows x width) layout
    mask: torch.Tensor | None  # (width, prefix + width): causal from the bottom right; None without a prefix


def row_attention(lengths: Sequence[int], prefix: int, device: torch.device | str = "cpu") -> RowAttention:
    """The RowAttention of rows of ``lengths`` tokens, back to back after ``prefix`` positions every row sees."""
    width = max(lengths)
    starts = torch.tensor([0, *lengths], dtype=torch.long).cumsum(0)[:-1]
    lens = torch.tensor(list(lengths), dtype=torch.long)
    offset = torch.arange(width, dtype=torch.long)
    gather = starts[:, None] + torch.where(offset[None, :] < lens[:, None], offset[None, :], 0)
    keys = torch.cat([torch.arange(prefix, dtype=torch.long).expand(len(lengths), prefix), gather + prefix], dim=1)
    place = torch.cat([r * width + torch.arange(n, dtype=torch.long) for r, n in enumerate(lengths)])
    mask = torch.ones(width, prefix + width, dtype=torch.bool).tril(prefix) if prefix else None
    return RowAttention(gather.to(device), keys.to(device), place.to(device),
                        None if mask is None else mask.to(device))


def rows_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, rows: RowAttention,
              dropout: float = 0.0, scaling: float | None = None) -> torch.Tensor:
    """Attention of one sequence of back-to-back rows (query (1, H, T, d), key/value (1, Hkv, P + T, d)),
    one row at a time; returns (1, T, H, d) as transformers' attention functions do."""
    def as_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        # (1, heads, n, d) -> (rows, heads, width, d): whole (heads x d) token rows copied by index_select,
        # from the (tokens, heads, d) order the projections wrote them in
        picked = x[0].transpose(0, 1).index_select(0, index.reshape(-1))
        return picked.view(*index.shape, *picked.shape[1:]).transpose(1, 2)

    q = as_rows(query, rows.gather)                        # (rows, H, width, d)
    k, v = as_rows(key, rows.keys), as_rows(value, rows.keys)   # (rows, Hkv, prefix + width, d)
    groups = q.shape[1] // k.shape[1]
    if _slow_flash_backward(q, k):
        out = _math_attention(q, k, v, rows.mask, dropout, scaling)
    else:
        if groups > 1 and q.device.type != "cpu":          # not every GPU kernel takes grouped heads
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=rows.mask, dropout_p=dropout, scale=scaling,
                                             is_causal=rows.mask is None, enable_gqa=k.shape[1] != q.shape[1])
    n_rows, heads, width, dim = out.shape
    return out.transpose(1, 2).reshape(n_rows * width, heads, dim).index_select(0, rows.place).unsqueeze(0)


def _computes_in(x: torch.Tensor) -> torch.dtype:
    """The dtype attention on ``x`` computes in: autocast's (SDPA is on its lower-precision list; rotary
    embeddings in float32 hand it float32 queries even under bf16 autocast), else ``x``'s own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


# The matmul path keeps its attention probabilities (rows x heads x queries x keys, in float32 and the
# compute dtype) for the backward pass, where the flash kernel keeps one number per query: above this many
# a layer (8 MB of float32; one 512-token row with 9 heads has 2.4 M, 8 few-shot rows of 40 tokens 0.1 M)
# memory wins over speed.
MATH_ATTENTION_MAX_SCORES = 1 << 21


def _slow_flash_backward(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether PyTorch's CPU flash kernel would run a bf16/fp16 backward pass here on an attention small
    enough to keep whole (see _math_attention)."""
    scores = query.shape[0] * query.shape[1] * query.shape[2] * key.shape[2]
    return (query.device.type == "cpu" and _computes_in(query) in (torch.bfloat16, torch.float16)
            and torch.is_grad_enabled() and (query.requires_grad or key.requires_grad)
            and scores <= MATH_ATTENTION_MAX_SCORES)


def _math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: float,
                    scaling: float | None) -> torch.Tensor:
    """Attention as two batched matmuls around a float32 softmax, as transformers' eager attention computes
    it: (rows, heads, width, d) from keys/values (rows, kv heads, keys, d). ``mask``: True where a query
    may attend (or additive), broadcastable to (rows, 1, width, keys); None: causal from the bottom right.

    Why: PyTorch's CPU flash kernel takes 9-12 ms for the backward pass of 8 rows x 9 heads of 40 tokens
    in bf16, against 2-3 ms this way (and 2 ms for its own fp32 backward), which made a bf16-autocast LoRA
    step slower than an fp32 one. Grouped heads stay grouped: the query heads of one key/value head are
    stacked as one matrix (query head h reads key/value head h // groups, as transformers repeats them).
    A query allowed nothing gets uniform weights rather than NaN, as in eager attention (padding only)."""
    n_rows, heads, width, dim = q.shape
    kv_heads, keys = k.shape[1], k.shape[2]
    groups = heads // kv_heads
    scores = torch.matmul(q.reshape(n_rows, kv_heads, groups * width, dim), k.transpose(-1, -2))
    scores = scores.view(n_rows, kv_heads, groups, width, keys).float() * (scaling if scaling is not None
                                                                             else dim ** -0.5)
    if mask is None:
        mask = torch.ones(width, keys, dtype=torch.bool, device=q.device).tril(keys - width)
    elif mask.dim() == 4:                                   # (rows, 1, width, keys): one mask for every head
        mask = mask.unsqueeze(2)
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    else:
        scores = scores + mask.float()
    probs = torch.softmax(scores, dim=-1).to(q.dtype)
    if dropout:
        probs = F.dropout(probs, p=dropout)
    return torch.matmul(probs.view(n_rows, kv_heads, groups * width, keys), v).view(n_rows, heads, width, dim)


def lean_sdpa_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except that grouped keys/values stay grouped under a mask on CPU, that
    back-to-back rows (a RowAttention under ``ROWS``) are attended to one row at a time, and that bf16/fp16
    training on a CPU attends through matmuls (_math_attention)."""
    rows = kwargs.pop(ROWS, None)
    if rows is not None:
        return rows_sdpa(query, key, value, rows, dropout, scaling), None
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    plain = not kwargs.get("output_attentions") and kwargs.get("softcap") is None \
        and kwargs.get("position_bias") is None and kwargs.get("cache") is None
    # no mask: transformers' SDPA would attend causally only for a causal module
    mask_known = attention_mask is not None or (getattr(module, "is_causal", False) and is_causal is not False)
    if plain and mask_known and _slow_flash_backward(query, key):
        out = _math_attention(query, key, value, attention_mask, dropout, scaling)
        return out.transpose(1, 2).contiguous(), None
    if not (grouped and plain and attention_mask is not None and query.device.type == "cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    # transformers' own extension point: a named attention function plus the mask format it expects.
    AttentionInterface.register(LEAN_SDPA, lean_sdpa_forward)
    AttentionMaskInterface.register(LEAN_SDPA, sdpa_mask)


_register()


def use_lean_attention(model: PreTrainedModel) -> bool:
    """Switch a model that runs transformers' SDPA to our attention function where it gains: grouped-query
    heads (kept grouped under a mask on CPU), or an architecture whose rows can run back to back
    (ROW_ATTENTION_TYPES; the function is transformers' own SDPA for anything else).

    Returns whether it switched. Models on eager / flash attention, or with neither, are left alone.
    """
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    grouped = any(getattr(m, "num_key_value_groups", 1) > 1 for m in model.modules())
    if not grouped and getattr(model.config, "model_type", None) not in ROW_ATTENTION_TYPES:
        return False
    model.set_attn_implementation(LEAN_SDPA)
    return True


class SiluProduct(torch.autograd.Function):
    """``silu(gate) * up`` that saves its two inputs only (autograd alone also saves ``silu(gate)``)."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        gate, up = ctx.saved_tensors
        d_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        d_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        return d_gate, d_up


def silu_product(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return SiluProduct.apply(gate, up)
    return F.silu(gate) * up


class LeanGatedMLP(torch.nn.Module):
    """Stands in for a model's gated-SiLU MLP, adopting its projections: parameter names, PEFT targets
    (``gate_proj``/``up_proj``/``down_proj``) and state dicts are unchanged."""

    def __init__(self, mlp: torch.nn.Module) -> None:
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.act_fn = mlp.act_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.down_proj(silu_product(self.gate_proj(x), self.up_proj(x)))
        # evaluation: activate and multiply in the gate's own fresh buffer, sparing two batch x width
        # temporaries per layer (their allocation and first touch cost more than the arithmetic on CPU)
        return self.down_proj(F.silu(self.gate_proj(x), inplace=True).mul_(self.up_proj(x)))


def _is_gated_silu_mlp(module: torch.nn.Module) -> bool:
    linear = all(isinstance(getattr(module, n, None), torch.nn.Linear) for n in ("gate_proj", "up_proj", "down_proj"))
    act = getattr(module, "act_fn", None)
    silu = isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"
    return linear and silu and type(module).__name__.endswith("MLP") and not hasattr(module, "_hf_hook")


def _same_function(a: Callable[[torch.Tensor], torch.Tensor], b: Callable[[torch.Tensor], torch.Tensor],
                   width: int, like: torch.Tensor) -> bool:
    """A class named *MLP with these children could still compute something else: check one input."""
    x = torch.randn(2, 3, width, generator=torch.Generator().manual_seed(0)).to(like)
    with torch.no_grad():
        return torch.allclose(a(x), b(x), rtol=1e-3, atol=1e-4)


def use_lean_mlp(model: torch.nn.Module) -> int:
    """Replace every gated-SiLU MLP of ``model`` by a LeanGatedMLP; returns how many were replaced."""
    verified: dict[type, bool] = {}
    targets = [(name, m) for name, m in model.named_modules() if _is_gated_silu_mlp(m)]
    for name, mlp in targets:
        lean = LeanGatedMLP(mlp)
        cls = type(mlp)
        if cls not in verified:
            verified[cls] = _same_function(mlp, lean, mlp.gate_proj.in_features, mlp.gate_proj.weight)
        if verified[cls]:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, lean)
    return sum(1 for m in model.modules() if isinstance(m, LeanGatedMLP))


def store_frozen_linears_in(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Store every frozen ``nn.Linear`` weight of ``model`` (and bias) in ``dtype``, the autocast dtype a
    training runs under; returns how many layers changed.

    Autocast casts an fp32 weight to bf16/fp16 at every forward (it caches casts only of weights that
    train), which on a CPU with bf16 matrix units costs much of what they gain: a bf16 step took 0.86-0.98x
    the fp32 step time with those casts, 0.80-0.85x with them done once (bench/results/training_speed.md);
    on a GPU it halves what the frozen weights take of its memory. The matmuls are bit-identical, since
    autocast would round the same weights the same way; the frozen weights take half the memory. Only
    Linear layers: embeddings and norms keep their dtype (the residual stream stays as it was), and the
    output embedding is left alone (it may be the input embedding, tied). Mutates ``model``: call it on a
    model the run owns, never on one shared with runs in another precision.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    changed = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        params = [p for p in (module.weight, module.bias) if p is not None]
        if any(p.requires_grad for p in params) or all(p.dtype == dtype for p in params):
            continue
        for p in params:
            if p.is_floating_point():
                p.data = p.data.to(dtype)
        changed += 1
    return changed


def make_lean(model: PreTrainedModel) -> None:
    """Both lean paths; same outputs and gradients as the model as loaded."""
    use_lean_attention(model)
    use_lean_mlp(model)
