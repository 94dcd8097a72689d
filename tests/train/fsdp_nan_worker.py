"""Run by tests/train/test_fsdp.py under torchrun: FSDP full fine-tuning whose first step writes
non-finite weights (learning rate inf, which the config would refuse), with a checkpoint due at that
step."""

import sys
from pathlib import Path

import torch

from chattune.config import build_config
from chattune.errors import TrainingError
from chattune.model.load import load_model, load_tokenizer
from chattune.outputs.checkpoint import Checkpointer
from chattune.prepare.examples import examples_from_file
from chattune.train.dist import Dist
from chattune.train.loop import train

model_dir, data, out = sys.argv[1:4]
tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
examples, _ = examples_from_file(data, tokenizer,
                                 columns={"question": "user", "answer": "assistant"},
                                 max_length=256)
cfg = build_config({"data": {"train": data}, "finetuning": "full", "max_steps": 4, "save_steps": 1,
                    "per_device_train_batch_size": 2, "output_dir": out, "strategy": "fsdp",
                    "device": "cpu"})
args = cfg.train_args().model_copy(update={"learning_rate": float("inf")})
dist = Dist.from_env(torch.device("cpu"), "fsdp", cfg.fsdp)
saver = (Checkpointer(Path(out), model, tokenizer, [tokenizer.eos_token_id], limit=None,
                      keep_best=False)
         if dist.is_main else None)
try:
    train(model, examples, args, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
          on_save=saver, dist=dist)
except TrainingError as e:
    print(f"rank {dist.rank}: {e}", flush=True)
dist.finish()
