"""Read raw rows from local files, saved datasets or a hub; no transformation happens here."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chattune.errors import DataError

Row = tuple[int, dict[str, Any]]  # (1-based row number: the line for jsonl, the record for others; the row)


def _open_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", newline="")


def _kind(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lstrip(".") if suffixes else ""


def _read_jsonl(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(str(path), line_no, None, f"expected a JSON object on this line, found invalid "
                                f"JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(str(path), line_no, None, f"expected a JSON object, found {type(row).__name__}")
            yield line_no, row


def _read_json(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(str(path), None, None, f"invalid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise DataError(str(path), None, None, "expected columns of equal length, found lengths "
                            f"{sorted(lengths)}")
        keys = list(data)
        data = [dict(zip(keys, values)) for values in zip(*data.values())]
    if not isinstance(data, list):
        raise DataError(str(path), None, None, "expected a list of rows or an object of column lists, found "
                        f"{type(data).__name__}")
    for i, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise DataError(str(path), i, None, f"expected an object, found {type(row).__name__}")
        yield i, row


def _read_csv(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        for i, values in enumerate(reader, start=1):
            if len(values) != len(header):
                raise DataError(str(path), i, None, f"expected {len(header)} fields like the header, "
                                f"found {len(values)}")
            yield i, dict(zip(header, values))


def _read_arrow(table_rows: Iterator[dict[str, Any]]) -> Iterator[Row]:
    for i, row in enumerate(table_rows, start=1):
        yield i, dict(row)


def _read_rows(path: Path) -> Iterator[Row]:
    if path.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
        return _read_arrow(iter(ds))
    kind = _kind(path)
    if kind == "jsonl":
        return _read_jsonl(path)
    if kind == "json":
        return _read_json(path)
    if kind == "csv":
        return _read_csv(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return _read_arrow(iter(pq.read_table(path).to_pylist()))
    raise DataError(str(path), None, None, f"unknown file type {kind!r}; expected .jsonl, .json, .csv, "
                    ".parquet (optionally .gz) or a saved datasets directory")


def _read_hub(dataset_id: str, split: str | None = None, config_name: str | None = None) -> Iterator[Row]:
    """`owner/name` or `owner/name:split` (default split 'train') through datasets.load_dataset."""
    import datasets

    name, _, id_split = dataset_id.partition(":")
    try:
        ds = datasets.load_dataset(name, config_name, split=split or id_split or "train")
    except Exception as e:  # the hub, the network or the name: all are the user's to fix
        raise DataError(dataset_id, None, None, f"not a local file, and loading it from the hub failed: {e}") from None
    return _read_arrow(iter(ds))


GLOB_CHARS = "*?["


def expand_paths(source: str) -> list[str]:
    """A glob's matching files in sorted order; anything else as given. A glob matching nothing is an error."""
    if not any(c in source for c in GLOB_CHARS):
        return [source]
    path = Path(source).expanduser()
    anchor = Path(path.anchor) if path.is_absolute() else Path(".")
    pattern = str(path.relative_to(anchor)) if path.is_absolute() else source
    matches = sorted(str(p) for p in anchor.glob(pattern) if p.is_file())
    if not matches:
        raise DataError(source, None, None, "no file matches this pattern")
    return matches


def load_rows(source: str, limit: int | None = None, *, split: str | None = None,
              config_name: str | None = None) -> list[Row]:
    """All rows of `source` (the first `limit` if given), each with its 1-based row number.

    `split` and `config_name` apply to hub datasets."""
    path = Path(source).expanduser()
    if path.exists():
        reader = _read_rows(path)
    elif "/" in source and not source.startswith((".", "/")) and not Path(source).suffix:
        reader = _read_hub(source, split, config_name)
    else:
        raise DataError(source, None, None, "file not found")
    rows: list[Row] = []
    try:
        for row in reader:
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    except UnicodeDecodeError as e:
        found = f"byte {e.object[e.start]:#x}"
        raise DataError(source, len(rows) + 1, None, f"expected UTF-8 text, found {found}") from None
    except (OSError, EOFError) as e:
        raise DataError(source, len(rows) + 1, None, f"could not read the file ({e})") from None
    if not rows:
        raise DataError(source, None, None, "no rows found (the file is empty)")
    return rows
