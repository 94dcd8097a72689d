"""Sharded training with PyTorch FSDP2 on CPU processes (gloo, through torchrun): the same steps as
one process, sharded checkpoints that resume exactly, and saved models that plain transformers/peft
load."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from test_distributed import config, losses, torchrun

from chattune.cli import main

pytestmark = pytest.mark.slow


def _load(out, base, finetuning):
    from transformers import AutoModelForCausalLM

    if finetuning == "full":
        return AutoModelForCausalLM.from_pretrained(out / "model").eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base),
                                     out / "adapter").eval()


def _logits(out_dirs, base, finetuning) -> list[torch.Tensor]:
    """Each saved model's fp32 logits on one fixed input, loaded by plain transformers / peft."""
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        return [_load(out, base, finetuning)(ids).logits for out in out_dirs]


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
@pytest.mark.parametrize("finetuning", ["full", "lora"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_model_dir, gsm8k_small,
                                                            finetuning, strategy):
    """1 process x batch 4 and 2 processes x batch 2 train the same rows in every step (the global
    batch is planned, then split), so their losses and saved models agree to fp32 rounding. fp32 is
    pinned (bf16: false): the automatic precision would compute in bf16 on a CPU with AVX512-BF16,
    whose rounding the next test bounds."""
    extra = {"finetuning": finetuning, "max_steps": 5, "save_steps": 2,
             "gradient_checkpointing": True, "bf16": False}
    one = config(tmp_path, "one", tiny_model_dir, gsm8k_small, per_device_train_batch_size=4,
                 **extra)
    assert main(["train", str(one)]) == 0
    two = config(tmp_path, "two", tiny_model_dir, gsm8k_small, strategy=strategy, **extra)
    out = torchrun(tmp_path, two).stdout
    assert "fp32 compute" in " ".join(out.split())  # the console wraps long lines
    assert "global batch 4 = 2 per device x 1 accumulation x 2 process(es)" in out
    assert f"memory per process ({strategy}, 2 process(es))" in out
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
    if strategy == "fsdp":
        # every process wrote its shard
        assert os.listdir(tmp_path / "two" / "checkpoint-4" / "shards")
    # the saved model loads in plain transformers / peft and answers as the single-process one does
    one_logits, two_logits = _logits([tmp_path / "one", tmp_path / "two"], tiny_model_dir,
                                     finetuning)
    torch.testing.assert_close(two_logits, one_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("finetuning", ["full", "lora"])
def test_two_processes_in_bf16_differ_from_one_by_less_than_bf16_itself(
        tmp_path, tiny_model_dir, gsm8k_small, finetuning):
    """In bf16, one process (batch 4) and two (batch 2 each, gradients reduced in fp32) round their
    matmuls in a different order, so the saved models differ by more than fp32 tolerances (up to
    0.007 in logits after 5 full steps, as much as bf16 itself moves the model). The tolerance is
    derived from bf16 itself: both are the fp32 run plus bf16 rounding, so the two-process model may
    be no further from the fp32 one than twice the distance of the one-process bf16 model (sharding
    adds no error of its own; a wrongly scaled or bf16-reduced gradient moves it by the learning
    rate, 100x more). Losses agree to bf16's relative precision (8 bits: 2**-8)."""
    extra = {"finetuning": finetuning, "max_steps": 5, "gradient_checkpointing": True}
    for name, bf16 in (("fp32", False), ("one", True)):
        path = config(tmp_path, name, tiny_model_dir, gsm8k_small, per_device_train_batch_size=4,
                      bf16=bf16, **extra)
        assert main(["train", str(path)]) == 0
    out = torchrun(tmp_path,
                   config(tmp_path, "two", tiny_model_dir, gsm8k_small, strategy="fsdp", bf16=True,
                          **extra)).stdout
    assert "bf16 compute" in " ".join(out.split())
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=2 ** -8)
    fp32, one, two = _logits([tmp_path / n for n in ("fp32", "one", "two")], tiny_model_dir,
                             finetuning)
    one_moved, two_moved = (one - fp32).abs().max().item(), (two - fp32).abs().max().item()
    print(f"max |logit difference| from the fp32 model: bf16 1 process {one_moved:.2e}, 2 "
          f"processes {two_moved:.2e}")
    assert one_moved > 0
    assert two_moved <= 2 * one_moved


def test_killed_fsdp_run_resumes_from_its_shards(tmp_path, tiny_model_dir, gsm8k_small):
    extra = {"finetuning": "full", "max_steps": 6, "save_steps": 2, "strategy": "fsdp"}
    whole = config(tmp_path, "whole", tiny_model_dir, gsm8k_small, **extra)
    torchrun(tmp_path, whole)
    cut = config(tmp_path, "cut", tiny_model_dir, gsm8k_small, **extra)
    env = {**os.environ, "CHATTUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "--module", "chattune", "train", str(cut)]
    run = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while (not (tmp_path / "cut" / "checkpoint-2").is_dir() and time.time() < deadline
           and run.poll() is None):
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the launcher and both workers, mid-run
    run.wait()
    assert (tmp_path / "cut" / "checkpoint-2" / "shards").is_dir()
    torchrun(tmp_path, cut, 2, "--resume")
    assert losses(tmp_path / "cut")[-4:] == pytest.approx(losses(tmp_path / "whole")[-4:], rel=1e-5)


def _one_process_fsdp(tmp_path, tiny_model_dir, gsm8k_small, device):
    """No launcher: a process group of one, the shards (all of the model) kept in CPU memory."""
    ref = config(tmp_path, "ref", tiny_model_dir, gsm8k_small, finetuning="full", max_steps=3,
                 device=device)
    assert main(["train", str(ref)]) == 0
    cfg = config(tmp_path, "offload", tiny_model_dir, gsm8k_small, finetuning="full", max_steps=3,
                 strategy="fsdp", fsdp={"cpu_offload": True}, device=device)
    env = {**os.environ, "CHATTUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "chattune", "train", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("memory per process (fsdp, 1 process(es))" in done.stdout
            and "CPU memory (offload)" in done.stdout)
    assert losses(tmp_path / "offload") == pytest.approx(losses(tmp_path / "ref"), rel=1e-4)


def test_fsdp_on_one_process(tmp_path, tiny_model_dir, gsm8k_small):
    _one_process_fsdp(tmp_path, tiny_model_dir, gsm8k_small, "cpu")


@pytest.mark.cuda
def test_fsdp_on_one_gpu_with_cpu_offload(tmp_path, tiny_model_dir, gsm8k_small):
    _one_process_fsdp(tmp_path, tiny_model_dir, gsm8k_small, "cuda")


def test_memory_estimate_shards_and_refuses_what_cannot_fit(tiny_model, monkeypatch):
    from chattune.config import build_config
    from chattune.errors import ConfigError
    from chattune.model.device import resolve_precision
    from chattune.train import memory
    from chattune.train.dist import Dist

    cfg = build_config({"data": {"train": "x.jsonl"}, "finetuning": "full", "strategy": "fsdp"})
    whole = memory.estimate(tiny_model, cfg.train_args(), 1, sharded=False, offload=False)
    half = memory.estimate(tiny_model, cfg.train_args(), 2, sharded=True, offload=False)
    assert half.parameters == whole.parameters / 2 and half.optimizer == whole.optimizer / 2
    assert whole.optimizer == 2 * whole.gradients  # AdamW: two fp32 moments per trainable weight
    dist, cpu = Dist(), torch.device("cpu")
    precision = resolve_precision(cpu, finetuning="full", bf16=False)
    monkeypatch.setattr(memory, "available", lambda device: whole.on_device / 2)
    with pytest.raises(ConfigError,
                       match="GiB of cpu memory per machine and .* is free.*strategy: fsdp"):
        memory.check_memory(tiny_model, cfg, dist, precision, cpu)
    monkeypatch.setattr(memory, "available", lambda device: whole.on_device * 2)
    assert ("memory per process (ddp, 1 process(es))"
            in memory.check_memory(tiny_model, cfg, dist, precision, cpu))


def test_fsdp_checkpoint_resumes_on_another_number_of_processes(
        tmp_path, tiny_model_dir, gsm8k_small):
    """DCP reshards: a checkpoint two FSDP processes wrote resumes in one process (the same global
    batch of 4), and the steps after it log the losses the two-process run logged."""
    import shutil

    extra = {"finetuning": "full", "max_steps": 4, "save_steps": 2, "strategy": "fsdp"}
    torchrun(tmp_path, config(tmp_path, "two", tiny_model_dir, gsm8k_small, **extra))
    (tmp_path / "one").mkdir()
    shutil.copytree(tmp_path / "two" / "checkpoint-2", tmp_path / "one" / "checkpoint-2")
    one = config(tmp_path, "one", tiny_model_dir, gsm8k_small, per_device_train_batch_size=4,
                 **extra)
    env = {**os.environ, "CHATTUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "chattune", "train", str(one), "--resume",
                           "--allow-config-changes"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("global batch 4 = 4 per device x 1 accumulation x 1 process(es)"
            in " ".join(done.stdout.split()))
    assert losses(tmp_path / "one")[-2:] == pytest.approx(losses(tmp_path / "two")[-2:], rel=1e-4)


def test_weights_one_shard_made_nan_stop_every_process_before_the_checkpoint(
        tmp_path, tiny_model_dir, gsm8k_small):
    """The NaN guard sums the processes' shares before a checkpoint, so every process stops at the
    same point and none waits in the collective save for one that stopped alone (it used to: the
    main process refused after the shards were written, the other waited at the barrier until the
    launcher's timeout)."""
    out = tmp_path / "nan"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "CHATTUNE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(ROOT / "tests" / "train" / "fsdp_nan_worker.py"), str(tiny_model_dir),
           str(gsm8k_small), str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for rank in (0, 1):
        assert (f"rank {rank}: training stopped at step 1: the weights step 1 wrote are not "
                "finite") in done.stdout
    assert "no checkpoint of them was written" in done.stdout
    # none, not half of one
    assert not out.exists() or not [p for p in out.iterdir() if "checkpoint" in p.name]
