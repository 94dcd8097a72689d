"""Multi-turn: two exchanges in one conversation; every assistant turn is trained (and only
those)."""

from __future__ import annotations

from common import model_and_tokenizer, out_dir, parse

from chattune import SFTConfig, SFTTrainer
from chattune.outputs.show import marked_text
from chattune.templates.render import render

CONVERSATION = {"messages": [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Spain?"},
    {"role": "assistant", "content": "Madrid."},
]}


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__.split("\n")[0], argv)
    model, tokenizer = model_and_tokenizer(args.fast)
    print("trained tokens [[marked]]:")
    print(marked_text(tokenizer, render(tokenizer, CONVERSATION["messages"]), color=False))
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=str(out_dir(args, "multi-turn")),
                                                     max_steps=2 if args.fast else 10,
                                                     per_device_train_batch_size=1,
                                                     learning_rate=1e-4),
                         train_dataset=[CONVERSATION], processing_class=tokenizer)
    print(trainer.train())


if __name__ == "__main__":
    main()
