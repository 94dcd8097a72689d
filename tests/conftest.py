"""Shared fixtures: the real SmolLM2 tokenizer and tiny random-init models built from a config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chattune.config import DEFAULT_MODEL
from chattune.model.load import load_tokenizer, resolve_model_path
from chattune.model.tiny import make_tiny_model  # noqa: F401  (tests import it from here)

ASSETS = Path(__file__).parent / "assets"
ROOT = Path(__file__).parent.parent


def pytest_addoption(parser):
    parser.addoption("--cpu-bf16", choices=["auto", "on", "off"], default="auto",
                     help="the CPU's bf16 as the automatic precision sees it: auto (as the machine "
                          "is), on (as if it had AVX512-BF16), off (as if not). Sets "
                          "$CHATTUNE_CPU_BF16, so subprocesses see it too.")


def pytest_configure(config):
    """The suite must pass on CPUs with and without bf16 (CI lands on either): --cpu-bf16 on/off
    runs it as the other kind would."""
    from chattune.model.device import CPU_BF16_ENV

    forced = config.getoption("--cpu-bf16")
    if forced != "auto":
        os.environ[CPU_BF16_ENV] = "1" if forced == "on" else "0"


def pytest_report_header(config):
    from chattune.model.device import cpu_has_fast_bf16

    return f"CPU bf16 (automatic precision): {'on' if cpu_has_fast_bf16() else 'off'}"


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` only mean something on an NVIDIA GPU: skipped, with the reason,
    elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU (torch {torch.__version__} sees none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def prepared_cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own prepared-data cache, so no test sees another's (or the user's)
    entries."""
    path = tmp_path / "prepared-cache"
    monkeypatch.setattr("chattune.prepare.cache.prepared_dir", lambda: path)
    return path


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The built-in default model directory (converted from the packaged GGUF once, then cached)."""
    return resolve_model_path(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def tokenizer(request):
    """The default model's tokenizer; $CHATTUNE_TOKENIZER_DIR instead on a machine without the model
    package (a lent GPU machine, where bench/gpu_kit.sh carries the tokenizer files alone)."""
    path = os.environ.get("CHATTUNE_TOKENIZER_DIR")
    return load_tokenizer(path or request.getfixturevalue("default_model_dir"))


@pytest.fixture
def tiny_model(tokenizer):
    return make_tiny_model(tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A saved tiny model directory with the real tokenizer, usable wherever a model path is."""
    path = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(tokenizer).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def gsm8k_small(tmp_path) -> Path:
    """Twelve gsm8k rows (the shipped file, MIT licence) as a plain jsonl."""
    import gzip

    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(12)]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path
