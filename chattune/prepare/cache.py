"""The prepared-data cache: an Arrow file per key with its checksum, written atomically, verified
and memory-mapped when read.

The key hashes everything that decides the prepared examples, so any change of data, tokenizer,
template, row-shape settings, masking or truncation options, or chattune's version misses. An entry
whose file no longer matches its checksum (a bad disk, an edit) or cannot be read is removed and
reported, never trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chattune.config import DataSource, cache_dir
from chattune.files import follow_umask
from chattune.tokens import Tokens, concatenated, windows

# bump when the layout of an entry or a prepared record, or how its labels are made, changes
FORMAT_VERSION = 6


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the vocabulary, merges, added tokens, normaliser, special tokens and chat
    template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = (backend.to_str() if backend is not None
            else json.dumps(sorted(tokenizer.get_vocab().items())))
    specials = {name: str(getattr(tokenizer, name, None))
                for name in ("bos_token", "eos_token", "pad_token")}
    extra = json.dumps([specials, getattr(tokenizer, "chat_template", None),
                        sorted(map(str, getattr(
        tokenizer, "all_special_tokens", [])))], sort_keys=True, default=str)
    return hashlib.sha256((body + extra).encode()).hexdigest()


def cache_key(path: str, row_json: Iterable[str], spec: DataSource, opts: Any,
              tokenizer: Any) -> str:
    """The key for one source file's prepared data."""
    from chattune import __version__

    h = hashlib.sha256()
    settings = spec.model_dump(include={"format", "columns", "prompt_template", "system_prompt"})
    h.update(json.dumps([FORMAT_VERSION, __version__, path, settings, asdict(opts)],
                        sort_keys=True).encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    for row in row_json:
        h.update(row.encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def file_content_lines(path: str, limit: int | None) -> list[str]:
    """What a local file's rows are made of, for the key: a hash of its bytes and the row limit (the
    rows read from it are decided by these and chattune's version). Empty for what is not a plain
    file (a hub dataset, an Arrow directory): its rows are hashed instead."""
    file = Path(path).expanduser()
    if not file.is_file():
        return []
    try:
        return [f"file\t{_sha256(file)}\t{limit}"]
    except OSError:  # unreadable: hashing its rows reports it as reading them does
        return []


def prepared_dir() -> Path:
    return cache_dir() / "prepared"


SCHEMA_FIELDS = {"format": "text", "input_ids": "ids", "labels": "ids", "truncated": "flag",
                 "reason": "text", "error": "text"}  # the fields of prepare.examples.PreparedRow
ENTRY_FILE = "prepared.arrow"
CHECKSUM_FILE = "prepared.arrow.sha256"


class DamagedEntry(Exception):
    """A cache entry that failed its checksum or could not be read; it has been removed. Not a
    ChattuneError: the data is prepared again, so there is nothing for the user to fix, only to
    know."""


def _schema() -> Any:
    import pyarrow as pa

    kinds = {"ids": pa.list_(pa.int32()), "text": pa.string(), "flag": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in SCHEMA_FIELDS.items()])


def _offsets(items: list) -> Any:
    """Arrow's int32 offsets of a list of sized items: 0, then the running total of their
    lengths."""
    import numpy as np

    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, items), dtype=np.int32, count=len(items)), out=offsets[1:])
    return offsets


def _ids_array(lists: list[Sequence[int]]) -> Any:
    """A list<int32> Arrow array built from flat numpy buffers (pyarrow's per-element conversion of
    Python lists was most of the cost of writing an entry); Tokens go in as the buffers they are."""
    import pyarrow as pa

    return pa.ListArray.from_arrays(_int32_array(_offsets(lists)),
                                    _int32_array(concatenated(lists)))


def _ids_column(column: Any) -> list[Tokens]:
    """A list<int32> column read back as Tokens, windows of one copy of its values (a copy: the
    examples outlive the memory map, and a list of Python ints would take ten times the memory)."""
    import numpy as np

    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    offsets = _int32_view(array, len(array) + 1)
    if len(offsets) == 0:  # no rows at all: Arrow may leave out even the offsets
        return []
    values = _int32_view(array.values, len(array.values))
    return windows(np.array(values[offsets[0]:offsets[-1]]), offsets - offsets[0])


def _int32_view(array: Any, count: int) -> Any:
    """The `count` int32s of an Arrow array's data buffer (a list's offsets, or an int32 array's
    values) from its offset, as numpy, read off the buffer: Array.to_numpy imports pandas."""
    import numpy as np

    data = array.buffers()[1]
    if data is None or count == 0:
        return np.zeros(0, dtype=np.int32)
    return np.frombuffer(data, dtype=np.int32)[array.offset:array.offset + count]


# The columns are built from buffers: `pa.array` (and so `Table.from_pydict`) imports pandas to
# check what it is given, 0.4 s of a cold gsm8k preparation's 2.5.
def _int32_array(values: Any) -> Any:
    """An int32 Arrow array over a numpy buffer, without copying."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(values)])


def _validity(values: list) -> tuple[Any, int]:
    """The validity bitmap of `values` (None where all are set) and how many are None."""
    import numpy as np
    import pyarrow as pa

    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    missing = len(values) - int(valid.sum())
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if missing else None), missing


def _text_array(values: list[str | None]) -> Any:
    """A string Arrow array (None stays null)."""
    import pyarrow as pa

    encoded = [v.encode("utf-8") if v is not None else b"" for v in values]
    bitmap, missing = _validity(values)
    # int32 offsets: short texts (a format, a reason)
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [bitmap, pa.py_buffer(_offsets(encoded)),
                                  pa.py_buffer(b"".join(encoded))],
                                 null_count=missing)


def _flag_array(values: list[bool | None]) -> Any:
    """A bool Arrow array (None stays null)."""
    import numpy as np
    import pyarrow as pa

    flags = np.fromiter((bool(v) for v in values), dtype=bool, count=len(values))
    bitmap, missing = _validity(values)
    return pa.Array.from_buffers(pa.bool_(), len(values),
                                 [bitmap, pa.py_buffer(np.packbits(flags, bitorder="little"))],
                                 null_count=missing)


_BUILDERS = {"ids": _ids_array, "text": _text_array, "flag": _flag_array}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_verified(entry: Path) -> dict[str, list]:
    import pyarrow as pa

    if not (entry / CHECKSUM_FILE).is_file():
        raise ValueError(f"{CHECKSUM_FILE} is missing")
    expected = (entry / CHECKSUM_FILE).read_text(encoding="ascii").strip()
    found = _sha256(entry / ENTRY_FILE)
    if found != expected:
        raise ValueError(f"its checksum is {found[:16]}..., written as {expected[:16]}...")
    # the checksum rules out damage since it was written; validation also stops a file that was
    # wrong when written from being walked out of bounds (a segfault, not an exception) by to_pydict
    with pa.memory_map(str(entry / ENTRY_FILE)) as source:
        table = pa.ipc.open_file(source).read_all()
        if not table.schema.equals(_schema()):
            raise ValueError(f"its columns are {table.schema.names}, expected "
                             f"{list(SCHEMA_FIELDS)}")
        table.validate(full=True)
        return {name: _ids_column(table.column(name)) if kind == "ids"
                else table.column(name).to_pylist() for name, kind in SCHEMA_FIELDS.items()}


def load_cached(key: str) -> dict[str, list] | None:
    """The cached prepared columns for `key` (read through a memory map), or None when there is no
    entry.

    Raises DamagedEntry (naming the entry and what is wrong with it) after removing an entry that
    does not match its checksum or cannot be read; the caller prepares the data again."""
    import pyarrow as pa

    entry = prepared_dir() / key
    if not entry.exists():
        return None
    try:
        return _read_verified(entry)
    except (OSError, ValueError, pa.ArrowException) as e:  # ArrowInvalid is a ValueError too
        shutil.rmtree(entry, ignore_errors=True)
        raise DamagedEntry(f"the prepared-data cache entry {entry} was damaged ({e}); it was "
                           "removed") from None


def save_cached(key: str, columns: dict[str, list]) -> None:
    """Write an Arrow file in a temporary directory beside the entry, then rename the directory, so
    a reader never sees half an entry."""
    import pyarrow as pa

    root = prepared_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        table = pa.Table.from_arrays([_BUILDERS[kind](columns[name])
                                      for name, kind in SCHEMA_FIELDS.items()], schema=_schema())
        with (pa.OSFile(str(tmp / ENTRY_FILE), "wb") as sink,
              pa.ipc.new_file(sink, table.schema) as writer):
            writer.write_table(table)
        (tmp / CHECKSUM_FILE).write_text(_sha256(tmp / ENTRY_FILE) + "\n", encoding="ascii")
        follow_umask(tmp)
        os.replace(tmp, root / key)
    # another run wrote it first, or the disk is full: the cache is an optimisation only
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
