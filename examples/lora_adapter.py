"""LoRA (r=6, alpha=8, dropout 0.05, every linear layer) through SFTTrainer: train, save the
adapter, load it back onto a fresh base, check it gives the same logits, and merge it into the
base."""

from __future__ import annotations

import torch
from common import model_and_tokenizer, out_dir, parse
from peft import LoraConfig
from sft_smollm2 import chat_rows

from chattune import SFTConfig, SFTTrainer, load_adapter, merge_adapter


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__.split("\n")[0], argv)
    out = out_dir(args, "lora")
    model, tokenizer = model_and_tokenizer(args.fast)
    peft_config = LoraConfig(r=6, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model,
                         args=SFTConfig(output_dir=str(out), max_steps=3 if args.fast else 20,
                                        per_device_train_batch_size=4, learning_rate=1e-3,
                                        logging_steps=5),
                         train_dataset=chat_rows(80), processing_class=tokenizer,
                         peft_config=peft_config)
    print(trainer.train())
    adapter = trainer.save_model(str(out / "adapter"))
    print("adapter files:", sorted(p.name for p in adapter.iterdir()))

    fresh, _ = model_and_tokenizer(args.fast)
    reloaded = load_adapter(fresh, adapter, vocab_size=len(tokenizer)).eval()
    probe = tokenizer("Question: what is 12 * 7?", return_tensors="pt")
    with torch.no_grad():
        diff = (trainer.model.eval().cpu()(**probe).logits - reloaded(**probe).logits).abs().max()
    print(f"reloaded adapter vs trained model: max logit difference {float(diff):.1e}")
    merged, merge_diff = merge_adapter(reloaded, tokenizer)
    merged.save_pretrained(out / "merged")
    print(f"merged into the base (max logit difference {merge_diff:.1e}); saved {out / 'merged'}")


if __name__ == "__main__":
    main()
