"""AdamW over trainable parameters and a warmup-then-decay learning-rate schedule."""

from __future__ import annotations

from typing import Any

import torch
from transformers import get_scheduler

from chattune.config import TrainArgs
from chattune.errors import ConfigError


def build_optimizer(model: Any, cfg: TrainArgs) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms, as is standard."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    if cfg.bf16_full:
        return _kahan_adamw(groups, cfg.learning_rate, betas, cfg.adam_epsilon)
    fused = fused_adamw(decay + no_decay) or None
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=betas, eps=cfg.adam_epsilon,
                             fused=fused)


def _kahan_adamw(groups: list[dict[str, Any]], lr: float, betas: tuple[float, float],
                 eps: float) -> torch.optim.Optimizer:
    """AdamW for bf16 weights without an fp32 master copy: Kahan summation keeps the small updates
    that bf16 rounding would drop (torch-optimi; eps as configured, so it differs from torch's AdamW
    only in the summation)."""
    try:
        from optimi import AdamW
    except ImportError:
        raise ConfigError(["bf16_full needs torch-optimi: pip install torch-optimi"]) from None
    return AdamW(groups, lr=lr, betas=betas, eps=eps, kahan_sum=True)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainArgs, total_steps: int) -> Any:
    """Linear warmup over warmup_ratio of the steps, then cosine, linear or constant."""
    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler_type, cfg.lr_scheduler_type)
    warmup = int(round(cfg.warmup_ratio * total_steps))
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def fused_adamw(params: list[torch.Tensor]) -> bool:
    """Whether AdamW runs fused: one kernel per parameter for all of its update instead of a handful
    of passes (each of the for-loop's lerp, mul, addcmul, sqrt, div and addcdiv reads the whole
    tensor), on GPUs and on CPUs alike. Sharded CPU parameters (FSDP's DTensors under gloo) keep the
    for-loop."""
    from torch.distributed.tensor import DTensor

    if not params:
        return False
    if all(p.is_cuda for p in params):
        return True
    return all(p.device.type == "cpu" and not isinstance(p, DTensor) for p in params)
