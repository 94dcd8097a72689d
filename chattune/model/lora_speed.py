"""LoRA layers that train faster on a CPU, computing what peft's do: cheap dropout, and the update
added in one matmul with the scales folded into the small matrices.

Dropout: torch's dropout on a CPU draws one Bernoulli sample per element from the Mersenne Twister
and multiplies by a float mask it keeps for backward: on a 2-core CPU that cost an eighth of a LoRA
step. Here only the dropped elements are drawn: the gaps between them are geometric (the count of
kept elements before each dropped one, from one uniform float64 each), so a rate p draws about p * n
numbers for n elements, and the dropped positions are zeroed in a copy, forward and backward, with
no mask over the whole tensor. The semantics are nn.Dropout's exactly: each element is zeroed with
probability p, independently of the others and of the other layers, and the kept ones are scaled by
1 / (1 - p); the draws come from torch's default generator, so seeds and saved RNG states reproduce
a run. Off the CPU, torch's fused dropout runs.
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch
import torch.nn.functional as F


def dropped_positions(n: int, p: float, device: torch.device) -> torch.Tensor:
    """Sorted flat indices (int64) of the elements among `n` that a dropout of rate `p` zeroes:
    each one independently with probability p. Between two dropped elements the kept ones number
    floor(log(1 - u) / log(1 - p)) for a uniform u, the geometric law of Bernoulli trials."""
    if n == 0 or p == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    log_keep = math.log1p(-p)
    expected = n * p
    draws = int(expected + 6 * math.sqrt(expected) + 16)  # almost always enough at once
    chunks, last = [], -1.0
    while last < n:
        u = torch.rand(draws, dtype=torch.float64, device=device)
        # trials up to and including the next dropped element; u < 1, so log1p(-u) is finite
        steps = torch.log1p(-u).div_(log_keep).floor_().add_(1)
        positions = steps.cumsum_(0).add_(last)
        chunks.append(positions)
        last = float(positions[-1])
    positions = torch.cat(chunks)
    return positions[positions < n].long()


class _Drop(torch.autograd.Function):
    """`x * scale` with the elements at flat `positions` zeroed; the gradient likewise."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, positions: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(positions)
        ctx.scale = scale
        return _zeroed(x, positions, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (positions,) = ctx.saved_tensors
        return (_zeroed(grad, positions, ctx.scale) if ctx.needs_input_grad[0] else None,
                None, None)


def _zeroed(x: torch.Tensor, positions: torch.Tensor, scale: float) -> torch.Tensor:
    # a new contiguous tensor, so the flat positions index it in row-major order (a copy is cheaper
    # than a product by 1, the fast forward's case)
    out = x.clone(memory_format=torch.contiguous_format) if scale == 1 else x.contiguous() * scale
    out.view(-1).index_fill_(0, positions, 0)
    return out


def drop(x: torch.Tensor, p: float, scale: float) -> torch.Tensor:
    """`x * scale` with each element zeroed with probability p (CPU; differentiable)."""
    return _Drop.apply(x, dropped_positions(x.numel(), p, x.device), scale)


class MaskDropout(torch.nn.Module):
    """nn.Dropout(p), drawing only the dropped elements on a CPU (see the module's docstring)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        return drop(x, self.p, 1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _plain_call(layer: Any, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
    """The one adapter of a plain LoRA call that the fast forward computes exactly as peft would;
    None where peft's own forward must run (several or disabled adapters, merged weights, variants
    such as DoRA, a LoRA bias, extra arguments, evaluation, a GPU, or dtypes that only peft's casts
    reconcile)."""
    names = layer.active_adapters
    if (args or kwargs or not layer.training or layer.disable_adapters
            or layer.merged or len(names) != 1):
        return None
    name = names[0]
    if (name not in layer.lora_A or name in layer.lora_variant
            or layer.lora_B[name].bias is not None):
        return None
    autocasting = (torch.is_autocast_enabled(x.device.type)
                   and torch.get_autocast_dtype(x.device.type) == x.dtype)
    same_dtype = x.dtype == layer.lora_A[name].weight.dtype == layer.lora_B[name].weight.dtype
    return name if x.device.type == "cpu" and (autocasting or same_dtype) else None


def fast_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """peft's lora.Linear forward, `base(x) + B(A(dropout(x))) * scaling`, as `base(x).addmm_(A(x *
    keep), B.T, alpha=scaling / (1 - p))`: the dropout's and LoRA's scales multiply the r-wide
    matrices inside the matmuls instead of a full-width tensor each, forward and backward, and the
    sum is part of the matmul. Under autocast the input stays in the compute dtype (peft would
    upcast it to the fp32 adapter's dtype for autocast to cast it back)."""
    name = _plain_call(self, x, args, kwargs)
    if name is None:
        return type(self).forward(self, x, *args, **kwargs)
    shape = x.shape
    # 2-D, so the update below is one in-place matmul on the whole output
    x = x.reshape(-1, shape[-1])
    result = self.base_layer(x)
    scale = self.scaling[name]
    dropout = self.lora_dropout[name]
    if isinstance(dropout, MaskDropout) and dropout.p > 0:
        x = drop(x, dropout.p, 1.0)
        scale = scale / (1 - dropout.p)
    elif not isinstance(dropout, torch.nn.Identity):
        x = dropout(x)
    a = F.linear(x, self.lora_A[name].weight)
    # in place: the base layer's output is nobody's saved tensor (a linear layer keeps its input for
    # backward); autocast casts no argument of an in-place op, so B comes in the output's dtype
    result.addmm_(a, self.lora_B[name].weight.t().to(result.dtype), alpha=scale)
    return result.view(*shape[:-1], result.shape[-1])


def speed_up_lora(model: torch.nn.Module) -> int:
    """Give every plain LoRA linear layer of `model` MaskDropout for its nn.Dropout (same p) and the
    fast forward (other layer types, e.g. QLoRA's 4-bit ones, keep peft's); returns how many layers
    changed. The adapter's weights and saved config are unchanged."""
    from peft.tuners.lora.layer import Linear

    changed = 0
    for module in model.modules():
        if type(module) is not Linear:
            continue
        for name, layer in module.lora_dropout.items():
            if type(layer) is torch.nn.Dropout:
                module.lora_dropout[name] = MaskDropout(layer.p)
        module.forward = types.MethodType(fast_forward, module)
        changed += 1
    return changed
