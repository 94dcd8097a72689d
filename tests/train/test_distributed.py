"""Several processes on CPU (gloo) through torchrun + accelerate: the same training as one
process."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from chattune.cli import main

COLUMNS = {"question": "user", "answer": "assistant"}


def config(tmp_path, name, model_dir, data, **extra):
    cfg = {"model": str(model_dir), "data": {"train": str(data), "columns": COLUMNS},
           "output_dir": str(tmp_path / name), "max_steps": 4, "per_device_train_batch_size": 2,
           "logging_steps": 1, "learning_rate": 1e-3, "max_length": 256, "lora": {"dropout": 0.0},
           "merge": False,
           # CPU processes (gloo) on every machine, a one-GPU one included; fp32, whatever the CPU
           # (these tests compare runs at fp32 tolerances; a CPU with AVX512-BF16 would compute in
           # bf16 by default)
           "device": "cpu", "bf16": False, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def losses(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]


def torchrun(tmp_path, cfg, processes=2, *extra_args, expect_ok=True):
    env = {**os.environ, "CHATTUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={processes}", "--module", "chattune", "train", str(cfg), *extra_args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if expect_ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_ddp_two_processes_match_one_with_the_same_global_batch(
        tmp_path, tiny_model_dir, gsm8k_small):
    one = config(tmp_path, "one", tiny_model_dir, gsm8k_small, gradient_accumulation_steps=2)
    assert main(["train", str(one)]) == 0
    two = config(tmp_path, "two", tiny_model_dir, gsm8k_small, gradient_accumulation_steps=1)
    out = torchrun(tmp_path, two).stdout
    assert "global batch 4 = 2 per device x 1 accumulation x 2 process(es)" in out
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.cuda
def test_more_processes_than_gpus_is_an_error_before_any_work(tmp_path, tiny_model_dir,
                                                              gsm8k_small):
    import torch

    gpus = torch.cuda.device_count()
    cfg = config(tmp_path, "many", tiny_model_dir, gsm8k_small)
    done = torchrun(tmp_path, cfg, gpus + 1, "--device", "cuda", expect_ok=False)
    assert done.returncode != 0
    assert (f"{gpus + 1} processes were launched on this machine but it has {gpus} GPU(s)"
            in done.stderr + done.stdout)
    assert not (tmp_path / "many" / "metrics.jsonl").exists()
