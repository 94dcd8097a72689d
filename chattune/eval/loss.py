"""Evaluation on prepared examples: loss, perplexity and token accuracy over trained tokens, and the
logits transformers' compute_metrics takes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from chattune.batching.collate import Example, collate, plan_batches
from chattune.labels import IGNORE_INDEX
from chattune.model.device import autocast
from chattune.train.dist import Dist
from chattune.train.loss import loss_and_accuracy


def named_metrics(metrics: dict[str, float], name: str) -> dict[str, float]:
    """eval_loss -> eval_<name>_loss for a named eval set (unchanged for the unnamed one)."""
    return {k.replace("eval_", f"eval_{name}_", 1) if name else k: v for k, v in metrics.items()}


@torch.no_grad()
def evaluate_loss(model: Any, examples: Sequence[Example], batch_size: int, pad_id: int,
                  device: torch.device, dtype: torch.dtype | None = None,
                  dist: Dist | None = None) -> dict[str, float]:
    """Mean loss, perplexity and next-token accuracy over the trained tokens of `examples` (each
    process takes its share of the batches; the sums are added up over processes)."""
    dist = dist or Dist()
    was_training = model.training
    model.eval()
    loss = correct = count = 0.0
    plan = plan_batches(examples, batch_size, packing=False, max_length=0, seed=0)
    mine = plan[dist.rank::dist.world]
    # under FSDP every forward gathers weights from every process: all run as many batches (spares
    # not counted)
    rounds = math.ceil(len(plan) / dist.world) if dist.sharded else len(mine)
    for k in range(rounds):
        rows = mine[k] if k < len(mine) else plan[0]
        batch = collate([[examples[i] for i in row] for row in rows], pad_id).to(device)
        with autocast(device, dtype):
            s, c, n = loss_and_accuracy(model, batch)
        if k < len(mine):
            loss, correct, count = loss + s, correct + c, count + n
    loss, correct, count = dist.sum([loss, correct, count])
    model.train(was_training)
    return _metrics(loss, correct, count)


def loss_evaluator(model: Any, batch_size: int, pad_id: int, device: torch.device,
                   dtype: torch.dtype | None = None,
                   dist: Dist | None = None) -> Callable[[str, Sequence[Example]],
                                                         dict[str, float]]:
    """The training loop's `evaluate(name, examples)`: loss, perplexity and token accuracy, keys
    named by set."""
    dist = dist or Dist()

    def evaluate(name: str, examples: Sequence[Example]) -> dict[str, float]:
        with dist.gathered():  # FSDP: the root's weights, for the loss that calls the model's parts
            return named_metrics(evaluate_loss(model, examples, batch_size, pad_id, device, dtype,
                                               dist), name)

    return evaluate


def _metrics(loss: float, correct: float, count: float) -> dict[str, float]:
    """Mean loss, perplexity and next-token accuracy from sums over `count` trained positions."""
    mean = loss / max(count, 1)
    return {"eval_loss": mean, "eval_perplexity": math.exp(min(mean, 50)),
            "eval_accuracy": correct / max(count, 1)}


@torch.no_grad()
def predict_logits(model: Any, examples: Sequence[Example], batch_size: int, pad_id: int,
                   device: torch.device, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """(logits, labels) of every example in order as numpy arrays padded to the longest (logits with
    0, labels with IGNORE_INDEX), as transformers hands them to compute_metrics in an
    EvalPrediction."""
    import numpy as np

    was_training = model.training
    model.eval()
    width = max((len(ex.input_ids) for ex in examples), default=0)
    logits, labels = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate([[ex] for ex in chunk], pad_id).to(device)
        with autocast(device, dtype):
            out = model(input_ids=batch.input_ids,
                        use_cache=False).logits[:, -batch.input_ids.shape[1]:]
        out = torch.nn.functional.pad(out.float(), (0, 0, 0, width - out.shape[1])).cpu().numpy()
        lab = torch.nn.functional.pad(batch.labels, (0, width - batch.labels.shape[1]),
                                      value=IGNORE_INDEX)
        logits.append(out)
        labels.append(lab.cpu().numpy())
    model.train(was_training)
    if not logits:
        return np.zeros((0, 0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def metrics_from_logits(logits: Any, labels: Any) -> dict[str, float]:
    """evaluate_loss's metrics from logits predict_logits returned (the logits at i predict label
    i + 1), so predictions that are needed anyway cost no second forward pass."""
    scores, targets = (torch.from_numpy(logits[:, :-1]).float(),
                       torch.from_numpy(labels[:, 1:]).long())
    trained = targets != IGNORE_INDEX
    scores, targets = scores[trained], targets[trained]
    count = targets.numel()
    loss = torch.nn.functional.cross_entropy(scores, targets,
                                             reduction="sum").item() if count else 0.0
    correct = (scores.argmax(-1) == targets).sum().item() if count else 0
    return _metrics(loss, correct, count)
