"""One process or many: torch.distributed through accelerate (DDP, FSDP, DeepSpeed as its config says).

`chattune train` runs unchanged under `accelerate launch` or `torchrun`: WORLD_SIZE > 1 in the environment
turns this on. With one process nothing is wrapped and no collective runs, so single-process training is
exactly what it was.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import torch

from chattune.errors import ConfigError
from chattune.model.device import check_processes_fit


class Dist:
    """The process group as the training loop sees it."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator
        self.rank = accelerator.process_index if accelerator else 0
        self.world = accelerator.num_processes if accelerator else 1
        self.is_main = self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Several processes when a launcher set WORLD_SIZE > 1; otherwise a single one. `device` is the
        configured one: cpu runs CPU processes (gloo), cuda one GPU per process (there must be enough)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            from accelerate import Accelerator
            from accelerate.utils import DistributedType

            check_processes_fit(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
            accelerator = Accelerator(cpu=device.type == "cpu")
            if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
                # their sharded weights need gathered saves and all-process generation, which chattune does not
                # do yet; refusing beats writing a checkpoint that holds one shard
                raise ConfigError([f"{accelerator.distributed_type.value} through accelerate is not supported by "
                                   "chattune yet; launch without an FSDP/DeepSpeed accelerate config to use DDP"])
            return cls(accelerator)
        return cls()

    @property
    def device(self) -> torch.device | None:
        return self.accelerator.device if self.accelerator else None

    def wrap(self, model: Any) -> Any:
        """DDP (or FSDP / DeepSpeed, as the accelerate config says) around the model; itself alone."""
        return self.accelerator.prepare_model(model) if self.accelerator else model

    def unwrap(self, model: Any) -> Any:
        return self.accelerator.unwrap_model(model) if self.accelerator else model

    def no_sync(self, model: Any, sync: bool):
        """Skip the gradient all-reduce on micro-batches before the step's last one."""
        return nullcontext() if sync or not self.accelerator else self.accelerator.no_sync(model)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes."""
        if not self.accelerator:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    def barrier(self) -> None:
        if self.accelerator:
            self.accelerator.wait_for_everyone()

    def main_first(self):
        """The main process runs the block first (data preparation fills the cache), then the others."""
        return self.accelerator.main_process_first() if self.accelerator else nullcontext()

    def sum_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """A tensor summed over processes, left on its device (no host sync)."""
        return self.accelerator.reduce(value, reduction="sum") if self.accelerator else value

    def clip_grad_norm(self, model: Any, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Clip in place; the total norm before clipping, as a tensor (reading it is the caller's sync)."""
        if self.accelerator:
            return self.accelerator.clip_grad_norm_(params, max_norm)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
