"""Exports at the end of a training run (`export: {gguf: [q8_0]}`): each GGUF written from the run's
final model, verified in llama.cpp, and listed in exports.json for the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.data.schema import Message
from chattune.export.gguf import check_quant, export_gguf
from chattune.export.llama_cpp import require_llama_cpp, tools_dir
from chattune.export.ollama import write_modelfile
from chattune.export.source import model_to_export
from chattune.export.verify import CONVERSATIONS

EXPORTS_FILE = "exports.json"


def check_exports(quants: list[str]) -> list[str]:
    """Before training: every type known, llama.cpp and its converter at hand."""
    checked = [check_quant(q) for q in quants]
    if checked:
        require_llama_cpp()
        tools_dir()
    return checked


def run_conversations(out: Path, n: int = 5) -> list[list[Message]]:
    """The check's conversations: the run's first compare questions with the tuned model's answers,
    else the built-in ones."""
    path = out / "compare.jsonl"
    if not path.is_file():
        return CONVERSATIONS
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]
            if line.strip()]
    return [[Message("user", r["question"]), Message("assistant", r["tuned"])]
            for r in rows] or CONVERSATIONS


def export_run(out: Path, quants: list[str], say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each GGUF of the run in `out` (its merged/ or model/ folder, or base + adapter), verified on
    the run's compare questions; exports.json."""
    done: list[dict[str, Any]] = []
    conversations = run_conversations(out)
    with model_to_export(str(out)) as (folder, model, tokenizer, what):
        for quant in quants:
            path = out / f"{out.name}-{quant}.gguf"
            say(f"exporting {what} to {path} ({quant}) with llama.cpp's converter")
            checked = export_gguf(folder, path, model, tokenizer, quant=quant, overwrite=True,
                                  say=say, conversations=conversations)
            line = checked.line() if checked else "not verified"
            say(line)
            modelfile, _ = write_modelfile(path, tokenizer)
            done.append({"file": path.name, "quant": quant, "bytes": path.stat().st_size,
                         "verification": line, "modelfile": modelfile.name})
    (out / EXPORTS_FILE).write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
    return done
