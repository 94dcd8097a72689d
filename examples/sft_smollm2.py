"""Supervised fine-tuning as the course does it, with `from chattune import SFTConfig, SFTTrainer`:
the course's configuration names, a chat dataset, and "Write a haiku about programming" before and
after."""

from __future__ import annotations

import gzip
import json

from common import ROOT, model_and_tokenizer, out_dir, parse, reply

from chattune import SFTConfig, SFTTrainer

PROMPT = "Write a haiku about programming"


def chat_rows(n: int) -> list[dict]:
    """gsm8k questions and answers as `messages` chats (the course uses smoltalk, which needs the
    hub)."""
    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f)]
    return [{"messages": [{"role": "user", "content": r["question"]},
                          {"role": "assistant", "content": r["answer"]}]} for r in rows]


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__.split("\n")[0], argv)
    model, tokenizer = model_and_tokenizer(args.fast)
    print("Before training:", reply(model, tokenizer, PROMPT))
    data = chat_rows(40 if args.fast else 400)
    sft_config = SFTConfig(
        output_dir=str(out_dir(args, "sft")),
        max_steps=3 if args.fast else 40,
        per_device_train_batch_size=4,
        learning_rate=5e-5,
        logging_steps=10,
        save_steps=100,
        eval_strategy="steps",
        eval_steps=20,
    )
    trainer = SFTTrainer(model=model, args=sft_config, train_dataset=data[:-20],
                         eval_dataset=data[-20:], processing_class=tokenizer)
    print(trainer.train())
    print(trainer.evaluate())
    trainer.save_model(str(out_dir(args, "sft") / "model"))
    print("After training:", reply(trainer.model, tokenizer, PROMPT))


if __name__ == "__main__":
    main()
