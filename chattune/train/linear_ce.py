"""The LM head and cross-entropy of one chunk of trained positions in one step, gradients included.

The forward pass computes the logits once, takes the loss from them and, while they are at hand, the
gradients of the hidden states and the head's weight (softmax minus the one-hot target, times the
head); backward only scales those by the incoming gradient. Compared with recomputing the chunk's
logits in backward (activation checkpointing) this runs the head's forward matmul and the
log-softmax once instead of twice, and the argmax of the accuracy count comes from the same max that
stabilises the softmax. The math is the cross-entropy's own: the same loss and gradients up to
floating-point rounding (tests/test_linear_ce.py)."""

from __future__ import annotations

from typing import Any

import torch


def _stats_and_grad_logits(logits: torch.Tensor, targets: torch.Tensor,
                           dft: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed loss, correct argmax predictions, d loss / d logits) of fp32 logits; `logits` is
    overwritten (it becomes the gradient). With `dft` each token's loss is weighted by its
    probability, detached (TRL's dft)."""
    top, argmax = logits.max(-1)  # max's index is the first maximal one, as argmax's
    correct = (argmax == targets).sum().float()
    target_logit = logits.gather(1, targets[:, None]).squeeze(1)
    probs = logits.sub_(top[:, None]).exp_()
    total = probs.sum(-1)
    ce = total.log() + top - target_logit  # logsumexp - target logit
    probs.div_(total[:, None])
    probs[torch.arange(targets.numel(), device=targets.device), targets] -= 1  # softmax - one-hot
    if dft:
        weight = torch.exp(-ce)
        probs.mul_(weight[:, None])
        return (ce * weight).sum(), correct, probs
    return ce.sum(), correct, probs


class LinearCrossEntropy(torch.autograd.Function):
    """[summed cross-entropy, correct predictions] of `hidden @ weight.T (+ bias)` against
    `targets`; the hidden states, weight and bias come in the dtype the matmuls run in, the softmax
    is fp32."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, dft: bool) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            logits = torch.nn.functional.linear(hidden, weight, bias).float()
            loss, correct, grad = _stats_and_grad_logits(logits, targets, dft)
            grad = grad.to(hidden.dtype)
            grads = [grad @ weight if ctx.needs_input_grad[0] else None,
                     grad.T @ hidden if ctx.needs_input_grad[1] else None,
                     grad.sum(0) if bias is not None and ctx.needs_input_grad[2] else None]
        ctx.grads = grads
        return torch.stack([loss, correct])

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scale = grad_out[0]
        grads = [g * scale.to(g.dtype) if g is not None else None for g in ctx.grads]
        ctx.grads = None
        return grads[0], grads[1], grads[2], None, None


def fusable(head: torch.nn.Module) -> bool:
    """A plain linear head with ordinary tensors (a sharded DTensor weight is gathered by its
    module's own call)."""
    return type(head) is torch.nn.Linear and type(head.weight) in (torch.Tensor, torch.nn.Parameter)


def linear_cross_entropy(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear,
                         dft: bool = False) -> torch.Tensor:
    """[summed cross-entropy, correct predictions] of `head(hidden)` against `targets`, in
    autocast's dtype where it is on (the casts are ordinary autograd ops, so a fp32 master weight
    gets its gradient in fp32)."""
    device = hidden.device.type
    dtype = (torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device)
             else head.weight.dtype)
    weight, bias = head.weight.to(dtype), head.bias.to(dtype) if head.bias is not None else None
    return LinearCrossEntropy.apply(hidden.to(dtype), weight, bias, targets, dft)
