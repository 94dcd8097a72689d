"""What only means something on an NVIDIA GPU: the demo's path (train, compare, merge) on CUDA, bf16
bases and their memory, QLoRA's kernels, peak memory reports. Skipped with the reason on other
machines."""

import json

import pytest
import yaml

from chattune.cli import main

pytestmark = pytest.mark.cuda
COLUMNS = {"question": "user", "answer": "assistant"}


def write_config(tmp_path, model_dir, data, name="run", **extra):
    cfg = {"model": str(model_dir), "data": {"train": str(data), "columns": COLUMNS},
           "output_dir": str(tmp_path / name), "max_steps": 3, "per_device_train_batch_size": 4,
           "learning_rate": 1e-3, "max_length": 256, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_lora_run_on_the_gpu_compares_merges_and_reports_memory(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    compare = {"data": str(gsm8k_small), "columns": COLUMNS, "num_samples": 3, "max_new_tokens": 8,
               "batch_size": 3}
    assert main(["train", str(write_config(tmp_path, tiny_model_dir, gsm8k_small,
                                           compare=compare))]) == 0
    said = capsys.readouterr().out
    # auto: a bf16 base on a bf16 GPU
    assert "cuda" in said and "bf16 compute, weights bfloat16" in said
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["peak_memory_reserved_gb"] >= r["peak_memory_allocated_gb"] > 0 for r in records
               if "loss" in r)
    assert "peak GPU memory allocated" in (out / "report.html").read_text()
    assert (out / "merged" / "model.safetensors").is_file() and (out / "compare.json").is_file()
    for command in (["chat", str(tiny_model_dir), "--adapter", str(out / "adapter"), "--prompt",
                     "Hi", "--max-new-tokens", "4"],
                    ["eval", str(tiny_model_dir), "--adapter", str(out / "adapter"), "--data",
                     str(gsm8k_small),
                     "--columns", "question=user", "answer=assistant", "--num-samples", "2",
                     "--max-new-tokens", "4"],
                    ["merge", str(tiny_model_dir), str(out / "adapter"), str(tmp_path / "merged"),
                     "--device", "cuda"]):
        assert main(command) == 0, command


def test_a_bf16_base_takes_less_gpu_memory_than_an_fp32_one(tmp_path, tiny_model_dir, gsm8k_small):
    peaks = {}
    for bf16 in (True, False):
        name = f"bf16-{bf16}"
        assert main(["train", str(write_config(tmp_path, tiny_model_dir, gsm8k_small, name,
                                               bf16=bf16, merge=False))]) == 0
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        peaks[bf16] = max(json.loads(line)["peak_memory_allocated_gb"] for line in lines
                          if '"loss"' in line)
    assert peaks[True] < peaks[False]


def test_qlora_on_the_gpu(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    pytest.importorskip("bitsandbytes", reason="the qlora extra is not installed")
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, finetuning="qlora")
    assert main(["train", str(cfg)]) == 0
    assert "weights 4-bit NF4" in capsys.readouterr().out
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "merged" / "model.safetensors").is_file()


def test_a_run_resumes_on_the_cpu_from_a_gpu_checkpoint(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = write_config(tmp_path, tiny_model_dir, gsm8k_small, max_steps=4, save_steps=2,
                       merge=False, bf16=False)
    assert main(["train", str(cfg)]) == 0
    # the saved state loads onto the CPU
    assert main(["train", str(cfg), "--resume", "--device", "cpu"]) == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if '"loss"' in line] == [1, 2, 3, 4]


def test_the_loss_of_a_micro_batch_syncs_with_the_host_at_most_once(tokenizer, tiny_model):
    """chattune's part of a step stays on the device: the trained positions are gathered by an index
    laid out on the CPU. The one sync allowed is transformers' check whether the position ids hold
    packed documents."""
    import warnings

    import torch
    from test_train import examples

    from chattune.batching.collate import collate
    from chattune.train.loss import summed_loss_and_correct

    model = tiny_model.cuda()
    # frozen as in LoRA: PyTorch's embedding backward (a sort of the ids) syncs by itself
    model.get_input_embeddings().weight.requires_grad_(False)
    batch = collate([[e] for e in examples(tokenizer, 6)], tokenizer.pad_token_id).to("cuda")
    summed_loss_and_correct(model, batch)[0].backward()  # first calls set things up (and may sync)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            summed_loss_and_correct(model, batch)[0].backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, syncs
