"""Speed features that change how the model runs, not what it computes: Liger Kernel's fused kernels
and regional torch.compile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from chattune.errors import ConfigError
from chattune.model.lora import base_model


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The repeated decoder blocks of a causal LM (inside a peft wrapper too)."""
    base = base_model(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return list(getattr(decoder, "layers", None) or [])


LIGER_KERNELS = ("rms_norm", "rope", "swiglu", "fused linear cross-entropy")


def check_liger(device: torch.device) -> None:
    """Liger's Triton kernels run on CUDA GPUs where the package is installed; liger: true elsewhere
    is a ConfigError that says why."""
    import importlib.util

    if device.type != "cuda" or importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError([f"liger: Liger Kernel runs on CUDA GPUs with the liger-kernel package "
                           f"(pip install 'chattune[liger]'); this run is on {device}"])


def attention_kernel(asked: str | None, padding_free: bool, device: torch.device) -> str | None:
    """The attention kernel a run loads its model with: the one asked for; else, for padding-free
    micro-batches on a CUDA GPU, a variable-length one (flash-attn's where it is installed, else
    PyTorch's FlexAttention), since SDPA would attend over a dense mask as long as the whole
    micro-batch; else None (transformers' default, SDPA)."""
    import importlib.util

    if asked or not padding_free or device.type != "cuda":
        return asked
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "flex_attention"


def check_attention(attn_implementation: str | None, device: torch.device) -> None:
    """Attention kernels that cannot train on `device` are a ConfigError before any work, not a
    traceback at the first backward pass: PyTorch's FlexAttention has no backward pass off CUDA, and
    flash-attn's kernels are CUDA's alone."""
    if attn_implementation not in ("flex_attention", "flash_attention_2") or device.type == "cuda":
        return
    why = ("PyTorch's FlexAttention computes no gradients there"
           if attn_implementation == "flex_attention"
           else "flash-attn's kernels run on CUDA GPUs only")
    raise ConfigError([f"attn_implementation: {attn_implementation} trains on CUDA GPUs only "
                       f"({why}); this run is on {device}: use sdpa (the default) or eager there"])


def apply_liger(model: Any, device: torch.device) -> str:
    """Patch the model in place with Liger Kernel's RMSNorm, RoPE and SwiGLU, and mark it for the
    fused linear cross-entropy in chattune's loss (the LM head and loss in one kernel, the logits
    never materialised). Returns what was applied, for the run's first lines. Call before LoRA wraps
    the model."""
    check_liger(device)
    from liger_kernel.transformers import _apply_liger_kernel_to_instance
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    model_type = getattr(model.config, "model_type", None)
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return f"liger: none (no kernels for model type {model_type!r})"
    _apply_liger_kernel_to_instance(model=model, rms_norm=True, rope=True, swiglu=True,
                                    # chattune's loss calls the fused one
                                    cross_entropy=False, fused_linear_cross_entropy=False)
    model.chattune_fused_loss = True
    return "liger: " + " ".join(LIGER_KERNELS)


class CompiledLayers:
    """While training: each decoder layer torch.compile'd in place (regional compilation, one graph
    reused by every layer of the type, instead of the whole model), with dynamic shapes so a new
    sequence length does not recompile. Generation (eval answers, and everything after training)
    runs the layers eagerly: its KV-cache shapes would only recompile."""

    def __init__(self, model: Any, enabled: bool):
        self.layers = decoder_layers(model) if enabled else []
        if enabled and not self.layers:
            raise ConfigError([f"compile: {type(model).__name__} has no list of decoder layers to "
                               "compile; set compile: false"])
        self.compiled = [torch.compile(layer._call_impl, dynamic=True) for layer in self.layers]

    def _set(self, on: bool) -> None:
        for layer, compiled in zip(self.layers, self.compiled):
            # Module.__call__ runs _compiled_call_impl when set (what Module.compile does); None is
            # eager
            layer._compiled_call_impl = compiled if on else None

    def __enter__(self) -> CompiledLayers:
        self._set(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._set(False)

    @contextmanager
    def eager(self) -> Iterator[None]:
        """The layers run uncompiled inside this block (generation during training)."""
        self._set(False)
        try:
            yield
        finally:
            self._set(True)
