"""A tiny random-initialised model with a real tokenizer's vocabulary: for smoke runs of examples
and tests."""

from __future__ import annotations

from typing import Any

import torch


def make_tiny_model(tokenizer: Any, seed: int = 0) -> Any:
    """A 2-layer Llama with the tokenizer's vocabulary and random weights: fast, and real enough to
    train."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()
