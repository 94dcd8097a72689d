"""End to end on the real built-in default model (SmolLM2-135M-Instruct): train a few steps, chat, merge."""

import json

import pytest
import torch
import yaml

from chattune.cli import main
from chattune.config import DEFAULT_MODEL
from chattune.model.load import load_model, load_tokenizer


@pytest.mark.slow
def test_default_model_train_chat_merge(tmp_path, gsm8k_small, default_model_dir, capsys):
    cfg = {"model": DEFAULT_MODEL, "data": {"train": str(gsm8k_small), "columns": {"question": "user",
           "answer": "assistant"}}, "output_dir": str(tmp_path / "out"), "max_steps": 3,
           "per_device_train_batch_size": 2, "learning_rate": 1e-3, "logging_steps": 1, "max_length": 384}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    out = tmp_path / "out"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(0 < r["loss"] < 5 for r in records)  # a real instruct model, not random

    capsys.readouterr()
    assert main(["chat", DEFAULT_MODEL, "--adapter", str(out / "adapter"), "--prompt", "What is 2 + 3?",
                 "--max-new-tokens", "40"]) == 0
    reply = capsys.readouterr().out.strip()
    assert len(reply) > 0 and "<|im_end|>" not in reply

    # the merged model written by training loads alone and carries the template and stop token
    merged = load_model(out / "merged").eval()
    tok = load_tokenizer(out / "merged")
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.convert_tokens_to_ids("<|im_end|>") in torch.tensor(merged.generation_config.eos_token_id).view(-1)
    ids = torch.tensor([tok.encode("Hello")])
    base = load_model(default_model_dir).eval()
    with torch.no_grad():
        assert not torch.equal(merged(ids).logits, base(ids).logits)  # the adapter changed something
