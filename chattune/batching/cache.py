"""The prepared-data cache: an Arrow directory per key, written atomically, memory-mapped when read.

The key hashes everything that decides the prepared examples, so any change of data, tokenizer, template,
row-shape settings, masking or truncation options, or chattune's version misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chattune.config import DataSource, cache_dir

FORMAT_VERSION = 1  # bump when the layout of a prepared record changes


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the vocabulary, merges, added tokens, normaliser, special tokens and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = {name: str(getattr(tokenizer, name, None)) for name in ("bos_token", "eos_token", "pad_token")}
    extra = json.dumps([specials, getattr(tokenizer, "chat_template", None), sorted(map(str, getattr(
        tokenizer, "all_special_tokens", [])))], sort_keys=True, default=str)
    return hashlib.sha256((body + extra).encode()).hexdigest()


def cache_key(path: str, row_json: list[str], spec: DataSource, opts: Any, tokenizer: Any) -> str:
    """The key for one source file's prepared data."""
    from chattune import __version__

    h = hashlib.sha256()
    settings = spec.model_dump(include={"format", "columns", "prompt_template", "system_prompt"})
    h.update(json.dumps([FORMAT_VERSION, __version__, path, settings, asdict(opts)], sort_keys=True).encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    for row in row_json:
        h.update(row.encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def prepared_dir() -> Path:
    return cache_dir() / "prepared"


def load_cached(key: str) -> Any | None:
    """The cached prepared dataset for `key` (memory-mapped), or None."""
    path = prepared_dir() / key
    if not (path / "dataset_info.json").is_file():
        return None
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError):  # a damaged entry is a miss; it is rewritten below
        shutil.rmtree(path, ignore_errors=True)
        return None


def save_cached(key: str, prepared: Any) -> None:
    """Write to a temporary directory beside the entry, then rename, so a reader never sees half an entry."""
    root = prepared_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        prepared.save_to_disk(str(tmp))
        os.replace(tmp, root / key)
    except OSError:  # another run wrote it first, or the disk is full: the cache is an optimisation only
        shutil.rmtree(tmp, ignore_errors=True)
