"""The completion-only masking experiment: overfit five "How do you say X in Spanish?" pairs in the
`\\n\\n### Human:` / `\\n\\n### Assistant:` format and ask for a held-out word. Train on the whole
sequence, then on the answer only, then with special tokens around the answer; print per-step loss
and predictions. Last, the notebook's TRL route: raw text, `DataCollatorForCompletionOnlyLM` and
`SFTTrainer`."""

from __future__ import annotations

from typing import Any

from common import model_and_tokenizer, out_dir, parse

from chattune import (
    DataCollatorForCompletionOnlyLM,
    Message,
    SFTConfig,
    SFTTrainer,
    build_config,
    generate_batch,
    prepare_examples,
)
from chattune.data.schema import Conversation
from chattune.labels import IGNORE_INDEX
from chattune.model.device import pick_device
from chattune.train.loop import train

PAIRS = [("dog", "perro"), ("water", "agua"), ("mother", "madre"), ("hello", "hola"),
         ("tree", "árbol")]
HELD_OUT = "good"  # bueno
PLAIN = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ '\n\n### Human: ' + m['content'] }}"
         "{% else %}{{ '\n\n### Assistant: ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}{{ '\n\n### Assistant:' }}{% endif %}")
# the notebook's third run: a special token opens the answer (bos) and one closes it (eos)
MARKED = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ '\n\n### Human: ' + m['content'] "
          "}}{% else %}{{ '\n\n### Assistant:' + bos_token + ' ' + m['content'] + eos_token }}{% "
          "endif %}{% endfor %}{% if add_generation_prompt %}{{ '\n\n### Assistant:' + bos_token "
          "}}{% endif %}")
RUNS = [("whole sequence", PLAIN, "all"), ("answer only", PLAIN, "all_assistant"),
        ("answer only, special tokens around it", MARKED, "all_assistant")]


def question(word: str) -> Message:
    return Message("user", f'How do you say "{word}" in Spanish?')


def show(model: Any, tokenizer: Any, records: list[dict]) -> None:
    """Per-step loss, answers for two training words and the held-out one, and how a question
    continues."""
    print("loss per step:", " ".join(f"{r['loss']:.3f}" for r in records if "loss" in r))
    prompts = [[question(en)] for en, _ in PAIRS[:2]] + [[question(HELD_OUT)]]
    answers = generate_batch(model, tokenizer, prompts, max_new_tokens=12)
    for (en, es), answer in zip([*PAIRS[:2], (HELD_OUT, "bueno")], answers):
        print(f"  {en!r}: expected {es!r}, predicted {answer!r}")
    # continuing a question: only a run trained on whole sequences learned to write the prompts too
    ids = tokenizer("\n\n### Human: How do you", return_tensors="pt").input_ids.to(model.device)
    more = model.generate(ids, max_new_tokens=10, do_sample=False,
                          pad_token_id=tokenizer.pad_token_id)
    print(f"  continuing '### Human: How do you': {tokenizer.decode(more[0, ids.shape[1]:])!r}")


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__.split("\n")[0], argv)
    steps = 3 if args.fast else 30
    for title, template, train_on in RUNS:
        model, tokenizer = model_and_tokenizer(args.fast)
        tokenizer.chat_template = template
        convs = [Conversation([question(en), Message("assistant", es)]) for en, es in PAIRS]
        examples, _ = prepare_examples(convs, tokenizer, train_on=train_on, max_length=128)
        trained = tokenizer.decode([t for t in examples[0].labels if t != IGNORE_INDEX])
        print(f"\n=== {title}: trained text of the first example: {trained!r}")
        cfg = build_config({"data": {"train": "<in memory>"}, "finetuning": "full",
                            "max_steps": steps, "per_device_train_batch_size": 5,
                            "learning_rate": 1e-4, "warmup_ratio": 0.0,
                            "lr_scheduler_type": "constant", "logging_steps": 1})
        device = pick_device()
        model.to(device)
        show(model, tokenizer, train(model, examples, cfg.train_args(),
                                     pad_id=tokenizer.pad_token_id, device=device))

    # the notebook's last route: text rows, the collator finds the answer after the response
    # template
    model, tokenizer = model_and_tokenizer(args.fast)
    tokenizer.chat_template = PLAIN
    rows = [{"text": f'\n\n### Human: How do you say "{en}" in Spanish?\n\n### Assistant: '
                     f'{es}{tokenizer.eos_token}'}
            for en, es in PAIRS]
    collator = DataCollatorForCompletionOnlyLM(response_template="\n\n### Assistant:",
                                               instruction_template="\n\n### Human:",
                                               tokenizer=tokenizer)
    sft_args = SFTConfig(output_dir=str(out_dir(args, "spanish_masking")), max_steps=steps,
                         per_device_train_batch_size=5, learning_rate=1e-4,
                         lr_scheduler_type="constant", logging_steps=1,
                         gradient_checkpointing=False, save_strategy="no", report_to="none")
    trainer = SFTTrainer(model, args=sft_args, train_dataset=rows, dataset_text_field="text",
                         data_collator=collator, tokenizer=tokenizer)
    first = trainer.train_examples[0]
    trained = tokenizer.decode([t for t in first.labels if t != IGNORE_INDEX])
    print("\n=== DataCollatorForCompletionOnlyLM + SFTTrainer: trained text of the first example: "
          f"{trained!r}")
    trainer.train()
    show(trainer.model, tokenizer, trainer.records)


if __name__ == "__main__":
    main()
