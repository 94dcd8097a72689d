"""Dataset conversion: smoltalk-style `messages` rows and gsm8k `question`/`answer` rows into chat
format, saved as JSONL and checked with `chattune data check`."""

from __future__ import annotations

import json

from common import ROOT, out_dir, parse

from chattune.cli import main as chattune

SMOLTALK_STYLE = [
    {"messages": [{"role": "user", "content": "Hi there"},
                  {"role": "assistant", "content": "Hello! How can I help you today?"},
                  {"role": "user", "content": "What's a good name for a cat?"},
                  {"role": "assistant",
                   "content": "How about Miso? It's short, sweet and easy to call."}]},
    {"messages": [{"role": "system", "content": "You are a friendly assistant."},
                  {"role": "user", "content": "Can you recommend a book?"},
                  {"role": "assistant",
                   "content": "Try 'The Hobbit': an adventure that reads quickly."}]},
]


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__.split("\n")[0], argv)
    out = out_dir(args, "datasets")
    smol = out / "smoltalk_style.jsonl"
    smol.write_text("".join(json.dumps(r) + "\n" for r in SMOLTALK_STYLE), encoding="utf-8")
    gsm8k = ROOT / "data" / "gsm8k" / "test.jsonl"
    converted = out / "gsm8k_chat.jsonl"
    chattune(["data", "convert", str(gsm8k), str(converted), "--columns", "question=user",
              "answer=assistant", "--system-prompt",
              "Solve the problem step by step; end with '#### <answer>'."])
    print("first converted gsm8k row:", converted.read_text(encoding="utf-8").splitlines()[0][:300])
    for path in (smol, converted):
        chattune(["data", "check", str(path), "--limit", "50" if args.fast else "1319"])


if __name__ == "__main__":
    main()
