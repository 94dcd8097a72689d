"""Model resolution: GGUF conversion is exact and cached; unknown models are clear errors."""

import os

import pytest
import torch

from chattune.errors import ModelError
from chattune.model.device import CPU_BF16_ENV, bf16_is_fast
from chattune.model.load import load_model, packaged_gguf, resolve_model_path


@pytest.mark.slow
def test_gguf_path_converts_once_to_identical_model(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("CHATTUNE_CACHE", str(tmp_path))
    gguf = packaged_gguf()
    converted = resolve_model_path(str(gguf))
    assert converted.parent == tmp_path / "models" and (converted / "model.safetensors").is_file()
    mtime = os.stat(converted / "model.safetensors").st_mtime_ns
    assert resolve_model_path(str(gguf)) == converted  # cached: not converted again
    assert os.stat(converted / "model.safetensors").st_mtime_ns == mtime
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    with torch.no_grad():
        assert torch.equal(load_model(converted).eval()(ids).logits, reference(ids).logits)

    # two runs started at once both convert: the one that finishes second finds the other's model in
    # place
    import shutil

    from chattune.model import load

    raced = tmp_path / "raced"
    real_replace = os.replace

    def other_process_first(src, dst):
        shutil.copytree(converted, dst)
        real_replace(src, dst)

    monkeypatch.setattr(load.os, "replace", other_process_first)
    assert load.convert_gguf(gguf, raced) == raced and (raced / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converting-")]


def test_unknown_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not a local directory or .gguf file"):
        resolve_model_path("nobody/no-such-model")
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model_path(str(tmp_path / "x.gguf"))


def test_bf16_only_where_fast(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    assert bf16_is_fast(torch.device("cpu")) == ("amx_bf16" in flags or "avx512_bf16" in flags)
    # the test suite's switch (tests/conftest.py --cpu-bf16)
    for forced, fast in (("1", True), ("0", False)):
        monkeypatch.setenv(CPU_BF16_ENV, forced)
        assert bf16_is_fast(torch.device("cpu")) is fast
