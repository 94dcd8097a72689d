"""LoRA layers that train faster on a CPU, computing what peft's do: cheap dropout masks, and the
update added in one matmul with the scales folded into the small matrices.

Dropout: torch's dropout on a CPU draws one Bernoulli sample per element from the Mersenne Twister
and multiplies by a float mask it keeps for backward: on a 2-core CPU that cost an eighth of a LoRA
step. Here each element takes 16 random bits (four per 64-bit draw: an eighth of the generator
calls, no float conversion) compared against a threshold, and backward keeps a bool mask. The
semantics are nn.Dropout's: each element is zeroed with probability p, rounded to a multiple of
2**-16 (within 8e-6 of p), independently of the others and of the other layers; the kept ones are
scaled by 1 / (1 - that rate), so the expectation is exactly the input's; the bits come from torch's
default generator, so seeds and saved RNG states reproduce a run. Off the CPU, torch's fused dropout
runs.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F

LEVELS = 2**16  # the masks' resolution: 16 random bits per element


def drop_rate(p: float) -> float:
    """The rate the masks drop at: p to the nearest multiple of 1 / LEVELS (below 1)."""
    return min(round(p * LEVELS), LEVELS - 1) / LEVELS


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor of `shape`: True with probability 1 - drop_rate(p), independently per
    element."""
    n = shape.numel()
    # all 64 bits
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)
    # int16 draws are uniform on [-2**15, 2**15)
    drop_below = round(drop_rate(p) * LEVELS) - LEVELS // 2
    return (bits.view(torch.int16)[:n] >= drop_below).view(shape)


class _Masked(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (keep,) = ctx.saved_tensors
        return (torch.where(keep, grad, 0).mul_(ctx.scale) if ctx.needs_input_grad[0]
                else None, None, None)


class MaskDropout(torch.nn.Module):
    """nn.Dropout(p) with the cheap CPU mask (see the module's docstring)."""

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
        return _Masked.apply(x, keep_mask(x.shape, self.p, x.device), 1 / (1 - drop_rate(self.p)))

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
        x = torch.where(keep_mask(x.shape, dropout.p, x.device), x, 0)
        scale = scale / (1 - drop_rate(dropout.p))
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
