"""LoRA's input dropout with masks that are cheap to draw on a CPU.

torch's dropout on a CPU draws one Bernoulli sample per element from the Mersenne Twister and multiplies by a
float mask it keeps for backward: on a 2-core CPU that cost an eighth of a LoRA step. Here each element takes 32
random bits (two per 64-bit draw, half the generator calls and no float conversion) compared against a threshold,
and backward keeps a bool mask. The semantics are nn.Dropout's: each element is zeroed with probability p
(to within 2**-32) independently of the others and of the other layers, the kept ones scaled by 1 / (1 - p), from
torch's default generator (so seeds and saved RNG states reproduce a run). Off the CPU, torch's fused dropout runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor of `shape`: True with probability 1 - p, independently per element."""
    n = shape.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-2**63, None)  # all 64 bits
    drop_below = round(p * 2**32) - 2**31  # int32 draws are uniform on [-2**31, 2**31)
    return (bits.view(torch.int32)[:n] >= drop_below).view(shape)


class _Masked(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0).mul_(ctx.scale) if ctx.needs_input_grad[0] else None, None, None


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
        return _Masked.apply(x, keep_mask(x.shape, self.p, x.device), 1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_mask_dropout(model: torch.nn.Module) -> int:
    """Replace the nn.Dropout of every LoRA layer in `model` (peft's lora_dropout) by MaskDropout with the same p;
    returns how many were replaced. The adapter's weights and saved config are unchanged."""
    replaced = 0
    for module in model.modules():
        layers = getattr(module, "lora_dropout", None)
        if not isinstance(layers, torch.nn.ModuleDict):
            continue
        for name, layer in layers.items():
            if type(layer) is torch.nn.Dropout:
                layers[name] = MaskDropout(layer.p)
                replaced += 1
    return replaced
