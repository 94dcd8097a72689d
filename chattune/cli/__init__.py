"""The `chattune` command: one subcommand = parse -> config -> one library call.

Only this module reads argv and the environment. A user's mistake (ChattuneError) is printed as one clear
message and exit code 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.markup import escape

from chattune.cli.common import (
    add_device_options,
    add_model_options,
    columns_arg,
    console,
    dtype_arg,
    err_console,
    load_for_inference_args,
    template_kwargs_arg,
)
from chattune.cli.data_commands import add_data_commands
from chattune.cli.eval_commands import add_generation_commands
from chattune.cli.export_command import add_export_command
from chattune.cli.judge_command import add_judge_command
from chattune.errors import ChattuneError, TrainingInterrupted
from chattune.outputs.quiet import Kept, kept_quiet

# a full disk or a path that cannot be written, wherever it is met: the user's to fix, not a traceback
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}


def _cmd_train(args: argparse.Namespace) -> int:
    from chattune.config import load_config
    from chattune.pipeline import run_training

    overrides = args.set + ([f"device={args.device}"] if args.device else []) \
        + (["overwrite_output_dir=true"] if args.overwrite_output_dir else [])
    if args.allow_config_changes and not args.resume:
        raise ChattuneError("--allow-config-changes is for --resume (it lets a resume continue under a changed "
                            "config)")
    cfg = load_config(args.config, overrides)
    result = run_training(cfg, console, resume=args.resume, allow_config_changes=args.allow_config_changes)
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher, one process reports
        args.log_dir = result.output_dir  # the libraries' messages go beside the run's metrics
        console.print(f"done: final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from chattune.data.schema import Message
    from chattune.generate import stream_reply

    model, tokenizer = load_for_inference_args(args.model, args.adapter, args)
    history: list[Message] = [Message("system", args.system)] if args.system else []

    def answer(text: str) -> None:
        history.append(Message("user", text))
        reply = ""
        for piece in stream_reply(model, tokenizer, history, max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature,
                                  template_kwargs=template_kwargs_arg(args.template_kwargs)):
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
    from chattune.model.inference import merge_saved_adapter
    from chattune.outputs.save import refuse_to_replace, save_pretrained_atomic
    from chattune.templates.setup import stop_token_ids

    # before the merge (minutes on a big model), and the adapter itself is never a valid target
    refuse_to_replace(Path(args.out), overwrite=args.overwrite, keep=(Path(args.adapter), Path(args.base)))
    merged, tokenizer, diff = merge_saved_adapter(args.base, args.adapter, device=args.device,
                                                  tolerance=args.tolerance, save_dtype=dtype_arg(args.dtype),
                                                  trust_remote_code=args.trust_remote_code)
    console.print(f"max logit difference, merged vs base+adapter (fp32): {diff:.2e} (tolerance {args.tolerance:.0e})")
    save_pretrained_atomic(merged, tokenizer, Path(args.out), stop_token_ids(tokenizer))
    console.print(f"merged model written to {args.out} ({str(merged.dtype).removeprefix('torch.')})")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from chattune.data.convert import to_conversation
    from chattune.data.load import load_rows
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.outputs.show import show_history_notes, show_rendered
    from chattune.templates.render import check_rendered, render

    tokenizer = load_tokenizer(resolve_model_path(args.model), args.trust_remote_code)
    columns = columns_arg(args.columns)
    if args.line is not None:  # the line an error message or an editor names
        found = [r for r in load_rows(args.data) if r[0] == args.line]
        if not found:
            raise ChattuneError(f"{args.data}: no row starts on line {args.line}")
        row_no, row = found[0]
    else:
        rows = load_rows(args.data, limit=args.row)
        if len(rows) < args.row:
            raise ChattuneError(f"{args.data}: has {len(rows)} rows, --row {args.row} asked for")
        row_no, row = rows[args.row - 1]
    conv = to_conversation(row, source=args.data, row_no=row_no, columns=columns)
    kwargs = template_kwargs_arg(args.template_kwargs)
    rendered = render(tokenizer, conv, template=args.template, train_on=args.train_on, template_kwargs=kwargs)
    check_rendered(tokenizer, rendered, conv.messages, args.train_on)
    show_rendered(console, tokenizer, rendered)
    if conv.text is None:
        from chattune.templates.history import history_notes

        show_history_notes(console, history_notes(tokenizer, conv.messages, template=args.template, tools=conv.tools,
                                                  template_kwargs=kwargs))
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from chattune.data.convert import conversations_from_rows
    from chattune.data.load import load_rows
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.outputs.show import doctor_table
    from chattune.templates.doctor import diagnose

    tokenizer = load_tokenizer(resolve_model_path(args.model), args.trust_remote_code)
    convs = []
    if args.data:
        columns = columns_arg(args.columns)
        convs = [c.messages for c in conversations_from_rows(load_rows(args.data, limit=args.limit), args.data,
                                                             columns=columns)]
    checks = diagnose(tokenizer, args.template, convs, template_kwargs=template_kwargs_arg(args.template_kwargs))
    console.print(doctor_table(checks, f"chat template doctor: {args.model}"))
    return 0 if all(c.ok for c in checks) else 1


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
    p.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="continue from the latest checkpoint in output_dir, or from CHECKPOINT (refused when the "
                   "config differs from the checkpoint's in what is trained)")
    p.add_argument("--allow-config-changes", action="store_true",
                   help="with --resume: continue although the config differs from the checkpoint's in what is "
                   "trained (model, data, LoRA, batch sizes, learning rate and schedule, seed, ...)")
    p.add_argument("--overwrite_output_dir", "--overwrite-output-dir", action="store_true",
                   help="start afresh in an output_dir that holds another run's checkpoints, removing them (the "
                   "config key overwrite_output_dir)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (the config's `device`; default auto)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("chat", help="chat with a model (streaming), optionally with a LoRA adapter")
    p.add_argument("model", help="hub id, local model directory or .gguf file")
    p.add_argument("--adapter", help="PEFT adapter directory to apply")
    p.add_argument("--system", help="system prompt for the conversation")
    p.add_argument("--prompt", help="answer this one message and exit")
    p.add_argument("--max-new-tokens", type=int, default=512, help="reply length cap (default 512)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 is greedy (default)")
    add_model_options(p)
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model, checked before writing",
                       description="Compares merged logits with base+adapter logits on a few prompts, prints the "
                       "max difference, and refuses to write if it exceeds --tolerance.")
    p.add_argument("base", help="base model: hub id, local directory or .gguf file")
    p.add_argument("adapter", help="PEFT adapter directory")
    p.add_argument("out", help="directory to write the merged model to (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace what a non-empty OUT holds")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max allowed logit difference (default 1e-3)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model (unsafe)")
    add_device_options(p, "dtype the merged model is saved in (default auto: the base's stored dtype); the "
                        "merge itself runs in fp32")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("render", help="show how a data row renders, trained tokens highlighted")
    p.add_argument("--model", required=True, help="model whose tokenizer and template to use")
    p.add_argument("--data", required=True, help="data file")
    p.add_argument("--row", type=int, default=1, help="1-based row to show (default 1)")
    p.add_argument("--line", type=int, help="show the row on this line of the file (as errors name it)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles, e.g. question=user")
    p.add_argument("--train-on", default="all_assistant", choices=["all_assistant", "last_assistant", "all"],
                   help="which tokens are trained (default all_assistant)")
    add_model_options(p, weights=False)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("doctor", help="check a model's chat template for mask and stop-token problems",
                       description="Checks: template present, exact masks, what the template does with history "
                       "(reasoning of earlier turns dropped, system prompt moved, turns rewritten), end-of-turn is "
                       "one special token and is trained, no doubled BOS, pad set, generation prompt matches "
                       "training, chat special tokens are single ids; with --data, every row renders with a "
                       "verified mask. Exit 1 on any failure.")
    p.add_argument("--model", required=True, help="model whose tokenizer and template to check")
    p.add_argument("--data", help="also render and verify this data file's rows")
    p.add_argument("--limit", type=int, default=200, help="rows of --data to check (default 200)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles, e.g. question=user")
    add_model_options(p, weights=False)
    p.set_defaults(func=_cmd_doctor)
    add_data_commands(sub)
    add_generation_commands(sub)
    add_judge_command(sub)
    add_export_command(sub)
    _add_verbose(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chattune` command."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    verbose = args.verbose or os.environ.get("CHATTUNE_VERBOSE", "").lower() not in ("", "0", "false", "no")
    args.kept, args.log_dir = Kept(), None  # a command that ends well with a folder of its own sets log_dir
    try:
        with kept_quiet(args.kept, verbose):
            return func(args)
    except TrainingInterrupted as e:
        err_console.print(f"[bold yellow]stopped:[/bold yellow] {escape(str(e))}", highlight=False)
        return 130
    except ChattuneError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False)
        return 1
    except OSError as e:
        if e.errno not in _STORAGE_ERRORS:
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e.filename or ''))}: {escape(e.strerror or '')} "
                          "(free space, or choose a path you can write)", highlight=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    finally:
        _write_kept(args.kept, args.log_dir, verbose)


def _write_kept(kept: Kept, folder: Path | None, verbose: bool) -> None:
    """The libraries' messages into the run's folder (chattune's cache for other commands and failed runs), and
    one line saying where."""
    if not len(kept):
        return
    if folder is None:
        from chattune.config import cache_dir

        folder = cache_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
    try:
        path = kept.write(folder)
    except OSError as e:  # the log must not turn a finished command into a failed one
        err_console.print(f"could not write {folder}: {e.strerror}", highlight=False)
        return
    hint = "" if verbose else " (--verbose shows them as they come)"
    err_console.print(f"[dim]{escape(kept.summary(path))}{hint}[/dim]", highlight=False)


def _add_verbose(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """--verbose before or after the subcommand, on every subcommand."""
    parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the libraries' warnings, log messages and progress bars as they come (also "
                        "CHATTUNE_VERBOSE=1); without it they are kept in a log file, named at the end")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_verbose(sub, top=False)


if __name__ == "__main__":
    sys.exit(main())
