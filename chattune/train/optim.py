"""AdamW over trainable parameters and a warmup-then-decay learning-rate schedule."""

from __future__ import annotations

from typing import Any

import torch
from transformers import get_scheduler

from chattune.config import TrainConfig


def build_optimizer(model: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms, as is standard."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """Linear warmup over warmup_ratio of the steps, then cosine, linear or constant."""
    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler_type, cfg.lr_scheduler_type)
    warmup = int(round(cfg.warmup_ratio * total_steps))
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
