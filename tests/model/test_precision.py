"""bf16/fp16 frozen bases, fp32 adapters and optimizer state, pure-bf16 full fine-tuning, QLoRA: on
CPU here (bf16 and fp16 are emulated where the CPU lacks them: slow, but the same code paths as on a
GPU)."""

import json

import pytest
import torch
from conftest import write_jsonl

from chattune.cli import main
from chattune.config import build_config
from chattune.engine.base import load_base
from chattune.model.device import resolve_precision
from chattune.model.inference import load_for_inference
from chattune.model.load import load_model, stored_dtype
from chattune.model.lora import apply_lora
from chattune.outputs.checkpoint import load_state
from chattune.outputs.save import save_pretrained_atomic
from chattune.pipeline import run_training
from chattune.prepare.examples import examples_from_file
from chattune.templates.setup import stop_token_ids
from chattune.train.loop import train
from chattune.train.optim import build_optimizer

CPU = torch.device("cpu")
COLUMNS = {"question": "user", "answer": "assistant"}


def config(tmp_path, model_dir, data, **extra):
    return build_config({"model": str(model_dir), "data": {"train": str(data), "columns": COLUMNS},
                         "output_dir": str(tmp_path / "run"), "max_steps": 3,
                         "per_device_train_batch_size": 4, "learning_rate": 1e-2, "max_length": 256,
                         "lora": {"dropout": 0.0}, "device": "cpu", "merge": False, **extra})


def trained_lora(cfg, model_dir, data):
    """A LoRA model as `chattune train` builds it for `cfg`, trained for cfg.args.max_steps."""
    precision = resolve_precision(CPU, finetuning=cfg.finetuning, bf16=cfg.bf16, fp16=cfg.fp16)
    model, tokenizer, new_tokens = load_base(cfg, model_dir, CPU, precision)
    model = apply_lora(model, cfg.lora, new_tokens)
    examples, _ = examples_from_file(str(data), tokenizer, columns=COLUMNS,
                                     max_length=cfg.args.max_length)
    records = train(model, examples, cfg.train_args(), pad_id=tokenizer.pad_token_id, device=CPU,
                    dtype=precision.compute)
    return model, tokenizer, examples, records


@torch.no_grad()
def logits(model, ids, dtype=None):
    with torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False):
        return model(input_ids=torch.tensor([ids])).logits.float()


def test_lora_base_in_bf16_adapters_in_fp32_and_the_adapter_reloads_exactly(
        tmp_path, tiny_model_dir, gsm8k_small):
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, bf16=True)
    model, tokenizer, examples, records = trained_lora(cfg, tiny_model_dir, gsm8k_small)
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trainable == {torch.float32}
    assert all(r["loss"] == r["loss"] for r in records)  # finite
    save_pretrained_atomic(model, tokenizer, tmp_path / "adapter", stop_token_ids(tokenizer))
    reloaded, _ = load_for_inference(str(tiny_model_dir), tmp_path / "adapter", device="cpu",
                                     dtype=torch.bfloat16)
    ids = examples[0].input_ids
    assert torch.equal(logits(model, ids), logits(reloaded, ids))


def test_bf16_run_saves_fp32_optimizer_state_and_merges_in_bf16(
        tmp_path, tiny_model_dir, gsm8k_small):
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, bf16=True, save_steps=2, merge=True)
    run_training(cfg)
    state = load_state(tmp_path / "run" / "checkpoint-2")
    moments = [t for s in state.optimizer["state"].values() for k, t in s.items()
               if k.startswith("exp_avg")]
    assert moments and {t.dtype for t in moments} == {torch.float32}
    # merged in fp32 from the saved adapter, saved in the dtype the base was trained in (bf16 here,
    # although the base is stored in fp32)
    merged = tmp_path / "run" / "merged"
    assert stored_dtype(merged) == torch.bfloat16 and stored_dtype(tiny_model_dir) == torch.float32


def test_merge_command_saves_in_the_dtype_asked_for(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, bf16=True, max_steps=2)
    run_training(cfg)
    out = tmp_path / "merged-bf16"
    assert main(["merge", str(tiny_model_dir), str(tmp_path / "run" / "adapter"), str(out),
                 "--dtype", "bfloat16", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "merged vs base+adapter (fp32)" in said and "(bfloat16)" in said
    assert stored_dtype(out) == torch.bfloat16
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.bfloat16}


def test_fp16_trains_with_loss_scaling_and_saves_the_scale(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, fp16=True, save_steps=2, max_steps=4)
    result = run_training(cfg)
    losses = [r["loss"] for r in result.records if "loss" in r]
    assert len(losses) == 4 and all(loss == loss and loss < 20 for loss in losses)
    assert load_state(tmp_path / "run" / "checkpoint-2").scaler["scale"] > 0
    resumed = config(tmp_path, tiny_model_dir, gsm8k_small, fp16=True, save_steps=2, max_steps=4)
    # the scale comes back with the rest of the state
    again = run_training(resumed, resume="latest")
    assert [r["loss"] for r in again.records if "loss" in r] == pytest.approx(losses, rel=1e-5)


def test_kahan_adamw_keeps_updates_that_bf16_rounding_drops():
    """bf16 holds about 3 significant digits: 100 AdamW steps of 1e-4 on a weight of 1.0 round away
    to nothing in plain bf16, and add up to 0.01 with Kahan summation (bf16_full's optimizer)."""
    def run(bf16_full: bool) -> float:
        weight = torch.nn.Parameter(torch.ones(8, 8, dtype=torch.bfloat16))
        model = torch.nn.Module()
        model.weight = weight
        cfg = build_config({"data": {"train": "x"}, "finetuning": "full", "bf16_full": bf16_full,
                            "learning_rate": 1e-4})
        optimizer = build_optimizer(model, cfg.train_args())
        for _ in range(100):
            weight.grad = torch.ones_like(weight)
            optimizer.step()
        return float(weight.detach().float().mean())

    assert run(bf16_full=False) == 1.0
    assert run(bf16_full=True) == pytest.approx(0.99, abs=2 ** -8)  # the nearest bf16 value


def test_bf16_full_trains_bf16_weights(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, finetuning="full", bf16_full=True,
                 max_steps=6, learning_rate=3e-3)
    precision = resolve_precision(CPU, finetuning="full", bf16=None, bf16_full=True)
    assert precision.base == torch.bfloat16
    result = run_training(cfg)
    losses = [r["loss"] for r in result.records if "loss" in r]
    assert losses[-1] < losses[0]
    assert stored_dtype(tmp_path / "run" / "model") == torch.bfloat16


def test_qlora_needs_bitsandbytes_and_says_how_to_get_it(tmp_path, tiny_model_dir, gsm8k_small,
                                                         monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", None)
    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, finetuning="qlora")
    from chattune.errors import ModelError

    with pytest.raises(ModelError, match=r"pip install 'chattune\[qlora\]'"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_qlora_trains_a_4bit_base_and_its_adapter_loads_on_the_unquantised_base(
        tmp_path, tiny_model_dir, gsm8k_small):
    pytest.importorskip("bitsandbytes", reason="the qlora extra is not installed")
    import bitsandbytes as bnb

    cfg = config(tmp_path, tiny_model_dir, gsm8k_small, finetuning="qlora", bf16=True, max_steps=3)
    assert cfg.checkpointing  # on by default for QLoRA
    model, tokenizer, examples, records = trained_lora(cfg, tiny_model_dir, gsm8k_small)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    save_pretrained_atomic(model, tokenizer, tmp_path / "adapter", stop_token_ids(tokenizer))
    assert json.loads((tmp_path / "adapter"
                       / "adapter_config.json").read_text())["peft_type"] == "LORA"
    on_bf16, _ = load_for_inference(str(tiny_model_dir), tmp_path / "adapter", device="cpu",
                                    dtype=torch.bfloat16)
    ids = examples[0].input_ids
    with_adapter = (logits(model, ids, torch.bfloat16) - logits(on_bf16, ids)).abs().mean()
    # the unquantised base differs from its NF4 copy by the quantisation error; the adapter adds
    # none of its own
    nf4 = load_model(tiny_model_dir, dtype=torch.bfloat16, quantize_4bit=True, device="cpu")
    bf16 = load_model(tiny_model_dir, dtype=torch.bfloat16)
    quantisation_error = (logits(nf4, ids, torch.bfloat16) - logits(bf16, ids)).abs().mean()
    assert with_adapter <= 1.5 * quantisation_error


def test_qlora_config_runs_end_to_end_and_merges_into_the_unquantised_base(
        tmp_path, tiny_model_dir, gsm8k_small):
    pytest.importorskip("bitsandbytes", reason="the qlora extra is not installed")
    compare = {"data": str(gsm8k_small), "columns": COLUMNS, "num_samples": 2, "max_new_tokens": 4,
               "batch_size": 2}
    rows = [json.loads(line) for line in gsm8k_small.read_text().splitlines()]
    data = write_jsonl(tmp_path / "four.jsonl", rows[:4])
    cfg = config(tmp_path, tiny_model_dir, data, finetuning="qlora", bf16=True, max_steps=2,
                 merge=True, compare=compare)
    result = run_training(cfg)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    # the unquantised base merged, saved in the compute dtype the 4-bit base was trained in
    assert (stored_dtype(tmp_path / "run" / "merged") == torch.bfloat16
            and result.compare is not None)
