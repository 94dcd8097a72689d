"""The `chattune` command: one subcommand = parse -> config -> one library call.

Only this module reads argv and the environment. A user's mistake (ChattuneError) is printed as one clear
message and exit code 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from chattune.errors import ChattuneError, TrainingInterrupted

# a full disk or a path that cannot be written, wherever it is met: the user's to fix, not a traceback
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}
console = Console(soft_wrap=True)  # paths and row numbers stay on one line, for copying and grep
err_console = Console(stderr=True, soft_wrap=True)


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
        console.print(f"done: final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0


def _dtype(name: str) -> Any:
    """A --dtype value as a torch dtype; None for auto."""
    from chattune.model.inference import dtype_named

    return dtype_named(name)


def _load_for_inference(model: str, adapter: str | None, args: argparse.Namespace):
    from chattune.model.inference import load_for_inference

    return load_for_inference(model, adapter, template=getattr(args, "template", None),
                              trust_remote_code=args.trust_remote_code, device=args.device, dtype=args.dtype)


def _cmd_chat(args: argparse.Namespace) -> int:
    from chattune.data.schema import Message
    from chattune.generate import stream_reply

    model, tokenizer = _load_for_inference(args.model, args.adapter, args)
    history: list[Message] = [Message("system", args.system)] if args.system else []

    def answer(text: str) -> None:
        history.append(Message("user", text))
        reply = ""
        for piece in stream_reply(model, tokenizer, history, max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature,
                                  template_kwargs=_template_kwargs(args.template_kwargs)):
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
                                                  tolerance=args.tolerance, save_dtype=_dtype(args.dtype),
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
    columns = _columns(args.columns)
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
    kwargs = _template_kwargs(args.template_kwargs)
    rendered = render(tokenizer, conv, template=args.template, train_on=args.train_on, template_kwargs=kwargs)
    check_rendered(tokenizer, rendered, conv.messages, args.train_on)
    show_rendered(console, tokenizer, rendered)
    if conv.text is None:
        from chattune.templates.history import history_notes

        show_history_notes(console, history_notes(tokenizer, conv.messages, template=args.template, tools=conv.tools,
                                                  template_kwargs=kwargs))
    return 0


def _template_kwargs(text: str | None) -> dict[str, Any] | None:
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


def _cmd_doctor(args: argparse.Namespace) -> int:
    from chattune.data.convert import conversations_from_rows
    from chattune.data.load import load_rows
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.outputs.show import doctor_table
    from chattune.templates.doctor import diagnose

    tokenizer = load_tokenizer(resolve_model_path(args.model), args.trust_remote_code)
    convs = []
    if args.data:
        columns = _columns(args.columns)
        convs = [c.messages for c in conversations_from_rows(load_rows(args.data, limit=args.limit), args.data,
                                                             columns=columns)]
    checks = diagnose(tokenizer, args.template, convs, template_kwargs=_template_kwargs(args.template_kwargs))
    console.print(doctor_table(checks, f"chat template doctor: {args.model}"))
    return 0 if all(c.ok for c in checks) else 1


def _add_template_kwargs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template-kwargs", metavar="JSON",
                   help='options for the chat template, e.g. \'{"enable_thinking": false}\'')


def _columns(pairs: list[str] | None) -> dict[str, str] | None:
    """`question=user answer=assistant` -> {"question": "user", "answer": "assistant"}."""
    if not pairs:
        return None
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ChattuneError(f"--columns expects COLUMN=ROLE pairs, got {' '.join(bad)}")
    return dict(pair.split("=", 1) for pair in pairs)


def _check_targets(args: argparse.Namespace) -> tuple[str, str | None, list[tuple[Any, dict]]]:
    """(model, template, [(source, options)]) from a config file or a data file plus flags."""
    from pydantic import ValidationError

    from chattune.config import DEFAULT_MODEL, DataSource, load_config
    from chattune.errors import ConfigError

    if args.target.endswith((".yaml", ".yml")):
        cfg = load_config(args.target)
        opts = {"max_length": cfg.max_length, "train_on": cfg.data.train_on, "truncation": cfg.data.truncation,
                "template_kwargs": cfg.template_kwargs}
        sources = cfg.data.sources("train") + cfg.data.sources("eval")
        return args.model or cfg.model, args.template or cfg.template, [(s, opts) for s in sources]
    try:
        spec = DataSource(path=args.target, columns=_columns(args.columns), format=args.input_format,
                          prompt_template=args.prompt_template)
    except ValidationError as e:
        raise ConfigError([err["msg"] for err in e.errors()]) from None
    opts = {"max_length": args.max_length, "train_on": "all_assistant", "truncation": args.truncation,
            "template_kwargs": _template_kwargs(args.template_kwargs)}
    return args.model or DEFAULT_MODEL, args.template, [(spec, opts)]


def _cmd_data_check(args: argparse.Namespace) -> int:
    import json

    from chattune.batching.prepare import print_stats
    from chattune.datacheck import check_source
    from chattune.model.load import load_tokenizer, resolve_model_path
    from chattune.templates.setup import setup_template

    model, template, targets = _check_targets(args)
    tokenizer = load_tokenizer(resolve_model_path(model))
    setup_template(None, tokenizer, template)  # as training sets it up (a built-in adds its tokens)
    reports = [check_source(src, tokenizer, limit=args.limit, **opts) for src, opts in targets]
    if args.json:
        console.print_json(json.dumps([r.as_dict() for r in reports]))
    else:
        for r in reports:
            print_stats(console, r, r.source, problems=20)
    return 1 if any(r.bad or r.dropped for r in reports) else 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from chattune.datacheck import convert_file

    n = convert_file(args.input, args.output, columns=_columns(args.columns), system_prompt=args.system_prompt,
                     fmt=args.input_format, prompt_template=args.prompt_template)
    console.print(f"wrote {n} rows to {args.output}")
    return 0


def _add_shape_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-format", choices=["messages", "sharegpt", "alpaca", "prompt_completion", "text"],
                   help="the rows' shape (default: detected per row)")
    p.add_argument("--prompt-template", help="user message from columns, e.g. 'Question: {question}' (with "
                   "--columns answer=assistant)")


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check or convert datasets").add_subparsers(dest="data_command",
                                                                                  required=True, metavar="COMMAND")
    p = data.add_parser("check", help="validate every row and report",
                        description="Converts, renders and verifies every row; reports formats, rows ok and bad "
                        "by reason (the first 20 problems with their rows), token lengths, trained share and "
                        "truncation: the account training prints. Exit 1 if any row is bad or dropped.")
    p.add_argument("target", help="a training config (.yaml: its data.train and data.eval) or a data file")
    p.add_argument("--model", help="tokenizer and template to render with (default: the config's, or SmolLM2)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles (data files only)")
    p.add_argument("--max-length", type=int, default=1024, help="truncation length (data files only)")
    p.add_argument("--truncation", choices=["error", "drop", "keep_start", "keep_end"], default="keep_start",
                   help="rows longer than --max-length (data files only)")
    p.add_argument("--template", help="chat template: a built-in name or Jinja (default: the config's or the "
                   "model's own)")
    _add_template_kwargs(p)
    _add_shape_flags(p)
    p.add_argument("--limit", type=int, help="check only the first N rows")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_data_check)
    p = data.add_parser("convert", help="write normalised {messages: [...]} JSONL")
    p.add_argument("input", help="data file in any supported shape")
    p.add_argument("output", help="JSONL file to write")
    p.add_argument("--format", choices=["messages"], default="messages", help="output shape (messages)")
    p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles")
    p.add_argument("--system-prompt", help="add this system message to every conversation")
    _add_shape_flags(p)
    p.set_defaults(func=_cmd_data_convert)


def _cmd_eval(args: argparse.Namespace) -> int:
    from chattune.eval import show
    from chattune.eval.harness import run_benchmarks
    from chattune.eval.tasks import resolve_tasks

    if args.list_tasks:
        console.print(show.task_listing(), highlight=False)
        return 0
    if not args.model or not (args.tasks or args.data):
        raise ChattuneError("eval: give a MODEL and --tasks (benchmarks: e.g. --tasks default) or --data (a file)")
    tasks = resolve_tasks(args.tasks.split(","), full=args.full) if args.tasks else []  # bad names before loading
    title = f"eval: {args.model}" + (f" + {args.adapter}" if args.adapter else "")
    model, tokenizer = _load_for_inference(args.model, args.adapter, args)
    if tasks:
        results = run_benchmarks(model, tokenizer, tasks, limit=args.limit, num_fewshot=args.num_fewshot,
                                 chat_template=args.chat_template, batch_size=args.batch_size, full=args.full)
        console.print(show.benchmark_table(results, title))
        output = results.as_json()
    else:
        console.print(show.metrics_table((output := _eval_dataset(model, tokenizer, args))["metrics"], title))
    if args.json:
        show.write_json(args.json, output, console)
    return 0


def _eval_dataset(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    from chattune.compare import evaluate_dataset
    from chattune.data.load import load_rows
    from chattune.evaluate import extract_gsm8k, regex_extractor
    from chattune.outputs.metrics import counting_progress

    extract = regex_extractor(args.answer_regex) if args.answer_regex else extract_gsm8k
    total = len(load_rows(args.data, limit=args.num_samples))
    with counting_progress(console, total, "generating") as advance:
        return evaluate_dataset(model, tokenizer, args.data, columns=_columns(args.columns),
                                limit=args.num_samples, max_new_tokens=args.max_new_tokens,
                                batch_size=args.batch_size, extract=extract, generate=not args.no_generate,
                                max_length=args.max_length, on_batch=advance,
                                template_kwargs=_template_kwargs(args.template_kwargs))


def _cmd_generate(args: argparse.Namespace) -> int:
    import json

    from chattune.compare import prompts_from_file
    from chattune.generate import generate_batch
    from chattune.outputs.metrics import counting_progress

    model, tokenizer = _load_for_inference(args.model, args.adapter, args)
    prompts, _ = prompts_from_file(args.data, columns=_columns(args.columns), limit=args.num_samples)
    with counting_progress(console, len(prompts), "generating") as advance:
        replies = generate_batch(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                 batch_size=args.batch_size, on_batch=advance,
                                 template_kwargs=_template_kwargs(args.template_kwargs))
    with open(args.out, "w", encoding="utf-8") as f:
        for prompt, reply in zip(prompts, replies):
            record = {"messages": [m.to_template_dict() for m in prompt], "generation": reply}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(replies)} generations to {args.out}")
    return 0


def _add_generation_commands(sub: argparse._SubParsersAction) -> None:
    for name in ("eval", "generate"):
        helps = {"eval": "benchmarks through lm-evaluation-harness (--tasks), or loss, perplexity and answer metrics "
                         "on a data file (--data)",
                 "generate": "greedy batch generation for every row of a dataset, written as JSONL"}
        p = sub.add_parser(name, help=helps[name], description=helps[name] + ". The prompt of a row is its "
                           "messages up to the last assistant message (which is the reference answer).")
        p.add_argument("model", nargs="?" if name == "eval" else None, help="hub id, local model directory or .gguf")
        p.add_argument("--adapter", help="PEFT adapter directory to apply")
        p.add_argument("--data", required=name == "generate", help="data file (any supported shape)")
        p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE", help="map columns to roles, e.g. question=user")
        p.add_argument("--num-samples", type=int, help="use only the first N rows")
        p.add_argument("--max-new-tokens", type=int, default=256, help="generation length cap (default 256)")
        p.add_argument("--batch-size", type=int, default=16 if name == "eval" else 32, help="prompts run together")
        _add_model_options(p)
        if name == "eval":
            _add_benchmark_options(p)
            p.add_argument("--answer-regex", help="extract answers with this regex (first group); default: "
                           "gsm8k's final `#### <number>` line")
            p.add_argument("--no-generate", action="store_true", help="loss and perplexity only")
            p.add_argument("--max-length", type=int, default=1024, help="truncation for the loss (default 1024)")
            p.add_argument("--json", help="also write the results to this JSON file")
            p.set_defaults(func=_cmd_eval)
        else:
            p.add_argument("--out", required=True, help="JSONL file to write")
            p.set_defaults(func=_cmd_generate)


def _add_benchmark_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", help="comma-separated: shipped offline tasks (default = gsm8k,ifeval,truthfulqa_mc1), "
                   "any lm-eval task name, or the path of an lm-eval task YAML")
    p.add_argument("--limit", type=lambda v: int(v) if v.isdigit() else float(v),
                   help="score only the first N items of each task (a fraction of them if below 1)")
    p.add_argument("--num-fewshot", type=int, help="few-shot examples (default: each task's own)")
    p.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                   help="prompts through the chat template (default: on where the tokenizer has one)")
    p.add_argument("--full", action="store_true", help="lm-eval's full sets from the Hub instead of the shipped ones")
    p.add_argument("--list-tasks", action="store_true", help="list the tasks --tasks takes and exit")


def _add_model_options(p: argparse.ArgumentParser, weights: bool = True) -> None:
    p.add_argument("--template", help="built-in template name or Jinja string (default: the tokenizer's own)")
    _add_template_kwargs(p)
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model (unsafe)")
    if weights:
        _add_device_options(p)


def _add_device_options(p: argparse.ArgumentParser, dtype_help: str = "weights' dtype (default auto: bf16 on a "
                        "GPU with bf16, fp32 elsewhere)") -> None:
    p.add_argument("--device", default="auto", help="auto (the first GPU, else mps, else CPU), cpu, cuda, cuda:N "
                   "or mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help=dtype_help)


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
    _add_model_options(p)
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
    _add_device_options(p, "dtype the merged model is saved in (default auto: the base's stored dtype); the "
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
    _add_model_options(p, weights=False)
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
    _add_model_options(p, weights=False)
    p.set_defaults(func=_cmd_doctor)
    _add_data_commands(sub)
    _add_generation_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chattune` command."""
    # bitsandbytes' CPU backend warns on import (through peft) that an optional hub-downloaded kernel is
    # missing; it falls back to its own, and the advice does not apply offline
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
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


if __name__ == "__main__":
    sys.exit(main())
