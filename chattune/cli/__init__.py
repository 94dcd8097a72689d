"""The `chattune` command: one subcommand = parse -> config -> one library call.

Only this module reads argv and the environment. A user's mistake (ChattuneError) is printed as one
clear message and exit code 1, never as a traceback.
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
    add_model_arg,
    add_model_options,
    console,
    dtype_arg,
    err_console,
    load_for_inference_args,
    model_arg,
    resolved_model,
    template_kwargs_arg,
)
from chattune.cli.data_commands import add_data_commands
from chattune.cli.eval_commands import add_generation_commands, old_spellings
from chattune.cli.export_command import add_export_command
from chattune.cli.judge_command import add_judge_command
from chattune.cli.parser import ChattuneParser, leaf_parsers, place_late_positionals
from chattune.cli.template_commands import add_template_commands
from chattune.errors import ChattuneError, TrainingInterrupted
from chattune.outputs.quiet import Kept, kept_quiet
from chattune.outputs.run_info import chattune_version

# a full disk or a path that cannot be written, wherever it is met: the user's to fix, not a
# traceback
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}


def _cmd_train(args: argparse.Namespace) -> int:
    from chattune.config import load_config
    from chattune.pipeline import run_training

    overrides = args.set + ([f"device={args.device}"] if args.device else []) \
        + (["overwrite_output_dir=true"] if args.overwrite_output_dir else [])
    if args.allow_config_changes and not args.resume:
        raise ChattuneError("--allow-config-changes is for --resume (it lets a resume continue "
                            "under a changed config)")
    cfg = load_config(args.config, overrides)
    result = run_training(cfg, console, resume=args.resume,
                          allow_config_changes=args.allow_config_changes)
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher, one process reports
        args.log_dir = result.output_dir  # the libraries' messages go beside the run's metrics
        console.print(f"done: final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from chattune.data.schema import Message
    from chattune.generate import stream_reply

    model, tokenizer = load_for_inference_args(model_arg(args), args.adapter, args)
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
    from chattune.model.load import resolve_model_path
    from chattune.outputs.model_card import base_licence, merged_card_text
    from chattune.outputs.save import refuse_to_replace, save_pretrained_atomic
    from chattune.templates.setup import stop_token_ids

    if len(args.paths) not in (2, 3):
        raise ChattuneError("merge: expected MODEL [ADAPTER] OUT (a run or adapter folder and "
                            f"OUT, or a base model, its adapter and OUT), got {len(args.paths)} "
                            "paths")
    *source, out = args.paths
    found = resolved_model(source[0], source[1] if len(source) > 1 else None, args,
                           adapter_first=True)
    if found.adapter is None:
        raise ChattuneError(f"merge: {source[0]} has no LoRA adapter to merge; give a run or "
                            "adapter folder, or a base model and its adapter")
    # before the merge (minutes on a big model), and the adapter itself is never a valid target
    refuse_to_replace(Path(out), overwrite=args.overwrite, keep=(found.adapter, Path(found.model)))
    merged, tokenizer, diff = merge_saved_adapter(found.model, found.adapter, device=args.device,
                                                  tolerance=args.tolerance,
                                                  save_dtype=dtype_arg(args.dtype),
                                                  trust_remote_code=args.trust_remote_code)
    console.print(f"max logit difference, merged vs base+adapter (fp32): {diff:.2e} (tolerance "
                  f"{args.tolerance:.0e})")
    dtype = str(merged.dtype).removeprefix("torch.")
    card = merged_card_text(merged.name_or_path, found.adapter,
                            f"merged in fp32 by `chattune merge`, max "
                            f"logit difference vs base+adapter {diff:.1e}; saved in {dtype}",
                            base_licence(merged.name_or_path, resolve_model_path(found.model)))
    save_pretrained_atomic(merged, tokenizer, Path(out), stop_token_ids(tokenizer), card=card)
    console.print(f"merged model written to {out} ({dtype})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ChattuneParser(prog="chattune",
                            description="Supervised fine-tuning of chat models with exact loss "
                            "masks. Each subcommand has its own --help. MODEL, wherever a command "
                            "takes one, is a hub id, a model folder, a .gguf file, an adapter "
                            "folder or a `chattune train` run folder.")
    parser.add_argument("--version", action="version", version=f"chattune {chattune_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_command(sub)
    _add_chat_command(sub)
    _add_merge_command(sub)
    add_template_commands(sub)
    add_data_commands(sub)
    add_generation_commands(sub)
    add_judge_command(sub)
    add_export_command(sub)
    for leaf in leaf_parsers(parser):
        leaf.set_defaults(parser=leaf)  # where an unrecognised flag is looked up for "did you mean"
    _add_verbose(parser)
    return parser


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a model as a YAML config says",
                       description="Train, save adapter/model, metrics.jsonl and loss.png, then "
                       "compare before/after if the config has a `compare` section.")
    p.add_argument("config", help="YAML config file (keys take TRL SFTConfig's names)")
    p.settings = _config_keys()  # `--learning-rate 1e-4` is `--set learning_rate=1e-4`: said so
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, dotted for nested keys (e.g. --set lora.r=8); "
                        "repeatable")
    p.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="continue from the latest checkpoint in output_dir, or from CHECKPOINT "
                   "(refused when the config differs from the checkpoint's in what is trained)")
    p.add_argument("--allow-config-changes", action="store_true",
                   help="with --resume: continue although the config differs from the checkpoint's "
                   "in what is trained (model, data, LoRA, batch sizes, learning rate and "
                   "schedule, seed, ...)")
    p.add_argument("--overwrite_output_dir", "--overwrite-output-dir", action="store_true",
                   help="start afresh in an output_dir that holds another run's checkpoints, "
                   "removing them (the config key overwrite_output_dir)")
    p.add_argument("--device",
                   help="auto, cpu, cuda, cuda:N or mps (the config's `device`; default auto)")
    p.set_defaults(func=_cmd_train)


def _add_chat_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a model (streaming), optionally with a LoRA adapter",
                       description="Streams the model's replies in a conversation on the terminal "
                       "(/reset clears it, /exit or Ctrl-D leaves), or answers one --prompt and "
                       "exits. Greedy unless --temperature is set.")
    add_model_arg(p, "the model to chat with")
    p.add_argument("--adapter",
                   help="PEFT adapter folder (or a run folder: its adapter/) to apply to MODEL")
    p.add_argument("--system", help="system prompt for the conversation")
    p.add_argument("--prompt", help="answer this one message and exit")
    p.add_argument("--max-new-tokens", type=int, default=512, help="reply length cap (default 512)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature; 0 is greedy (default)")
    add_model_options(p)
    p.set_defaults(func=_cmd_chat)


def _add_merge_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge",
                       help="merge a LoRA adapter into its base model, checked before writing",
                       usage="chattune merge [options] MODEL [ADAPTER] OUT",
                       description="MODEL: a run folder or an adapter folder (merged into the base "
                       "it names), or a base model followed by its ADAPTER. Compares merged logits "
                       "with base+adapter logits on a few prompts, prints the max difference, and "
                       "refuses to write if it exceeds --tolerance.")
    p.add_argument("paths", nargs="+", metavar="MODEL [ADAPTER] OUT",
                   help="a run or adapter folder, or a base model (hub id, folder, .gguf) and its "
                   "adapter folder; then the folder to write the merged model to (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace what a non-empty OUT holds")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="max allowed logit difference (default 1e-3)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run code shipped with a hub model (unsafe)")
    add_device_options(p, "dtype the merged model is saved in (default auto: the base's stored "
                        "dtype); the merge itself runs in fp32")
    p.set_defaults(func=_cmd_merge)


def _config_keys() -> list[str]:
    from chattune.config import TrainConfig

    return TrainConfig.user_keys()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chattune` command."""
    args, extra = build_parser().parse_known_args(old_spellings(list(
        sys.argv[1:] if argv is None else argv)))
    left = place_late_positionals(args.parser, args, extra)
    if left:
        args.parser.unrecognized(left)
    func: Callable[[argparse.Namespace], int] = args.func
    verbose = (args.verbose or os.environ.get("CHATTUNE_VERBOSE", "").lower()
               not in ("", "0", "false", "no"))
    # a command that ends well with a folder of its own sets log_dir
    args.kept, args.log_dir = Kept(), None
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
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e.filename or ''))}: "
                          f"{escape(e.strerror or '')} (free space, or choose a path you can "
                          "write)", highlight=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    finally:
        _write_kept(args.kept, args.log_dir, verbose)


def _write_kept(kept: Kept, folder: Path | None, verbose: bool) -> None:
    """The libraries' messages into the run's folder (chattune's cache for other commands and failed
    runs), and one line saying where."""
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
    parser.add_argument("--verbose", action="store_true",
                        default=False if top else argparse.SUPPRESS, help="show the libraries' "
                        "warnings, log messages and progress bars as they come (also "
                        "CHATTUNE_VERBOSE=1); without it they are kept in a log file, named at the "
                        "end")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_verbose(sub, top=False)


if __name__ == "__main__":
    sys.exit(main())
