"""Save what training produced: a PEFT adapter or full model, each with its tokenizer, chat template
and stop tokens, so every tool that loads it renders and stops the same way."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chattune.errors import ChattuneError
from chattune.files import follow_umask


def _set_stop_tokens(model: Any, stop_ids: list[int]) -> None:
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.eos_token_id = stop_ids if len(stop_ids) > 1 else stop_ids[0]


@contextmanager
def _base_read_locally(model: Any) -> Iterator[None]:
    """While peft saves an adapter, its config names the base's local folder: peft reads the base's
    config.json there to decide whether to save the embedding layers, and would otherwise ask the
    hub for a hub id (a request at every save; offline, a warning and a guess). adapter_config.json
    keeps the id."""
    from chattune.model.lora import base_model

    configs = getattr(model, "peft_config", None) or {}
    local = getattr(base_model(model), "chattune_local_dir", None)
    names = {key: config.base_model_name_or_path for key, config in configs.items()}
    if local is None or not isinstance(configs, dict):
        yield
        return
    try:
        for config in configs.values():
            config.base_model_name_or_path = local
        yield
    finally:
        for key, config in configs.items():
            config.base_model_name_or_path = names[key]


def _name_base_in_adapter_config(model: Any, directory: Path) -> None:
    """adapter_config.json (each adapter's, in its subfolder) names the base as the model goes
    by."""
    for key, config in (getattr(model, "peft_config", None) or {}).items():
        path = Path(directory) / ("" if key == "default" else key) / "adapter_config.json"
        if path.is_file():
            values = json.loads(path.read_text(encoding="utf-8"))
            values["base_model_name_or_path"] = config.base_model_name_or_path
            path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_pretrained(model: Any, tokenizer: Any, directory: Path, stop_ids: list[int],
                     state_dict: dict[str, Any] | None = None, card: str | None = None) -> None:
    """Model (or adapter) as safetensors, tokenizer, template and stop tokens into `directory`; a
    failed write (a full disk, no permission) is an OSError whatever library wrote the file.
    `state_dict`: the weights to write instead of the model's own (the full weights gathered from
    FSDP shards). `card`: README.md's text (it replaces the empty template peft writes)."""
    _set_stop_tokens(model, stop_ids)
    try:
        extra = {"state_dict": state_dict} if state_dict is not None else {}
        with _base_read_locally(model):
            model.save_pretrained(directory, safe_serialization=True, **extra)
        _name_base_in_adapter_config(model, directory)
        tokenizer.save_pretrained(directory)
        if card is not None:
            (Path(directory) / "README.md").write_text(card, encoding="utf-8")
    except OSError:
        raise
    # safetensors' SafetensorError and tokenizers' plain Exception carry the OS error as text
    except Exception as e:
        raise OSError(f"{type(e).__name__}: {e}") from e


def save_pretrained_atomic(model: Any, tokenizer: Any, out_dir: Path, stop_ids: list[int],
                           state_dict: dict[str, Any] | None = None,
                           card: str | None = None) -> Path:
    """Write model (or adapter) + tokenizer (+ `card` as README.md) into a temporary directory, then
    rename over `out_dir`.

    A crash mid-write leaves the previous `out_dir` untouched; a failed write (a full disk, no
    permission) is a ChattuneError naming `out_dir`, with nothing half-written left behind.
    """
    out_dir = Path(out_dir)
    old, tmp = out_dir.with_name(out_dir.name + ".old"), None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
        write_pretrained(model, tokenizer, tmp, stop_ids, state_dict, card)
        follow_umask(tmp)
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        kept = "the earlier one there is unchanged" if out_dir.exists() else \
            f"the earlier one is at {old}" if old.exists() else "nothing was written there"
        raise ChattuneError(f"could not save {out_dir}: {e}; {kept}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def refuse_to_replace(out_dir: Path, *, overwrite: bool, keep: tuple[Path, ...] = ()) -> None:
    """Raise ChattuneError, before any work, when writing `out_dir` would destroy something: a file
    there, a non-empty directory (unless `overwrite`), or one of the inputs `keep` (which
    `overwrite` never allows)."""
    out_dir = Path(out_dir)
    target = out_dir.resolve()
    for path in keep:
        path = Path(path).resolve()
        if target == path or target in path.parents:
            raise ChattuneError(f"{out_dir}: the output would replace the input {path}; choose "
                                "another directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise ChattuneError(f"{out_dir}: exists and is not a directory; choose another output "
                            "directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ChattuneError(f"{out_dir}: is not empty; nothing was written (pass --overwrite to "
                            "replace what is in it, or choose another directory)")
