"""What the subcommands share: the consoles, model loading from flags, and flag parsers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from chattune.errors import ChattuneError

console = Console(soft_wrap=True)  # paths and row numbers stay on one line, for copying and grep
err_console = Console(stderr=True, soft_wrap=True)


def dtype_arg(name: str) -> Any:
    """A --dtype value as a torch dtype; None for auto."""
    from chattune.model.inference import dtype_named

    return dtype_named(name)


def say(args: argparse.Namespace) -> Console:
    """Where a command's notes go: stdout, or stderr when --json keeps stdout for the JSON alone."""
    return err_console if getattr(args, "json", False) else console


def add_model_arg(p: argparse.ArgumentParser, what: str = "the model",
                  default_named: bool = True) -> None:
    """MODEL, positional and optional in every subcommand that takes one (the built-in default where
    not given); `--model MODEL`, the spelling of earlier versions, still works."""
    from chattune.config import DEFAULT_MODEL

    p.add_argument("model", nargs="?", default=argparse.SUPPRESS, metavar="MODEL",
                   help=f"{what}: hub id, model folder, .gguf file, adapter folder or `chattune "
                   "train` run folder (its merged/, else base + adapter/, else model/)"
                   + (f" (default {DEFAULT_MODEL})"
    if default_named else ""))
    p.add_argument("--model", dest="model", default=None, help=argparse.SUPPRESS)


def model_arg(args: argparse.Namespace) -> str:
    """The MODEL given, or the built-in default."""
    from chattune.config import DEFAULT_MODEL

    return getattr(args, "model", None) or DEFAULT_MODEL


def resolved_model(model: str, adapter: str | None, args: argparse.Namespace,
                   adapter_first: bool = False):
    """MODEL (+ --adapter) resolved (a run or adapter folder to its parts), said in one line when it
    was a folder."""
    from chattune.model.source import resolve_source

    found = resolve_source(model, adapter, adapter_first=adapter_first)
    if found.via:
        say(args).print(f"[dim]using {escape(found.via)}[/dim]", highlight=False)
    return found


def load_for_inference_args(model: str, adapter: str | None, args: argparse.Namespace):
    from chattune.model.inference import load_for_inference

    found = resolved_model(model, adapter, args)
    return load_for_inference(found.model, found.adapter, template=getattr(args, "template", None),
                              trust_remote_code=args.trust_remote_code, device=args.device,
                              dtype=args.dtype)


def tokenizer_for(model: str, args: argparse.Namespace) -> Any:
    """The tokenizer MODEL trains and answers with: an adapter's own (it carries the template it was
    trained with), else its model's."""
    from chattune.model.load import load_tokenizer, resolve_model_path

    found = resolved_model(model, None, args)
    if found.adapter is not None:
        return load_tokenizer(found.adapter, getattr(args, "trust_remote_code", False))
    return load_tokenizer(resolve_model_path(found.model),
                          getattr(args, "trust_remote_code", False))


def template_kwargs_arg(text: str | None) -> dict[str, Any] | None:
    """--template-kwargs '{"enable_thinking": false}' -> a dict (a clear error for anything
    else)."""
    import json

    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChattuneError(f"--template-kwargs expects a JSON object, got {text!r} "
                            f"({e.msg})") from None
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
    p.add_argument("--template",
                   help="built-in template name or Jinja string (default: the tokenizer's own)")
    add_template_kwargs(p)
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run code shipped with a hub model (unsafe)")
    if weights:
        add_device_options(p)


def add_device_options(p: argparse.ArgumentParser,
                       dtype_help: str = "weights' dtype (default auto: bf16 on a "
                        "GPU with bf16, fp32 elsewhere)") -> None:
    p.add_argument("--device", default="auto",
                   help="auto (the first GPU, else mps, else CPU), cpu, cuda, cuda:N "
                   "or mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help=dtype_help)

