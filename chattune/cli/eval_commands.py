"""`chattune eval` (benchmarks or a data file) and `chattune generate`."""

from __future__ import annotations

import argparse
from typing import Any

from chattune.cli.common import (
    add_model_arg,
    add_model_options,
    columns_arg,
    err_console,
    load_for_inference_args,
    model_arg,
    say,
    template_kwargs_arg,
)
from chattune.errors import ChattuneError


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from chattune.eval import show
    from chattune.eval.harness import run_benchmarks
    from chattune.eval.tasks import resolve_tasks

    console = say(args)
    if args.list_tasks:
        console.print(show.task_listing(), highlight=False)
        return 0
    if not (args.tasks or args.data):
        raise ChattuneError("eval: give --tasks (benchmarks: e.g. --tasks default) or --data (a "
                            "file)")
    # bad names before loading
    tasks = resolve_tasks(args.tasks.split(","), full=args.full) if args.tasks else []
    title = f"eval: {model_arg(args)}" + (f" + {args.adapter}" if args.adapter else "")
    model, tokenizer = load_for_inference_args(model_arg(args), args.adapter, args)
    if tasks:
        results = run_benchmarks(model, tokenizer, tasks, limit=args.limit,
                                 num_fewshot=args.num_fewshot, chat_template=args.chat_template,
                                 batch_size=args.batch_size, full=args.full)
        console.print(show.benchmark_table(results, title))
        output = results.as_json()
    else:
        console.print(show.metrics_table(
            (output := _eval_dataset(model, tokenizer, args))["metrics"], title))
    if args.out:
        show.write_json(args.out, output, console)
    if args.json:
        print(json.dumps(output, ensure_ascii=False, indent=2))
    return 0


def old_spellings(argv: list[str]) -> list[str]:
    """`eval ... --json FILE.json`, the spelling of earlier versions, as `--out FILE.json` (said
    so): --json is now the switch it is in every command."""
    if not argv or argv[0] != "eval":
        return argv
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--json" and argv[i + 1].endswith(".json"):
            err_console.print(f"note: --json {argv[i + 1]} is --out {argv[i + 1]} now (--json "
                              "alone prints the JSON on stdout)", highlight=False)
            argv[i] = "--out"
    return argv


def _eval_dataset(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    from chattune.data.load import load_rows
    from chattune.eval.data_file import evaluate_dataset
    from chattune.eval.scoring import extract_gsm8k, regex_extractor
    from chattune.outputs.metrics import counting_progress

    extract = regex_extractor(args.answer_regex) if args.answer_regex else extract_gsm8k
    total = len(load_rows(args.data, limit=args.num_samples))
    with counting_progress(say(args), total, "generating") as advance:
        return evaluate_dataset(model, tokenizer, args.data, columns=columns_arg(args.columns),
                                limit=args.num_samples, max_new_tokens=args.max_new_tokens,
                                batch_size=args.batch_size, extract=extract,
                                generate=not args.no_generate, max_length=args.max_length,
                                on_batch=advance,
                                template_kwargs=template_kwargs_arg(args.template_kwargs))


def _cmd_generate(args: argparse.Namespace) -> int:
    import json

    from chattune.eval.data_file import prompts_from_file
    from chattune.generate import generate_batch
    from chattune.outputs.metrics import counting_progress

    console = say(args)
    model, tokenizer = load_for_inference_args(model_arg(args), args.adapter, args)
    prompts, _ = prompts_from_file(args.data, columns=columns_arg(args.columns),
                                   limit=args.num_samples)
    with counting_progress(console, len(prompts), "generating") as advance:
        replies = generate_batch(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                 batch_size=args.batch_size, on_batch=advance,
                                 template_kwargs=template_kwargs_arg(args.template_kwargs))
    with open(args.out, "w", encoding="utf-8") as f:
        for prompt, reply in zip(prompts, replies):
            record = {"messages": [m.to_template_dict() for m in prompt], "generation": reply}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(replies)} generations to {args.out}")
    return 0


def add_generation_commands(sub: argparse._SubParsersAction) -> None:
    for name in ("eval", "generate"):
        helps = {"eval": "benchmarks through lm-evaluation-harness (--tasks), or loss, perplexity "
                         "and answer metrics on a data file (--data)",
                 "generate": "greedy batch generation for every row of a dataset, written as JSONL"}
        p = sub.add_parser(name, help=helps[name],
                           description=helps[name] + ". The prompt of a row is its "
                           "messages up to the last assistant message (which is the reference "
                           "answer).")
        add_model_arg(p, "the model to " + ("evaluate" if name == "eval" else "answer with"))
        p.add_argument("--adapter",
                       help="PEFT adapter folder (or a run folder: its adapter/) to apply to MODEL")
        p.add_argument("--data", required=name == "generate",
                       help="data file (any supported shape)")
        p.add_argument("--columns", nargs="*", metavar="COLUMN=ROLE",
                       help="map columns to roles, e.g. question=user")
        p.add_argument("--num-samples", type=int, help="use only the first N rows")
        p.add_argument("--max-new-tokens", type=int, default=256,
                       help="generation length cap (default 256)")
        p.add_argument("--batch-size", type=int, default=16 if name == "eval" else 32,
                       help="prompts run together")
        add_model_options(p)
        if name == "eval":
            _add_benchmark_options(p)
            p.add_argument("--answer-regex",
                           help="extract answers with this regex (first group); default: "
                           "gsm8k's final `#### <number>` line")
            p.add_argument("--no-generate", action="store_true", help="loss and perplexity only")
            p.add_argument("--max-length", type=int, default=1024,
                           help="truncation for the loss (default 1024)")
            p.add_argument("--out", metavar="FILE", help="also write the results to this JSON file")
            p.add_argument("--json", action="store_true",
                           help="print the results as JSON on stdout (the table and notes go to "
                                "stderr)")
            p.set_defaults(func=_cmd_eval)
        else:
            p.add_argument("--out", required=True, help="JSONL file to write")
            p.set_defaults(func=_cmd_generate)


def _add_benchmark_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", help="comma-separated: shipped offline tasks (default = "
                   "gsm8k,ifeval,truthfulqa_mc1), any lm-eval task name, or the path of an lm-eval "
                   "task YAML")
    p.add_argument("--limit", type=lambda v: int(v) if v.isdigit() else float(v),
                   help="score only the first N items of each task (a fraction of them if below 1)")
    p.add_argument("--num-fewshot", type=int, help="few-shot examples (default: each task's own)")
    p.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                   help="prompts through the chat template (default: on where the tokenizer has "
                        "one)")
    p.add_argument("--full", action="store_true",
                   help="lm-eval's full sets from the Hub instead of the shipped ones")
    p.add_argument("--list-tasks", action="store_true",
                   help="list the tasks --tasks takes and exit")

