"""Speed features that change how the model runs, not what it computes: regional torch.compile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from chattune.errors import ConfigError


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The repeated decoder blocks of a causal LM (inside a peft wrapper too)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return list(getattr(decoder, "layers", None) or [])


class CompiledLayers:
    """While training: each decoder layer torch.compile'd in place (regional compilation, one graph reused by
    every layer of the type, instead of the whole model), with dynamic shapes so a new sequence length does not
    recompile. Generation (eval answers, and everything after training) runs the layers eagerly: its KV-cache
    shapes would only recompile."""

    def __init__(self, model: Any, enabled: bool):
        self.layers = decoder_layers(model) if enabled else []
        if enabled and not self.layers:
            raise ConfigError([f"compile: {type(model).__name__} has no list of decoder layers to compile; set "
                               "compile: false"])
        self.compiled = [torch.compile(layer._call_impl, dynamic=True) for layer in self.layers]

    def _set(self, on: bool) -> None:
        for layer, compiled in zip(self.layers, self.compiled):
            # Module.__call__ runs _compiled_call_impl when set (what Module.compile does); None is eager
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
