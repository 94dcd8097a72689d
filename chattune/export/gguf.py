"""`chattune export gguf`: a Hugging Face model folder to one GGUF file through llama.cpp's own
converter (and its quantiser for K-quants), with the chat template and the end-of-turn stop in its
metadata, verified in llama.cpp before it takes its name."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chattune.data.schema import Message
from chattune.errors import ExportError
from chattune.export.llama_cpp import (
    CONVERTER_TYPES,
    LLAMA_CPP_PYTHON,
    QUANTISER_TYPES,
    quantize,
    run_tool,
)
from chattune.export.verify import CONVERSATIONS, Verification, verify_gguf
from chattune.templates.setup import stop_token_ids


def check_target(out: Path, overwrite: bool) -> None:
    """An existing OUT is kept unless `overwrite`; a missing folder for it is an error before any
    work."""
    for path in (out, out.with_suffix(".Modelfile")):
        if path.exists() and not overwrite:
            raise ExportError(f"{path} exists; kept (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: no such folder for the GGUF file")
    if out.suffix != ".gguf":
        raise ExportError(f"{out}: a GGUF file name ends in .gguf")


def check_quant(quant: str) -> str:
    quant = quant.lower()
    if quant not in CONVERTER_TYPES + QUANTISER_TYPES:
        raise ExportError(f"--quant {quant}: choose from "
                          f"{', '.join(CONVERTER_TYPES + QUANTISER_TYPES)}")
    return quant


def convert(model_dir: Path, out: Path, outtype: str) -> None:
    """llama.cpp's convert_hf_to_gguf.py; its refusals (an unknown architecture, ...) as an
    ExportError."""
    done = run_tool("convert_hf_to_gguf.py",
                    [str(model_dir), "--outfile", str(out), "--outtype", outtype])
    if done.returncode == 0 and out.is_file():
        return
    log = done.stderr + done.stdout
    if "No space left on device" in log:
        raise ExportError(f"{out.parent}: no space left on the device while llama.cpp's converter "
                          "wrote the GGUF; nothing was written (free space, or choose another "
                          "folder for OUT)")
    unknown = re.search(r"Model (\S+) is not supported", log)
    if unknown:
        raise ExportError(f"{model_dir}: architecture {unknown.group(1)} is not supported by "
                          f"llama.cpp's converter (llama-cpp-python {LLAMA_CPP_PYTHON})")
    raise ExportError(f"llama.cpp's converter failed on {model_dir}: {log.strip()[-600:]}")


def mark_end_of_turn(path: Path, fixed: Path, tokenizer: Any) -> Path:
    """The GGUF with the template's end-of-turn token as llama.cpp's EOT where it is not already its
    EOS (Llama 3 style: eos <|end_of_text|>, turns end with <|eot_id|>), so llama.cpp and Ollama
    stop where training did."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    eos = fields.get("tokenizer.ggml.eos_token_id")
    eos_id = int(eos.contents()) if eos is not None else None
    turn_ends = ([i for i in stop_token_ids(tokenizer) if i != tokenizer.eos_token_id]
                 or stop_token_ids(tokenizer))
    if eos_id in turn_ends:
        return path
    done = run_tool("gguf-py/gguf/scripts/gguf_new_metadata.py",
                    [str(path), str(fixed), "--special-token-by-id", "eot", str(turn_ends[0]),
                     "--force"])
    if done.returncode or not fixed.is_file():
        raise ExportError(f"llama.cpp's gguf_new_metadata failed marking the end-of-turn token: "
                          f"{(done.stderr + done.stdout).strip()[-400:]}")
    path.unlink()
    return fixed


def folder_template(model_dir: Path) -> str | None:
    """The chat template the converter will read from the folder (tokenizer_config.json,
    chat_template.jinja or chat_template.json), None when it has none."""
    import json

    config = model_dir / "tokenizer_config.json"
    if config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("chat_template"):
        return json.loads(config.read_text(encoding="utf-8"))["chat_template"]
    if (model_dir / "chat_template.jinja").is_file():
        return (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    if (model_dir / "chat_template.json").is_file():
        return json.loads((model_dir
                           / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    return None


def export_gguf(model_dir: Path, out: Path, model: Any, tokenizer: Any, *, quant: str = "f16",
                overwrite: bool = False, verify: bool = True, say: Callable[[str], None] = print,
                conversations: Sequence[Sequence[Message]] = CONVERSATIONS) -> Verification | None:
    """Convert `model_dir` (the folder `model` was loaded from, fp32) to `out`; with `verify`,
    refuse (ExportError, nothing left under `out`'s name) when llama.cpp does not compute what
    `model` computes."""
    quant = check_quant(quant)
    check_target(out, overwrite)
    if folder_template(model_dir) is None:
        raise ExportError(f"{model_dir} has no chat template: llama.cpp and Ollama would format "
                          "chats differently from training (give the model one, e.g. chattune's "
                          "`template:` when training)")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        first = work / "converted.gguf"
        convert(model_dir, first, quant if quant in CONVERTER_TYPES else "auto")
        if quant not in CONVERTER_TYPES:
            say(f"quantising to {quant} with llama.cpp's quantiser")
            quantize(first, work / "quantised.gguf", quant)
            first.unlink()
            first = work / "quantised.gguf"
        result = mark_end_of_turn(first, work / "marked.gguf", tokenizer)
        checked = verify_gguf(result, model, tokenizer, quant, conversations) if verify else None
        if checked is not None and not checked.passed:
            raise ExportError(f"{out}: {checked.line()}; not written (--no-verify writes it "
                              "unchecked)")
        result.replace(out)
        return checked
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_adapter_gguf(base_dir: Path, adapter_dir: Path, out: Path, merged: Any, tokenizer: Any,
                        *, overwrite: bool = False, verify: bool = True) -> Verification | None:
    """The LoRA adapter as a GGUF adapter (llama.cpp's `--lora`) through llama.cpp's
    convert_lora_to_gguf.py; with `verify`, the base (as an f16 GGUF) plus the adapter in llama.cpp
    must compute what `merged` computes."""
    check_target(out, overwrite)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        adapter = work / "adapter.gguf"
        done = run_tool("convert_lora_to_gguf.py",
                        ["--base", str(base_dir), "--outfile", str(adapter),
                         "--outtype", "f16", str(adapter_dir)])
        if done.returncode or not adapter.is_file():
            raise ExportError(f"llama.cpp's convert_lora_to_gguf failed on {adapter_dir}: "
                              f"{(done.stderr + done.stdout).strip()[-600:]}")
        checked = None
        if verify:
            convert(base_dir, work / "base.gguf", "f16")
            checked = verify_gguf(work / "base.gguf", merged, tokenizer, "f16", lora=adapter)
            if not checked.passed:
                raise ExportError(f"{out}: base + adapter {checked.line()}; not written")
        adapter.replace(out)
        return checked
    finally:
        shutil.rmtree(work, ignore_errors=True)
