"""`chattune judge`: two sets of answers compared by an LLM judge, a local model or an
OpenAI-compatible URL."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from chattune.cli.common import add_device_options, load_for_inference_args, say
from chattune.errors import ChattuneError


def make_judge(args: argparse.Namespace) -> Any:
    """The judge the flags name; an endpoint is asked for its models first, so a bad URL fails at
    once."""
    from chattune.eval.judges import EndpointJudge, LocalJudge

    if bool(args.judge_url) == bool(args.judge):
        raise ChattuneError("judge: give exactly one of --judge-url URL (an OpenAI-compatible "
                            "server) or --judge MODEL (a model chattune loads)")
    if args.judge_url:
        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        return EndpointJudge(args.judge_url, args.judge_model, api_key=key,
                             max_tokens=args.max_tokens, parallel=args.parallel)
    model, tokenizer = load_for_inference_args(args.judge, None, args)
    return LocalJudge(model, tokenizer, args.judge, max_tokens=args.max_tokens,
                      batch_size=args.batch_size)


def _cmd_judge(args: argparse.Namespace) -> int:
    import json

    from chattune.eval.judge import judge_pairs, read_rubric, summarise
    from chattune.eval.judge_files import answer_pairs, write_judgement

    console = say(args)
    pairs = answer_pairs(args.first, args.second, limit=args.limit)
    rubric = read_rubric(args.rubric)
    out = Path(args.out) if args.out else Path(args.second or args.first)
    out = out.parent if out.is_file() else out
    judge = make_judge(args)
    console.print(f"judging {len(pairs.questions)} pairs in both orders "
                  f"({2 * len(pairs.questions)} judgements) with {judge.name} ...")
    items = judge_pairs(judge, pairs.questions, pairs.first, pairs.second, rubric=rubric,
                        references=pairs.references)
    summary = summarise(items, pairs.first_name, pairs.second_name, judge.name, rubric)
    paths = write_judgement(out, items, summary)
    console.print(summary.sentence())
    if summary.no_verdict:
        console.print(f"{summary.no_verdict} replies gave no [[A]]/[[B]]/[[C]] verdict (counted as "
                      "ties)")
    console.print(f"reasons and verdicts: {paths[1]}; summary: {paths[0]}")
    if args.json:
        print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    return 0


def add_judge_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge",
                       help="compare two sets of answers with an LLM judge (pairwise, both orders)",
                       description="FIRST alone: a run folder (or its compare.jsonl): its base vs "
                       "tuned answers. FIRST SECOND: two run folders or answer files "
                       "(compare.jsonl, `chattune generate` output, or question/answer JSONL) on "
                       "the same questions: SECOND's answers vs FIRST's. Each pair is judged in "
                       "both orders; writes judge.json (wins, ties, losses, win rate with a 95% "
                       "CI) and judge.jsonl (the judge's reasons).")
    p.add_argument("first", help="run folder or answer file")
    p.add_argument("second", nargs="?", help="a second run folder or answer file")
    p.add_argument("--judge-url",
                   help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (vLLM, Ollama, "
                   "llama.cpp's server, transformers serve)")
    p.add_argument("--judge-model",
                   help="the model name the server should use (default: the first it lists)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoint's API key (default "
                        "OPENAI_API_KEY; unset: none)")
    p.add_argument("--judge", metavar="MODEL",
                   help="a model chattune loads as the judge (hub id, folder, .gguf or a "
                   "run folder)")
    p.add_argument("--rubric",
                   help="a text file replacing the judge's prompt; it must contain {question}, "
                   "{answer_a} and {answer_b} (and may contain {reference}), and ask for [[A]], "
                   "[[B]] or [[C]]")
    p.add_argument("--limit", type=int, help="judge only the first N questions")
    p.add_argument("--max-tokens", type=int, default=512,
                   help="the judge's reply length cap (default 512)")
    p.add_argument("--parallel", type=int, default=4,
                   help="requests in flight to a judge URL (default 4)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="prompts a local judge runs together (default 8)")
    p.add_argument("--out", help="folder for judge.json and judge.jsonl (default: SECOND's or "
                                 "FIRST's folder)")
    p.add_argument("--json", action="store_true",
                   help="also print the summary (judge.json) on stdout")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run code shipped with a hub model (unsafe)")
    add_device_options(p)
    p.set_defaults(func=_cmd_judge)
