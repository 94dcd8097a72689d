"""The `chattune` command: one subcommand = parse -> config -> one library call.

Only this module reads argv and the environment. A user's mistake (ChattuneError) is printed as one clear
message and exit code 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from chattune.errors import ChattuneError

console = Console()
err_console = Console(stderr=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from chattune.config import load_config
    from chattune.pipeline import run_training

    cfg = load_config(args.config, args.set)
    result = run_training(cfg, console)
    console.print(f"done: final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0


def _load_for_inference(model: str, adapter: str | None, template: str | None, trust_remote_code: bool):
    from chattune.model.device import pick_device
    from chattune.model.load import load_model_and_tokenizer
    from chattune.model.lora import load_adapter
    from chattune.pipeline import setup_template

    base, tokenizer = load_model_and_tokenizer(model, trust_remote_code)
    if adapter:
        from chattune.model.load import load_tokenizer

        tokenizer = load_tokenizer(adapter)  # the adapter carries the template it was trained with
        base = load_adapter(base, adapter, vocab_size=len(tokenizer))
    setup_template(base, tokenizer, template)
    return base.to(pick_device()).eval(), tokenizer


def _cmd_chat(args: argparse.Namespace) -> int:
    from chattune.data.schema import Message
    from chattune.generate import stream_reply

    model, tokenizer = _load_for_inference(args.model, args.adapter, args.template, args.trust_remote_code)
    history: list[Message] = [Message("system", args.system)] if args.system else []

    def answer(text: str) -> None:
        history.append(Message("user", text))
        reply = ""
        for piece in stream_reply(model, tokenizer, history, max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature):
            reply += piece
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        console.print()
        history.append(Message("assistant", reply.strip() or "(empty)"))

    if args.prompt is not None:
        answer(args.prompt)
        return 0
    console.print("[dim]chat: /reset clears the conversation, /exit or Ctrl-D leaves[/dim]")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            console.print()
            return 0
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            del history[1 if args.system else 0:]
            continue
        if text:
            console.print("assistant> ", end="")
            answer(text)


def _cmd_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chattune.generate import stop_token_ids
    from chattune.model.lora import merge_adapter
    from chattune.outputs.save import save_pretrained_atomic

    model, tokenizer = _load_for_inference(args.base, args.adapter, None, args.trust_remote_code)
    merged, diff = merge_adapter(model, tokenizer, tolerance=args.tolerance)
    console.print(f"max logit difference, merged vs base+adapter: {diff:.2e} (tolerance {args.tolerance:.0e})")
    save_pretrained_atomic(merged, tokenizer, Path(args.out), stop_token_ids(tokenizer))
    console.print(f"merged model written to {args.out}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from chattune.data.convert import to_conversation
    from chattune.data.load import load_rows
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.outputs.show import show_rendered
    from chattune.templates.render import check_rendered, render

    tokenizer = load_tokenizer(resolve_model_path(args.model), args.trust_remote_code)
    columns = dict(pair.split("=", 1) for pair in args.columns) if args.columns else None
    rows = load_rows(args.data, limit=args.row)
    row_no, row = rows[args.row - 1]
    conv = to_conversation(row, source=args.data, row_no=row_no, columns=columns)
    rendered = render(tokenizer, conv, template=args.template, train_on=args.train_on)
    check_rendered(tokenizer, rendered, conv.messages, args.train_on)
    show_rendered(console, tokenizer, rendered)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from rich.table import Table

    from chattune.data.convert import conversations_from_rows
    from chattune.data.load import load_rows
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.templates.doctor import diagnose

    tokenizer = load_tokenizer(resolve_model_path(args.model), args.trust_remote_code)
    convs = []
    if args.data:
        columns = dict(pair.split("=", 1) for pair in args.columns) if args.columns else None
        convs = [c.messages for c in conversations_from_rows(load_rows(args.data, limit=args.limit), args.data,
                                                             columns=columns)]
    checks = diagnose(tokenizer, args.template, convs)
    table = Table(title=f"chat template doctor: {args.model}")
    for col in ("check", "result", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.ok else "[red]FAIL[/red]", escape(c.detail), escape(c.fix))
    console.print(table)
    return 0 if all(c.ok for c in checks) else 1


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", help="built-in template name or Jinja string (default: the tokenizer's own)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model (unsafe)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chattune", description="Supervised fine-tuning of chat models with "
                                     "exact loss masks. Each subcommand has its own --help.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="fine-tune a model as a YAML config says",
                       description="Train, save adapter/model, metrics.jsonl and loss.png, then compare before/after "
                       "if the config has a `compare` section.")
    p.add_argument("config", help="YAML config file (keys take TRL SFTConfig's names)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, dotted for nested keys (e.g. --set lora.r=8); repeatable")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("chat", help="chat with a model (streaming), optionally with a LoRA adapter")
    p.add_argument("model", help="hub id, local model directory or .gguf file")
    p.add_argument("--adapter", help="PEFT adapter directory to apply")
    p.add_argument("--system", help="system prompt for the conversation")
    p.add_argument("--prompt", help="answer this one message and exit")
    p.add_argument("--max-new-tokens", type=int, default=512, help="reply length cap (default 512)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 is greedy (default)")
    _add_model_options(p)
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model, checked before writing",
                       description="Compares merged logits with base+adapter logits on a few prompts, prints the "
                       "max difference, and refuses to write if it exceeds --tolerance.")
    p.add_argument("base", help="base model: hub id, local directory or .gguf file")
    p.add_argument("adapter", help="PEFT adapter directory")
    p.add_argument("out", help="directory to write the merged model to")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max allowed logit difference (default 1e-3)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model (unsafe)")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("render", help="show how a data row renders, trained tokens highlighted")
    p.add_argument("--model", required=True, help="model whose tokenizer and template to use")
    p.add_argument("--data", required=True, help="data file")
    p.add_argument("--row", type=int, default=1, help="1-based row to show (default 1)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles, e.g. question=user")
    p.add_argument("--train-on", default="all_assistant", choices=["all_assistant", "last_assistant", "all"],
                   help="which tokens are trained (default all_assistant)")
    _add_model_options(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("doctor", help="check a model's chat template for mask and stop-token problems",
                       description="Checks: template present, prefix-preserving, end-of-turn is one special token "
                       "and is trained, no doubled BOS, pad set, generation prompt matches training, chat special "
                       "tokens are single ids; with --data, every row renders with a verified mask. Exit 1 on "
                       "any failure.")
    p.add_argument("--model", required=True, help="model whose tokenizer and template to check")
    p.add_argument("--data", help="also render and verify this data file's rows")
    p.add_argument("--limit", type=int, default=200, help="rows of --data to check (default 200)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles, e.g. question=user")
    _add_model_options(p)
    p.set_defaults(func=_cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chattune` command."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ChattuneError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
