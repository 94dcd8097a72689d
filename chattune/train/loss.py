"""Loss on trained positions only: the LM head runs on those hidden states, in chunks, so the full
tokens x vocabulary logits never exist at once."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from chattune.batching.collate import Batch, trained_index
from chattune.labels import IGNORE_INDEX
from chattune.model.lora import base_model
from chattune.train.linear_ce import CHUNK, fusable, linear_cross_entropy

# set on a model (model.chattune_recompute_loss = True) to recompute each chunk's logits in
# backward, the reference computation, instead of linear_cross_entropy's gradients taken in the
# forward pass
RECOMPUTE_LOSS = "chattune_recompute_loss"


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module,
                dft: bool = False) -> torch.Tensor:
    """[summed cross-entropy, correct next-token predictions] of one chunk (the second carries no
    gradient). With `dft` each token's cross-entropy is weighted by its probability, detached (TRL's
    loss_type dft)."""
    logits = head(hidden).float()
    correct = (logits.detach().argmax(-1) == targets).sum().float()
    if dft:
        ce = F.cross_entropy(logits, targets, reduction="none")
        return torch.stack([(ce * torch.exp(-ce).detach()).sum(), correct])
    return torch.stack([F.cross_entropy(logits, targets, reduction="sum"), correct])


def _chunk_stats(hidden: torch.Tensor, targets: torch.Tensor,
                 head: torch.nn.Module) -> torch.Tensor:
    logits = head(hidden).float()
    loss = F.cross_entropy(logits, targets, reduction="sum")
    correct = (logits.argmax(-1) == targets).sum()
    return torch.stack([loss, correct.float()])


def is_prompt_learning(model: Any) -> bool:
    """A PEFT prompt/prefix/p-tuning model: its virtual tokens enter in PeftModel.forward, not in
    the decoder."""
    return bool(getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False))


def _prompt_learning_stats(model: Any, batch: Batch, dft: bool = False) -> tuple[torch.Tensor, int]:
    """[summed loss, correct predictions] and the trained positions, through the PEFT model's own
    forward (which prepends the virtual tokens or their keys and values); its logits of the batch's
    own tokens are the last ones."""
    logits = model(input_ids=batch.input_ids,
                   use_cache=False).logits[:, -batch.input_ids.shape[1]:-1]
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits, targets = logits[keep].float(), targets[keep]
    correct = (logits.detach().argmax(-1) == targets).sum().float()
    ce = F.cross_entropy(logits, targets, reduction="none")
    loss = (ce * torch.exp(-ce).detach()).sum() if dft else ce.sum()
    return torch.stack([loss, correct]), int(targets.numel())


def trained_hidden(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """Hidden states that predict trained tokens, their targets, and the LM head."""
    lm = base_model(model)
    hidden = lm.get_decoder()(input_ids=batch.input_ids, position_ids=batch.position_ids,
                              use_cache=False).last_hidden_state
    index = batch.trained_index if batch.trained_index is not None else trained_index(batch.labels)
    # gathered by index (its length known on the host), not by a boolean mask, whose count would
    # sync with a GPU
    return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, index),
            batch.labels.reshape(-1).index_select(0, index + 1), lm.get_output_embeddings())


def _fused_loss(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
    """Liger's fused linear cross-entropy: the LM head and the loss in chunks inside one kernel."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    return LigerFusedLinearCrossEntropyLoss(reduction="sum")(head.weight, hidden, targets,
                                                             head.bias).float()


def summed_loss(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of token cross-entropies over the batch's trained positions (the caller normalises)."""
    return summed_loss_and_correct(model, batch)[0]


def summed_loss_and_correct(model: Any, batch: Batch, loss_type: str = "nll") -> torch.Tensor:
    """[sum of token cross-entropies, correct argmax predictions] over the batch's trained
    positions; the count (TRL's mean_token_accuracy, logged) is NaN on the fused Liger path, which
    never materialises logits."""
    dft = loss_type == "dft"
    if is_prompt_learning(model):
        return _prompt_learning_stats(model, batch, dft)[0]
    hidden, targets, head = trained_hidden(model, batch)
    if (getattr(base_model(model), "chattune_fused_loss", False)
            and type(head) is torch.nn.Linear and not dft):
        loss = _fused_loss(hidden, targets, head)
        return torch.stack([loss, torch.full_like(loss, float("nan"))])
    total = hidden.new_zeros((2,), dtype=torch.float32)
    fused = (torch.is_grad_enabled() and fusable(head)
             and not getattr(base_model(model), RECOMPUTE_LOSS, False))
    for s in range(0, targets.numel(), CHUNK):
        h, t = hidden[s:s + CHUNK], targets[s:s + CHUNK]
        if fused:  # the chunk's gradients taken with its loss: its logits never wait for backward
            total = total + linear_cross_entropy(h, t, head, dft)
        # recompute each chunk's logits in backward instead of keeping them all
        elif torch.is_grad_enabled():
            total = total + checkpoint(_chunk_loss, h, t, head, dft, use_reentrant=False)
        else:
            total = total + _chunk_loss(h, t, head, dft)
    return total


@torch.no_grad()
def loss_and_accuracy(model: Any, batch: Batch) -> tuple[float, float, int]:
    """(summed loss, correct next-token predictions, trained positions) for evaluation."""
    if is_prompt_learning(model):
        stats, n = _prompt_learning_stats(model, batch)
        return float(stats[0]), float(stats[1]), n
    hidden, targets, head = trained_hidden(model, batch)
    stats = torch.zeros(2)
    for s in range(0, targets.numel(), CHUNK):
        stats += _chunk_stats(hidden[s:s + CHUNK], targets[s:s + CHUNK], head).cpu()
    return float(stats[0]), float(stats[1]), int(targets.numel())
