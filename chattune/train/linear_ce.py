"""The LM head and cross-entropy of one chunk of trained positions in one step, gradients included.

The forward pass computes the logits once, takes the loss from them and, while they are at hand, the
gradients of the hidden states and the head's weight (softmax minus the one-hot target, times the
head); backward only scales those by the incoming gradient. Compared with recomputing the chunk's
logits in backward (activation checkpointing) this runs the head's forward matmul and the
log-softmax once instead of twice, and the argmax of the accuracy count comes from the same max that
stabilises the softmax. The math is the cross-entropy's own: the same loss and gradients up to
floating-point rounding (tests/train/test_linear_ce.py).

Inside `kept_logits_buffers()` (the training loop's), a CPU run keeps the logits buffers from chunk
to chunk and step to step: fresh memory of that size (hundreds of MB on a 49k vocabulary) is paged
in by the kernel on first touch, which measured slower than the head's matmul itself on a 2-core VM.
A GPU's caching allocator already reuses its memory, so there buffers stay fresh."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

CHUNK = 2048  # trained positions per LM-head chunk
# set inside kept_logits_buffers(): buffers by (use, dtype)
_kept: dict[tuple[str, torch.dtype], torch.Tensor] | None = None


@contextmanager
def kept_logits_buffers() -> Iterator[None]:
    """Reuse the CPU logits buffers inside this block; they are freed when it ends."""
    global _kept
    outer, _kept = _kept, _kept if _kept is not None else {}
    try:
        yield
    finally:
        _kept = outer


def _buffer(rows: int, cols: int, dtype: torch.dtype, device: torch.device,
            use: str = "logits") -> torch.Tensor:
    """An uninitialised [rows, cols] tensor: a view of a kept buffer where reuse is on (grown by
    doubling up to CHUNK rows, so growing chunks allocate a few times, not every step)."""
    if _kept is None or device.type != "cpu":
        return torch.empty(rows, cols, dtype=dtype, device=device)
    key = (use, dtype)
    held = _kept.get(key)
    if held is None or held.shape[1] != cols or held.shape[0] < rows:
        grown = 2 * held.shape[0] if held is not None and held.shape[1] == cols else 0
        _kept.pop(key, None)
        del held  # freed before its successor is allocated
        _kept[key] = torch.empty(max(rows, min(grown, CHUNK)), cols, dtype=dtype, device=device)
    return _kept[key][:rows]


def _in_dtype(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`weight` cast to the compute dtype (into a kept buffer where reuse is on)."""
    if weight.dtype == dtype:
        return weight
    return _buffer(*weight.shape, dtype, weight.device, use="weight").copy_(weight)


def _weight_grad(grad: torch.Tensor, hidden: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
    """d loss / d weight in the master weight's dtype; a product in another dtype goes through the
    cast weight's buffer, which is free by then."""
    if master.dtype == hidden.dtype:
        return grad.T @ hidden
    product = _buffer(*master.shape, hidden.dtype, master.device, use="weight")
    return torch.mm(grad.T, hidden, out=product).to(master.dtype)


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
    `targets`; the matmuls run in the hidden states' dtype (the weight and bias are cast to it here,
    their gradients come back in their own dtype), the softmax in fp32."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, master: torch.Tensor,
                master_bias: torch.Tensor | None, targets: torch.Tensor, dft: bool) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            weight = _in_dtype(master, hidden.dtype)
            bias = master_bias.to(hidden.dtype) if master_bias is not None else None
            rows, vocab, device = hidden.shape[0], weight.shape[0], hidden.device
            logits = _buffer(rows, vocab, hidden.dtype, device)
            if bias is None:
                torch.mm(hidden, weight.T, out=logits)
            else:
                torch.addmm(bias, hidden, weight.T, out=logits)
            mixed = logits.dtype != torch.float32
            fp32 = _buffer(rows, vocab, torch.float32, device).copy_(logits) if mixed else logits
            loss, correct, grad = _stats_and_grad_logits(fp32, targets, dft)
            if mixed:
                grad = logits.copy_(grad)  # the compute-dtype buffer is free again
            grad_hidden = grad @ weight if ctx.needs_input_grad[0] else None
            # after grad_hidden: the product may reuse the cast weight's buffer
            grad_weight = _weight_grad(grad, hidden, master) if ctx.needs_input_grad[1] else None
            grad_bias = (grad.sum(0).to(master.dtype)
                         if bias is not None and ctx.needs_input_grad[2] else None)
        ctx.grads = [grad_hidden, grad_weight, grad_bias]
        return torch.stack([loss, correct])

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scale = grad_out[0]
        # in place: the tensors are this function's own (a fresh [vocab, hidden] would be paged in)
        grads = [g.mul_(scale.to(g.dtype)) if g is not None else None for g in ctx.grads]
        ctx.grads = None
        return grads[0], grads[1], grads[2], None, None


def fusable(head: torch.nn.Module) -> bool:
    """A plain linear head with ordinary tensors (a sharded DTensor weight is gathered by its
    module's own call)."""
    return type(head) is torch.nn.Linear and type(head.weight) in (torch.Tensor, torch.nn.Parameter)


def linear_cross_entropy(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear,
                         dft: bool = False) -> torch.Tensor:
    """[summed cross-entropy, correct predictions] of `head(hidden)` against `targets`, in
    autocast's dtype where it is on (a fp32 master weight gets its gradient in fp32)."""
    device = hidden.device.type
    dtype = (torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device)
             else head.weight.dtype)
    return LinearCrossEntropy.apply(hidden.to(dtype), head.weight, head.bias, targets, dft)
