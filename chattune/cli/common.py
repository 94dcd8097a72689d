"""What the subcommands share: the consoles, model loading from flags, and flag parsers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from chattune.errors import ChattuneError

console = Console(soft_wrap=True)  # paths and row numbers stay on one line, for copying and grep
err_console = Console(stderr=True, soft_wrap=True)


def dtype_arg(name: str) -> Any:
    """A --dtype value as a torch dtype; None for auto."""
    from chattune.model.inference import dtype_named

    return dtype_named(name)


def load_for_inference_args(model: str, adapter: str | None, args: argparse.Namespace):
    from chattune.model.inference import load_for_inference

    return load_for_inference(model, adapter, template=getattr(args, "template", None),
                              trust_remote_code=args.trust_remote_code, device=args.device, dtype=args.dtype)


def template_kwargs_arg(text: str | None) -> dict[str, Any] | None:
    """--template-kwargs '{"enable_thinking": false}' -> a dict (a clear error for anything else)."""
    import json

    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChattuneError(f"--template-kwargs expects a JSON object, got {text!r} ({e.msg})") from None
    if not isinstance(value, dict):
        raise ChattuneError(f"--template-kwargs expects a JSON object, got {type(value).__name__}")
    return value


def add_template_kwargs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template-kwargs", metavar="JSON",
                   help='options for the chat template, e.g. \'{"enable_thinking": false}\'')


def columns_arg(pairs: list[str] | None) -> dict[str, str] | None:
    """`question=user answer=assistant` -> {"question": "user", "answer": "assistant"}."""
    if not pairs:
        return None
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ChattuneError(f"--columns expects COLUMN=ROLE pairs, got {' '.join(bad)}")
    return dict(pair.split("=", 1) for pair in pairs)


def add_model_options(p: argparse.ArgumentParser, weights: bool = True) -> None:
    p.add_argument("--template", help="built-in template name or Jinja string (default: the tokenizer's own)")
    add_template_kwargs(p)
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model (unsafe)")
    if weights:
        add_device_options(p)


def add_device_options(p: argparse.ArgumentParser, dtype_help: str = "weights' dtype (default auto: bf16 on a "
                        "GPU with bf16, fp32 elsewhere)") -> None:
    p.add_argument("--device", default="auto", help="auto (the first GPU, else mps, else CPU), cpu, cuda, cuda:N "
                   "or mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help=dtype_help)

