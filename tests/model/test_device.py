"""Device and precision choice: one resolver for every command, clear errors for a device this
machine lacks."""

import pytest
import torch

from chattune.config import build_config
from chattune.errors import ConfigError
from chattune.model.device import (
    check_processes_fit,
    ids_tensor,
    memory_stats,
    resolve_device,
    resolve_precision,
)

CPU = torch.device("cpu")


def test_auto_picks_the_gpu_else_mps_else_cpu():
    expected = ("cuda" if torch.cuda.is_available() else "mps"
                if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected == resolve_device(None).type
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cuda0"])
def test_a_device_name_that_is_not_one_is_refused(name):
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_a_gpu_this_machine_lacks_is_a_clear_error():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError, match="no CUDA GPU" if count == 0 else f"has {count} GPU"):
        resolve_device(f"cuda:{count}")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="no MPS backend"):
            resolve_device("mps")


def test_more_processes_than_gpus_is_refused_before_any_work():
    cuda = torch.device("cuda")
    with pytest.raises(ConfigError,
                       match="2 processes were launched on this machine but it has 1 GPU"):
        check_processes_fit(cuda, 2, gpus=1)
    with pytest.raises(ConfigError, match="names one GPU"):
        check_processes_fit(torch.device("cuda:0"), 2, gpus=2)
    check_processes_fit(cuda, 2, gpus=2)
    check_processes_fit(CPU, 8)  # CPU processes: as many as asked
    check_processes_fit(cuda, 1, gpus=0)


def test_the_config_takes_a_device_key():
    assert build_config({"data": {"train": "x"}}).device == "auto"
    assert build_config({"data": {"train": "x"}}, ["device=cuda:1"]).device == "cuda:1"
    with pytest.raises(ConfigError, match="device"):
        build_config({"data": {"train": "x"}}, ["device=gpu0"])


def test_precision_by_finetuning_kind():
    bf16 = torch.bfloat16
    # a LoRA/QLoRA base is frozen: stored in the compute dtype, no per-step casts
    assert resolve_precision(CPU, finetuning="lora", bf16=True) == (bf16, bf16)
    assert resolve_precision(CPU, finetuning="qlora", bf16=True) == (bf16, bf16)
    # full fine-tuning keeps fp32 master weights under autocast, unless pure bf16 is asked for
    assert resolve_precision(CPU, finetuning="full", bf16=True) == (bf16, torch.float32)
    assert resolve_precision(CPU, finetuning="full", bf16=True, bf16_full=True) == (bf16, bf16)
    assert resolve_precision(CPU, finetuning="lora", bf16=False) == (None, torch.float32)
    assert (resolve_precision(CPU, finetuning="lora", bf16=None, fp16=True)
            == (torch.float16, torch.float16))
    assert resolve_precision(CPU, finetuning="lora", bf16=False).name == "fp32"


def test_precision_keys_that_contradict_are_refused_together():
    with pytest.raises(ConfigError) as e:
        build_config({"data": {"train": "x"}, "bf16": True, "fp16": True})
    assert "choose one" in str(e.value)
    with pytest.raises(ConfigError, match="bf16_full .* needs finetuning: full"):
        build_config({"data": {"train": "x"}, "bf16_full": True})
    full = build_config({"data": {"train": "x"}, "finetuning": "full", "bf16_full": True})
    assert full.args.bf16_full


def test_gradient_checkpointing_defaults_on_for_qlora_only():
    assert build_config({"data": {"train": "x"}, "finetuning": "qlora"}).checkpointing
    assert not build_config({"data": {"train": "x"}}).checkpointing
    off = {"data": {"train": "x"}, "finetuning": "qlora", "gradient_checkpointing": False}
    assert not build_config(off).checkpointing


def test_inputs_are_made_on_the_model_device(tiny_model):
    ids = ids_tensor(tiny_model, [[1, 2, 3]])
    assert ids.device == next(tiny_model.parameters()).device and ids.dtype == torch.long
    assert memory_stats(CPU) == {}  # GPU memory is reported on CUDA only


@pytest.mark.cuda
def test_inputs_follow_a_model_on_the_gpu(tiny_model, tokenizer):
    from chattune.model.lora import _logits

    model = tiny_model.to("cuda")
    assert ids_tensor(model, [[1, 2]]).is_cuda
    assert _logits(model, tokenizer, ["hello there"])[0].is_cuda
    torch.cuda.reset_peak_memory_stats()
    stats = memory_stats(torch.device("cuda"))
    assert stats["peak_memory_reserved_gb"] >= stats["peak_memory_allocated_gb"] > 0
