"""What every example shares: `--fast` (a tiny random model, a few steps: what CI runs) or the full
form on the built-in default model, SmolLM2-135M-Instruct."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def parse(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true",
                        help="tiny random model, few steps (what CI runs)")
    parser.add_argument("--out", default=None,
                        help="where outputs go (default: runs/examples/NAME)")
    return parser.parse_args(argv)


def model_and_tokenizer(fast: bool) -> tuple[Any, Any]:
    """The default model, or (fast) a tiny random model with its real tokenizer and chat
    template."""
    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import load_model_and_tokenizer, load_tokenizer, resolve_model_path
    from chattune.model.tiny import make_tiny_model

    if fast:
        tokenizer = load_tokenizer(resolve_model_path(DEFAULT_MODEL))
        return make_tiny_model(tokenizer), tokenizer
    return load_model_and_tokenizer(DEFAULT_MODEL)


def out_dir(args: argparse.Namespace, name: str) -> Path:
    path = Path(args.out or ROOT / "runs" / "examples" / name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def reply(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 60) -> str:
    from chattune import Message, generate_batch

    return generate_batch(model, tokenizer, [[Message("user", prompt)]],
                          max_new_tokens=max_new_tokens)[0]
