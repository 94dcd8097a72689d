"""One process or many: DDP through accelerate, or FSDP2 sharding (train/fsdp.py) over
torch.distributed.

`chattune train` runs unchanged under `accelerate launch` or `torchrun`: WORLD_SIZE > 1 in the
environment turns this on. With one process and no FSDP nothing is wrapped and no collective runs,
so single-process training is exactly what it was.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import torch

from chattune.config import FsdpSettings
from chattune.errors import ConfigError
from chattune.model.device import check_processes_fit


class Dist:
    """The process group as the training loop sees it. `fsdp`: shard with FSDP2 (settings), else
    DDP."""

    def __init__(self, accelerator: Any = None, fsdp: FsdpSettings | None = None):
        self.accelerator, self.fsdp = accelerator, fsdp
        self.rank = accelerator.process_index if accelerator else 0
        self.world = accelerator.num_processes if accelerator else 1
        self.is_main = self.rank == 0
        self.root: Any = None  # the sharded root module, once wrapped

    @property
    def sharded(self) -> bool:
        return self.fsdp is not None

    @classmethod
    def from_env(cls, device: torch.device, strategy: str | None = None,
                 fsdp: FsdpSettings | None = None) -> Dist:
        """Several processes when a launcher set WORLD_SIZE > 1; otherwise a single one. `device` is
        the configured one: cpu runs CPU processes (gloo), cuda one GPU per process (there must be
        enough).
        `strategy`: ddp (default) or fsdp (FSDP2, with `fsdp` settings; on one process too, for CPU
        offload)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        settings = (fsdp or FsdpSettings()) if strategy == "fsdp" else None
        if world == 1 and settings is not None:  # FSDP needs a process group, even of one
            _single_process_group(device)
            return cls(None, settings)
        if world > 1:
            from accelerate import Accelerator
            from accelerate.utils import DistributedType

            check_processes_fit(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
            accelerator = Accelerator(cpu=device.type == "cpu")
            if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
                # chattune shards with FSDP2 itself; accelerate's own FSDP/DeepSpeed would wrap the
                # model again
                raise ConfigError([f"{accelerator.distributed_type.value} through an accelerate "
                                   "config is not supported: set strategy: fsdp (PyTorch FSDP2) in "
                                   "chattune's config and launch without an FSDP/DeepSpeed "
                                   "accelerate config"])
            return cls(accelerator, settings)
        return cls()

    @property
    def device(self) -> torch.device | None:
        return self.accelerator.device if self.accelerator else None

    def wrap(self, root: Any, model: Any = None, compute: torch.dtype | None = None) -> Any:
        """DDP around `root` (the module whose forward runs `model`), or FSDP2 shards of `model`'s
        layers and of `root`; itself alone."""
        if self.sharded:
            from chattune.train.fsdp import shard

            self.root = shard(root, model if model is not None else root, self.fsdp, compute)
            return self.root
        return self.accelerator.prepare_model(root) if self.accelerator else root

    def unwrap(self, model: Any) -> Any:
        return self.accelerator.unwrap_model(model) if self.accelerator else model

    def no_sync(self, model: Any, sync: bool):
        """Skip the gradient all-reduce on micro-batches before the step's last one."""
        if self.sharded:
            from chattune.train.fsdp import gradient_sync

            return gradient_sync(model, sync)
        return nullcontext() if sync or not self.accelerator else self.accelerator.no_sync(model)

    def gathered(self):
        """Under FSDP, the root's weights gathered for code that calls the model's parts directly
        (evaluation, generation); nothing to do otherwise."""
        if self.sharded and self.root is not None:
            from chattune.train.fsdp import unsharded

            return unsharded(self.root)
        return nullcontext()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes."""
        if not self.accelerator:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    def finish(self) -> None:
        """Under FSDP, wait for every process and close the process group: a process that exits with
        gloo's threads still running is aborted ("terminate called without an active exception")."""
        import torch.distributed as dist

        if self.sharded and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.accelerator:
            self.accelerator.wait_for_everyone()

    def main_first(self):
        """The main process runs the block first (data preparation fills the cache), then the
        others."""
        return self.accelerator.main_process_first() if self.accelerator else nullcontext()

    def sum_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """A tensor summed over processes, left on its device (no host sync)."""
        return self.accelerator.reduce(value, reduction="sum") if self.accelerator else value

    def clip_grad_norm(self, model: Any, params: list[torch.Tensor],
                       max_norm: float) -> torch.Tensor:
        """Clip in place; the total norm before clipping, as a tensor (reading it is the caller's
        sync)."""
        if self.sharded:  # DTensor gradients: torch's clipping reduces the norm over the shards
            from chattune.train.fsdp import full_norm

            return full_norm(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if self.accelerator:
            return self.accelerator.clip_grad_norm_(params, max_norm)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def _single_process_group(device: torch.device) -> None:
    """A process group of one (rank 0 of 1) on a free local port, for FSDP without a launcher."""
    import socket

    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
