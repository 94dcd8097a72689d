"""Model shapes for benchmarks: random-init Llama-family models of real sizes (speed and memory do
not depend on the weights), with the default model's tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

# LlamaConfig fields of each model family (vocabulary: the SmolLM2 tokenizer's unless given)
SHAPES = {
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2},
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3},
    "smollm2-360m": {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                     "num_attention_heads": 15, "num_key_value_heads": 5},
    "smollm2-1.7b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                     "num_attention_heads": 32, "num_key_value_heads": 32},
    "llama-3.2-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256},
}


def build_model_dir(shape: str, out: Path) -> None:
    """A random-init Llama of `shape` with the default model's tokenizer (or
    $CHATTUNE_TOKENIZER_DIR's), saved in bf16."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import load_tokenizer, resolve_model_path

    # a lent GPU machine has no model package: bench/gpu_kit.sh carries the default model's
    # tokenizer alone
    tokenizer = load_tokenizer(os.environ.get("CHATTUNE_TOKENIZER_DIR")
                               or resolve_model_path(DEFAULT_MODEL))
    fields = {"vocab_size": len(tokenizer), **SHAPES[shape]}
    config = LlamaConfig(**fields, max_position_embeddings=8192, tie_word_embeddings=True,
                         rope_theta=130000, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         dtype="bfloat16")
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def count_params(model_dir: Path) -> int:
    """Parameters every token multiplies through: the layers and the output head (a tied embedding
    once)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    head_dim = c.hidden_size // c.num_attention_heads
    attention = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    mlp = 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * (attention + mlp) + c.vocab_size * c.hidden_size
