"""Memory per process before training starts: parameters, gradients, optimizer state and
activations, as the strategy lays them out (a full replica under DDP, a 1/world share under FSDP, in
CPU memory with offload), and a clear refusal when they cannot fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from chattune.config import TrainArgs, TrainConfig
from chattune.errors import ConfigError
from chattune.model.device import Precision
from chattune.train.dist import Dist

GIB = 1024**3


@dataclass
class MemoryEstimate:
    """Bytes per process: on the accelerator (or the CPU when that is the device) and in CPU
    memory."""

    parameters: float
    gradients: float
    optimizer: float
    activations: float
    offloaded: bool

    @property
    def on_device(self) -> float:
        held = self.activations
        if not self.offloaded:
            held += self.parameters + self.gradients + self.optimizer
        return held

    def line(self, world: int, strategy: str) -> str:
        where = "CPU memory (offload)" if self.offloaded else "device"
        return (f"memory per process ({strategy}, {world} process(es)), about: parameters "
                f"{self.parameters / GIB:.2f} GiB, gradients {self.gradients / GIB:.2f} GiB, "
                f"optimizer {self.optimizer / GIB:.2f} GiB ({where}), activations "
                f"{self.activations / GIB:.2f} GiB; {self.on_device / GIB:.2f} GiB on the device")


def estimate(model: Any, cfg: TrainArgs, world: int, sharded: bool,
             offload: bool) -> MemoryEstimate:
    """AdamW keeps two fp32 moments per trainable weight; gradients are as large as the trainable
    weights (fp32); activations: about 34 bytes per hidden unit and token per layer kept for
    backward (one layer's with gradient checkpointing), for one micro-batch of max_length tokens per
    row."""
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    share = world if sharded else 1
    config = getattr(model, "config", None)
    text = (config.get_text_config()
            if config is not None and hasattr(config, "get_text_config") else config)
    hidden = getattr(text, "hidden_size", 0) or 0
    layers = getattr(text, "num_hidden_layers", 0) or 0
    tokens = cfg.max_tokens_per_batch or cfg.per_device_train_batch_size * cfg.max_length
    kept = 1 if cfg.checkpointing else layers
    activations = (34.0 * tokens * hidden * max(kept, 1)
                   + (tokens * hidden * 2 * layers if cfg.checkpointing else 0))
    return MemoryEstimate(weights / share, trainable * 4 / share, trainable * 8 / share,
                          activations, offload)


def available(device: torch.device) -> float | None:
    """Free memory of the device (a GPU's free memory, the CPU's available memory), None when
    unknown."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.virtual_memory().available)


def check_memory(model: Any, cfg: TrainConfig, dist: Dist, precision: Precision,
                 device: torch.device) -> str:
    """The estimate's line for the run's first lines; ConfigError when it is over the free memory
    (several processes on one machine share its CPU memory)."""
    offload = bool(dist.sharded and cfg.fsdp.cpu_offload)
    est = estimate(model, cfg.train_args(), dist.world, dist.sharded, offload)
    free = available(device)
    if free is not None:
        need = est.on_device * (dist.world if device.type == "cpu" else 1)
        if need > free:
            hint = ("strategy: fsdp with more processes, fsdp.cpu_offload: true, "
                    "gradient_checkpointing: true or a smaller per_device_train_batch_size / "
                    "max_length")
            raise ConfigError([f"the run needs about {need / GIB:.1f} GiB of {device.type} memory "
                               f"per machine and {free / GIB:.1f} GiB is free "
                               f"({est.line(dist.world, _name(dist))}); try {hint}"])
    return est.line(dist.world, _name(dist))


def _name(dist: Dist) -> str:
    return "fsdp" if dist.sharded else "ddp"
