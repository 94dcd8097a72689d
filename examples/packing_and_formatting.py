"""Packing on and off, and a custom formatting function (`### Question: ... ### Answer: ...`)."""

from __future__ import annotations

from common import model_and_tokenizer, out_dir, parse

from chattune import SFTConfig, SFTTrainer
from chattune.batching.collate import plan_batches


def formatting_func(example: dict) -> str:
    return f"### Question: {example['question']}\n ### Answer: {example['answer']}"


def main(argv: list[str] | None = None) -> None:
    import gzip
    import json

    from common import ROOT

    args = parse(__doc__.split("\n")[0], argv)
    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(64), f)]
    for packing in (False, True):
        model, tokenizer = model_and_tokenizer(args.fast)
        config = SFTConfig(output_dir=str(out_dir(args, f"packing-{packing}")),
                           max_steps=2 if args.fast else 10, per_device_train_batch_size=4,
                           learning_rate=5e-5, packing=packing, max_length=512, logging_steps=5)
        trainer = SFTTrainer(model=model, args=config, train_dataset=rows,
                             processing_class=tokenizer, formatting_func=formatting_func)
        plan = plan_batches(trainer.train_examples, 4, packing=packing, max_length=512, seed=0)
        rows_per_epoch = sum(len(b) for b in plan)
        print(f"packing={packing}: {len(trainer.train_examples)} examples in {rows_per_epoch} rows "
              f"({len(plan)} batches of 4 rows per epoch)")
        print(trainer.train())
    print("first formatted example:", repr(formatting_func(rows[0])[:120]))


if __name__ == "__main__":
    main()
