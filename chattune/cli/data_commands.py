"""`chattune data check` and `chattune data convert`."""

from __future__ import annotations

import argparse
from typing import Any

from chattune.cli.common import (
    add_model_arg,
    add_template_kwargs,
    columns_arg,
    console,
    resolved_model,
    template_kwargs_arg,
)


def _check_targets(args: argparse.Namespace) -> tuple[str, str | None, list[tuple[Any, dict]]]:
    """(model, template, [(source, options)]) from a config file or a data file plus flags."""
    from pydantic import ValidationError

    from chattune.config import DEFAULT_MODEL, DataSource, load_config
    from chattune.errors import ConfigError

    if args.target.endswith((".yaml", ".yml")):
        cfg = load_config(args.target)
        opts = {"max_length": cfg.args.max_length, "train_on": cfg.data.train_on,
                "truncation": cfg.data.truncation, "template_kwargs": cfg.template_kwargs}
        sources = cfg.data.sources("train") + cfg.data.sources("eval")
        return args.model or cfg.model, args.template or cfg.template, [(s, opts) for s in sources]
    try:
        spec = DataSource(path=args.target, columns=columns_arg(args.columns),
                          format=args.input_format, prompt_template=args.prompt_template)
    except ValidationError as e:
        raise ConfigError([err["msg"] for err in e.errors()]) from None
    opts = {"max_length": args.max_length, "train_on": "all_assistant",
            "truncation": args.truncation,
            "template_kwargs": template_kwargs_arg(args.template_kwargs)}
    return args.model or DEFAULT_MODEL, args.template, [(spec, opts)]


def _template_used(template: str | None, tokenizer_had_one: bool) -> str:
    """The template a check rendered with, in words."""
    from chattune.templates import BUILTIN_TEMPLATES

    if template in BUILTIN_TEMPLATES:
        return f"{template} (built-in)"
    if template is not None:
        return "the Jinja template given"
    return "the tokenizer's own" if tokenizer_had_one else "chatml (the tokenizer has none)"


def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from chattune.datacheck import check_source
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.prepare.rows import print_stats
    from chattune.templates.setup import setup_template

    model, template, targets = _check_targets(args)
    tokenizer = load_tokenizer(resolve_model_path(model))
    used = {"tokenizer": model,
            "template": _template_used(template, bool(getattr(tokenizer, "chat_template", None)))}
    setup_template(None, tokenizer, template)  # as training sets it up (a built-in adds its tokens)
    reports = [check_source(src, tokenizer, limit=args.limit, **opts) for src, opts in targets]
    if args.json:
        console.print_json(json.dumps([{**r.as_dict(), **used, "max_length": opts["max_length"],
                                        "truncation": opts["truncation"]}
                                       for r, (_, opts) in zip(reports, targets)]))
        return 1 if any(r.bad or r.dropped for r in reports) else 0
    opts = targets[0][1]
    console.print(f"checked with the tokenizer of {model}, template {used['template']}, max_length "
                  f"{opts['max_length']} (truncation {opts['truncation']})", highlight=False,
                  markup=False)
    for r in reports:
        print_stats(console, r, r.source, problems=20)
    return 1 if any(r.bad or r.dropped for r in reports) else 0


def _data_check_entry(args: argparse.Namespace) -> int:
    """MODEL as every command takes it: a run or adapter folder stands for the folder whose
    tokenizer (and chat template) it trained or answers with."""
    if args.model:
        found = resolved_model(args.model, None, args)
        args.model = str(found.adapter) if found.adapter is not None else found.model
    return _cmd_data_check(args)


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from chattune.datacheck import convert_file

    n = convert_file(args.input, args.output, columns=columns_arg(args.columns),
                     system_prompt=args.system_prompt, fmt=args.input_format,
                     prompt_template=args.prompt_template)
    console.print(f"wrote {n} rows to {args.output}")
    return 0


def _add_shape_flags(p: argparse.ArgumentParser) -> None:
    from typing import get_args

    from chattune.config import Format

    p.add_argument("--input-format", choices=list(get_args(Format)),
                   help="the rows' shape (default: detected per row)")
    p.add_argument("--prompt-template",
                   help="user message from columns, e.g. 'Question: {question}' (with "
                   "--columns answer=assistant)")


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check or convert datasets",
                          description="check: validate every row of a data file or a config's data "
                          "as training would; convert: write any supported shape as {messages: "
                          "[...]} JSONL.")
    data = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = data.add_parser("check", help="validate every row and report",
                        description="Converts, renders and verifies every row with the tokenizer, "
                        "template and max_length it names; reports each file's column mapping, "
                        "rows ok and bad by reason (the first 20 problems with their rows), token "
                        "lengths, trained share and truncation: the account training prints. Exit "
                        "1 if any row is bad or dropped.")
    p.add_argument("target",
                   help="a training config (.yaml: its data.train and data.eval) or a data file")
    add_model_arg(p, "whose tokenizer and chat template to render with (default: the config's "
                  "model, else the built-in one)", default_named=False)
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE",
                   help="map columns to roles (data files only)")
    p.add_argument("--max-length", type=int, default=1024,
                   help="truncation length (data files only)")
    p.add_argument("--truncation", choices=["error", "drop", "keep_start", "keep_end"],
                   default="keep_start", help="rows longer than --max-length (data files only)")
    p.add_argument("--template",
                   help="chat template: a built-in name or Jinja (default: the config's or the "
                   "model's own)")
    add_template_kwargs(p)
    _add_shape_flags(p)
    p.add_argument("--limit", type=int, help="check only the first N rows")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=_data_check_entry)
    p = data.add_parser("convert", help="write normalised {messages: [...]} JSONL",
                        description="Reads a data file in any supported shape (messages, ShareGPT, "
                        "Alpaca, prompt/completion, text, or columns mapped with --columns) and "
                        "writes one {messages: [...]} JSON object a line, the shape every tool "
                        "reads. Every bad row is reported and nothing is written.")
    p.add_argument("input", help="data file in any supported shape")
    p.add_argument("output", help="JSONL file to write")
    p.add_argument("--format", choices=["messages"], default="messages",
                   help="output shape (messages)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles")
    p.add_argument("--system-prompt", help="add this system message to every conversation")
    _add_shape_flags(p)
    p.set_defaults(func=_cmd_data_convert)

