"""Sharded training with PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`): each decoder layer
and the root sharded over the processes, mixed precision and CPU offload by policy, checkpoints
written shard by shard with `torch.distributed.checkpoint`, and the full weights gathered for the
saved model. Works with gloo on CPUs and nccl on GPUs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from chattune.config import FsdpSettings
from chattune.model.lora import base_model

SHARDS = "shards"  # a sharded checkpoint's folder of model and optimizer shards


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The repeated blocks of a causal LM (model.model.layers in transformers' decoder models)."""
    decoder = base_model(model).get_decoder()
    layers = (getattr(decoder, "layers", None) or getattr(decoder, "h", None)
              or getattr(decoder, "blocks", None))
    if layers is None:
        raise ValueError(f"{type(decoder).__name__}: FSDP needs the decoder's layers "
                         "(model.layers), found none")
    return list(layers)


def shard(root: torch.nn.Module, model: Any, settings: FsdpSettings,
          compute: torch.dtype | None) -> torch.nn.Module:
    """Shard each decoder layer of `model`, then `root` (the module whose forward runs the model:
    its own parameters, embeddings, final norm and head, form the root group). Parameters are
    gathered in `compute` dtype where one is set (bf16), gradients reduced in fp32 when
    settings.reduce_in_fp32."""
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    mp = MixedPrecisionPolicy(param_dtype=compute,
                              reduce_dtype=torch.float32 if settings.reduce_in_fp32 and compute
                              else None)
    on_cpu = next(root.parameters()).device.type == "cpu"
    # on a CPU the shards are in CPU memory already (FSDP's offload moves them between CPU and an
    # accelerator)
    offload = CPUOffloadPolicy() if settings.cpu_offload and not on_cpu else OffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, reshard_after_forward=settings.reshard_after_forward, mp_policy=mp,
                    offload_policy=offload)
    fully_shard(root, reshard_after_forward=settings.reshard_after_forward, mp_policy=mp,
                offload_policy=offload)
    return root


@contextmanager
def gradient_sync(root: Any, sync: bool) -> Iterator[None]:
    """Micro-batches before the step's last keep their gradients unreduced (FSDP2's no_sync)."""
    root.set_requires_gradient_sync(sync)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


@contextmanager
def unsharded(root: Any) -> Iterator[None]:
    """The root group's parameters gathered, so code may call the model's parts directly (the loss,
    evaluation and generation run the decoder and head outside the root's own forward); each layer
    gathers its own."""
    root.unshard()
    try:
        yield
    finally:
        root.reshard()


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """A gradient norm over sharded parameters (a DTensor) as a plain tensor."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Every process calls it; the main process gets the full weights on the CPU, the others an
    empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def shared_name(prefix: str) -> str:
    """A random folder name (mkdtemp's 8 characters after `prefix`) the same on every process."""
    import torch.distributed as dist

    name = [f"{prefix}{secrets.token_hex(4)}"]
    dist.broadcast_object_list(name, src=0)
    return name[0]


def save_shards(root: Any, optimizer: Any, out_dir: Path, step: int) -> Path:
    """Every process writes its shards of the weights and the optimizer state into one temporary
    folder in out_dir (named as a half-written checkpoint, so a killed run's is removed at the next
    start); returns it."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    folder = Path(out_dir) / shared_name(f".checkpoint-{step}-")
    model_state, optim_state = get_state_dict(root, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(folder))
    dist.barrier()
    return folder


def load_shards(root: Any, optimizer: Any, folder: Path) -> None:
    """Weights and optimizer state from a sharded checkpoint (resharded by DCP where the number of
    processes differs from the run that wrote it)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(root, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(root, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])
