"""The prepared-data cache: an Arrow file per key, written atomically, memory-mapped when read.

The key hashes everything that decides the prepared examples, so any change of data, tokenizer, template,
row-shape settings, masking or truncation options, or chattune's version misses.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chattune.config import DataSource, cache_dir

FORMAT_VERSION = 3  # bump when the layout of a prepared record or how its labels are made changes


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


SCHEMA_FIELDS = {"format": "text", "input_ids": "ids", "labels": "ids", "truncated": "flag", "reason": "text",
                 "error": "text"}  # the fields of batching.prepare.PreparedRow
ENTRY_FILE = "prepared.arrow"


def _schema() -> Any:
    import pyarrow as pa

    kinds = {"ids": pa.list_(pa.int32()), "text": pa.string(), "flag": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in SCHEMA_FIELDS.items()])


def _ids_array(lists: list[list[int]]) -> Any:
    """A list<int32> Arrow array built from flat numpy buffers (pyarrow's per-element conversion of Python lists
    was most of the cost of writing an entry)."""
    import numpy as np
    import pyarrow as pa

    lengths = np.fromiter((len(x) for x in lists), dtype=np.int32, count=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def load_cached(key: str) -> dict[str, list] | None:
    """The cached prepared columns for `key` (read through a memory map), or None."""
    import pyarrow as pa

    path = prepared_dir() / key / ENTRY_FILE
    if not path.is_file():
        return None
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all().to_pydict()
    except (OSError, pa.ArrowInvalid):  # a damaged entry is a miss; it is rewritten
        shutil.rmtree(path.parent, ignore_errors=True)
        return None


def save_cached(key: str, columns: dict[str, list]) -> None:
    """Write an Arrow file in a temporary directory beside the entry, then rename the directory, so a reader
    never sees half an entry."""
    import pyarrow as pa

    root = prepared_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        table = pa.Table.from_pydict({name: _ids_array(values) if SCHEMA_FIELDS[name] == "ids" else values
                                      for name, values in columns.items()}, schema=_schema())
        with pa.OSFile(str(tmp / ENTRY_FILE), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, root / key)
    except OSError:  # another run wrote it first, or the disk is full: the cache is an optimisation only
        shutil.rmtree(tmp, ignore_errors=True)
