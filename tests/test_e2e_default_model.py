"""End to end on the real built-in default model (SmolLM2-135M-Instruct): train a few steps, chat,
merge."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT

from chattune.cli import main
from chattune.config import DEFAULT_MODEL
from chattune.model.load import load_model, load_tokenizer


@pytest.mark.slow
def test_default_model_train_chat_merge(tmp_path, gsm8k_small, default_model_dir, capsys):
    cfg = {"model": DEFAULT_MODEL,
           "data": {"train": str(gsm8k_small), "columns": {"question": "user",
           "answer": "assistant"}}, "output_dir": str(tmp_path / "out"), "max_steps": 3,
           "per_device_train_batch_size": 2, "learning_rate": 1e-3, "logging_steps": 1,
           "max_length": 384}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    # as a user runs it: a fresh process, whose stderr holds nothing from a library (no warning, no
    # progress bar)
    env = {**{k: v for k, v in os.environ.items() if k != "CHATTUNE_VERBOSE"},
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "chattune", "train", str(tmp_path / "cfg.yaml"),
                          "--set", "data.cache=false"], capture_output=True, text=True, env=env,
                         timeout=900)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    for noise in ("Warning", "warn(", "it/s", "Loading weights", "Failed to load"):
        assert noise not in run.stderr, run.stderr
    log = out / "warnings.log"  # what the libraries said, kept, and named in one line
    lines = run.stderr.splitlines()
    assert (lines == [] if not log.is_file()
            else len(lines) == 1 and f"kept in {log} (--verbose" in lines[0])
    assert "done: final loss" in run.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # a real instruct model, not random
    assert len(records) == 3 and all(0 < r["loss"] < 5 for r in records)

    # the adapter names the base by its hub id, not the converted copy in chattune's cache; its card
    # says so
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == DEFAULT_MODEL
    card = (out / "adapter" / "README.md").read_text()
    assert (f"base_model: {DEFAULT_MODEL}" in card and "license: apache-2.0" in card
            and ".cache" not in card)
    # and chattune finds that base with the hub switched off, in a fresh process
    code = ("import sys; from chattune.model.inference import load_for_inference; "
            "m, t = load_for_inference(None, sys.argv[1]); print(m.name_or_path)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code, str(out / "adapter")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == DEFAULT_MODEL, done.stderr[-2000:]
    # merged in the dtype the base was trained in: bf16 where the run loaded it in bf16
    trained_in = "bfloat16" if "weights bfloat16" in card else "float32"
    assert json.loads((out / "merged" / "config.json").read_text())["dtype"] == trained_in
    size = sum(f.stat().st_size for f in (out / "merged").glob("*.safetensors"))
    print(f"merged/ weights: {size / 1e6:.0f} MB in {trained_in}")

    capsys.readouterr()
    assert main(["chat", DEFAULT_MODEL, "--adapter", str(out / "adapter"), "--prompt",
                 "What is 2 + 3?", "--max-new-tokens", "40"]) == 0
    reply = capsys.readouterr().out.strip()
    assert len(reply) > 0 and "<|im_end|>" not in reply

    # the merged model written by training loads alone and carries the template and stop token
    merged = load_model(out / "merged").eval()
    tok = load_tokenizer(out / "merged")
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert (tok.convert_tokens_to_ids("<|im_end|>")
            in torch.tensor(merged.generation_config.eos_token_id).view(-1))
    ids = torch.tensor([tok.encode("Hello")])
    base = load_model(default_model_dir).eval()
    with torch.no_grad():
        # the adapter changed something
        assert not torch.equal(merged(ids).logits, base(ids).logits)


@pytest.mark.slow
def test_default_model_qlora_trains_and_its_adapter_reloads_on_a_bf16_base(
        tmp_path, gsm8k_small, default_model_dir):
    """QLoRA on the real model, on the GPU where there is one (bitsandbytes' CPU backend otherwise).
    Tolerance: on a bf16 base the adapter's logits differ from the 4-bit model's by the base's own
    NF4 error (the same comparison without the adapter) and by at most a quarter more: the adapter
    adds no error of its own."""
    pytest.importorskip("bitsandbytes", reason="the qlora extra is not installed")
    from chattune.model.device import ids_tensor, resolve_device
    from chattune.model.lora import load_adapter

    cfg = {"model": DEFAULT_MODEL,
           "data": {"train": str(gsm8k_small), "columns": {"question": "user",
           "answer": "assistant"}}, "output_dir": str(tmp_path / "out"), "max_steps": 2,
           "finetuning": "qlora", "per_device_train_batch_size": 2, "learning_rate": 2e-3,
           "max_length": 128, "bf16": True, "merge": False}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    adapter = tmp_path / "out" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    device = resolve_device("auto")
    tok = load_tokenizer(adapter)
    text = tok.apply_chat_template([{"role": "user",
                                     "content": "What is 12 * 7? Show your steps."}],
                                   add_generation_prompt=True, tokenize=False)
    prompt = tok(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def logits(quantised: bool, with_adapter: bool) -> torch.Tensor:
        model = load_model(default_model_dir, dtype=torch.bfloat16, quantize_4bit=quantised,
                           device=device)
        if not quantised:
            model.to(device)
        if with_adapter:
            model = load_adapter(model, adapter, vocab_size=len(tok))
        return model.eval()(input_ids=ids_tensor(model, [prompt])).logits.float()

    nf4_error = (logits(True, False) - logits(False, False)).abs().mean()
    with_adapter = (logits(True, True) - logits(False, True)).abs().mean()
    print(f"mean |logit difference| 4-bit vs bf16 base: {nf4_error:.4f} without the adapter, "
          f"{with_adapter:.4f} with it")
    assert with_adapter <= 1.25 * nf4_error
    assert (logits(False, True) - logits(False, False)).abs().max() > 0  # the adapter was trained
