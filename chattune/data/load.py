"""Read raw rows from local files, saved datasets or a hub; no transformation happens here.

Text files are read as users have them: a UTF-8 byte-order mark (Excel and Notepad write one) is
dropped and CRLF line ends are fine. Each row carries where a person finds it: for jsonl, csv and
json, the line an editor shows."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chattune.errors import DataError


class RowNo(int):
    """A row's 1-based number, and `where` to find it in words: "line 7" for jsonl and csv (the line
    the row starts on), "line 12 (item [3])" for a json list, "row 3" for parquet, saved datasets
    and the hub.

    An int everywhere (the line for line-based files, the record for others), so code that only
    counts rows or prints the number keeps working."""

    where: str

    def __new__(cls, number: int, where: str | None = None) -> RowNo:
        self = super().__new__(cls, number)
        self.where = where or f"row {number}"
        return self

    def __getnewargs__(self) -> tuple[int, str]:  # rows are pickled to preparation workers
        return int(self), self.where


def at_line(number: int) -> RowNo:
    """The row that starts on editor line `number`."""
    return RowNo(number, f"line {number}")


Row = tuple[int, dict[str, Any]]  # (the row's number, a RowNo when it came from load_rows; the row)

_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
# a JSONL line or JSON list item longer than this is no row: refused, not read whole
MAX_LINE_CHARS = 256 << 20


def _open_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    # utf-8-sig drops a leading byte-order mark (json refuses one, csv would glue it to the first
    # column's name); newline="" keeps CRLF inside quoted csv fields as written, and splits lines on
    # CRLF, LF and CR alike
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _kind(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lstrip(".") if suffixes else ""


def _lines(f: Any, path: Path) -> Iterator[tuple[int, str]]:
    """(editor line, text) for each line, none read past MAX_LINE_CHARS characters: a file that is
    one long line (a JSON document, a binary file) is refused with memory bounded by the limit, not
    by the file."""
    limit = MAX_LINE_CHARS
    for line_no in itertools.count(1):
        text = f.readline(limit + 2)  # room for the line's own "\r\n"
        if not text:
            return
        ending = 2 if text.endswith("\r\n") else 1 if text.endswith(("\n", "\r")) else 0
        if len(text) - ending > limit:
            raise DataError(str(path), at_line(line_no), None,
                            f"expected a row of at most {limit:,} characters "
                            "(chattune.data.load.MAX_LINE_CHARS) on one line, found a longer line "
                            f"(no line break in its first {limit:,} characters); JSON Lines holds "
                            "one row per line: a JSON list of rows belongs in a .json "
                            "file") from None
        yield line_no, text


def _read_jsonl(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        for line_no, text in _lines(f, path):  # blank lines count, as in an editor
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(str(path), at_line(line_no), None,
                                f"expected a JSON object on this line, found "
                                f"invalid JSON ({e.msg} at column {e.colno})") from None
            except (RecursionError, ValueError) as e:
                raise _unreadable_json(path, at_line(line_no), e) from None
            if not isinstance(row, dict):
                raise DataError(str(path), at_line(line_no), None, f"expected a JSON object, found "
                                f"{type(row).__name__}")
            _check_text(path, at_line(line_no), text, row)
            yield at_line(line_no), row


def _unreadable_json(path: Path, where: RowNo | None, e: BaseException) -> DataError:
    """Valid JSON that Python will not hold: nesting past the recursion limit, an integer of
    thousands of digits."""
    if isinstance(e, RecursionError):
        found = "JSON nested deeper than Python's recursion limit"
    else:
        found = f"a value Python will not read ({e})"
    return DataError(str(path), where, None, f"expected a row of messages, found {found}")


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a \uD800-\uDFFF escape: half of a UTF-16 pair


def _check_text(path: Path, where: RowNo, text: str, row: Any) -> None:
    """A lone UTF-16 surrogate escape decodes to a string no tokenizer or file can encode: named
    here."""
    if not _SURROGATE.search(text):
        return
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(str(path), where, None,
                        "expected text, found a lone UTF-16 surrogate (a \\uD8xx-"
                        "\\uDFxx escape without its pair); the row's text is damaged") from None


JSON_BLOCK = 1 << 20  # characters of a JSON file read at a time


class _JsonText:
    """A JSON file's text, read a block at a time while its list is decoded item by item; what has
    been decoded is dropped, so a large list of rows is never held whole. Line breaks are counted as
    the text goes, so every item and error is named by the line an editor shows."""

    def __init__(self, f: Any, path: Path):
        self.f, self.path = f, path
        self.text, self.pos, self.eof = "", 0, False
        # line breaks in text[:_counted] and in the text already dropped
        self._counted, self._lines = 0, 0

    def more(self) -> bool:
        """Read another block (as long as the text held, so a long item is read in a few reads);
        False at the end."""
        if self.eof:
            return False
        block = self.f.read(max(JSON_BLOCK, len(self.text) - self.pos))
        if not block:
            self.eof = True
            return False
        if self.pos > JSON_BLOCK:  # drop what was decoded
            self.line()
            self.text, self.pos, self._counted = self.text[self.pos:], 0, 0
        self.text += block
        return True

    def peek(self) -> str:
        """The next character that is not JSON whitespace ("" at the end)."""
        while True:
            self.pos = _WS.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos:self.pos + 1]

    def line(self) -> int:
        """The editor line of the current position."""
        self._lines += self.text.count("\n", self._counted, self.pos)
        self._counted = self.pos
        return self._lines + 1

    def error(self, message: str) -> DataError:
        column = self.pos - self.text.rfind("\n", 0, self.pos)
        return DataError(str(self.path), at_line(self.line()), None,
                         f"expected valid JSON, found an error: "
                         f"{message} at column {column}")

    def grow(self, where: RowNo) -> bool:
        """more(), for an item that is no row once it passes MAX_LINE_CHARS (a row is never that
        long)."""
        if len(self.text) - self.pos > MAX_LINE_CHARS:
            raise DataError(str(self.path), where, None,
                            f"expected a row of at most {MAX_LINE_CHARS:,} characters "
                            "(chattune.data.load.MAX_LINE_CHARS), found a longer item")
        return self.more()

    def decode(self, where: RowNo) -> tuple[Any, str]:
        """The value starting here and its text; read further while the text held ends inside it."""
        decode = json.JSONDecoder().raw_decode
        while True:
            try:
                item, end = decode(self.text, self.pos)
                # a number at the end of a block may go on
                if end < len(self.text) or not self.grow(where):
                    raw, self.pos = self.text[self.pos:end], end
                    return item, raw
            except json.JSONDecodeError as e:
                if not self.grow(where):
                    self.pos = e.pos
                    raise self.error(e.msg) from None
            except (RecursionError, ValueError) as e:
                raise _unreadable_json(self.path, where, e) from None


def _json_list(source: _JsonText) -> Iterator[Row]:
    """The items of the top-level list whose "[" is at the source's position, each with the line it
    starts on."""
    source.pos += 1
    if source.peek() == "]":  # an empty list
        source.pos += 1
    else:
        for index in itertools.count():
            source.peek()
            line = source.line()
            where = RowNo(line, f"line {line} (item [{index}])")
            item, raw = source.decode(where)
            _check_text(source.path, where, raw, item)
            if not isinstance(item, dict):
                raise DataError(str(source.path), where, None,
                                f"expected an object, found {type(item).__name__}")
            yield where, item
            after = source.peek()
            if after == "]":
                source.pos += 1
                break
            if after != ",":
                raise source.error("Expecting ',' delimiter")
            source.pos += 1
            if source.peek() == "]":  # a trailing comma is not JSON
                raise source.error("Expecting value")
    if source.peek():
        raise source.error("Extra data")


def _json_columns(path: Path, data: Any) -> Iterator[Row]:
    """Rows of an object of equal-length column lists ({"prompt": [...], "completion": [...]})."""
    if not (isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values())):
        raise DataError(str(path), None, None,
                        "expected a list of rows or an object of column lists, found "
                        f"{type(data).__name__}")
    lengths = {len(v) for v in data.values()}
    if len(lengths) != 1:
        raise DataError(str(path), None, None,
                        f"expected columns of equal length, found lengths {sorted(lengths)}")
    keys = list(data)
    for i, values in enumerate(zip(*data.values()), start=1):
        yield RowNo(i), dict(zip(keys, values))


def _read_json(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        source = _JsonText(f, path)
        if source.peek() == "[":
            yield from _json_list(source)
            return
        while source.more():  # an object of column lists is read whole
            pass
        try:
            data = json.loads(source.text)
        except json.JSONDecodeError as e:
            raise DataError(str(path), at_line(e.lineno), None,
                            f"expected valid JSON, found an error: {e.msg} at "
                            f"column {e.colno}") from None
        except (RecursionError, ValueError) as e:
            raise _unreadable_json(path, None, e) from None
    yield from _json_columns(path, data)


def _read_csv(path: Path) -> Iterator[Row]:
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                return
            # a quoted field may hold line breaks: a row starts after the last one
            start = reader.line_num + 1
            for values in reader:
                where, start = at_line(start), reader.line_num + 1
                if not values:  # a blank line
                    continue
                if len(values) != len(header):
                    raise DataError(str(path), where, None,
                                    f"expected {len(header)} fields like the header, found "
                                    f"{len(values)} (a field holding a comma or a line break needs "
                                    "double quotes)")
                yield where, dict(zip(header, values))
        except csv.Error as e:
            raise DataError(str(path), at_line(reader.line_num), None,
                            f"expected CSV, found an error: {e}") from None


def _read_arrow(table_rows: Iterator[dict[str, Any]]) -> Iterator[Row]:
    for i, row in enumerate(table_rows, start=1):
        yield RowNo(i), dict(row)


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
    raise DataError(str(path), None, None,
                    f"unknown file type {kind!r}; expected .jsonl, .json, .csv, "
                    ".parquet (optionally .gz) or a saved datasets directory")


def _read_hub(dataset_id: str, split: str | None = None,
              config_name: str | None = None) -> Iterator[Row]:
    """`owner/name` or `owner/name:split` (default split 'train') through datasets.load_dataset."""
    import datasets

    name, _, id_split = dataset_id.partition(":")
    try:
        ds = datasets.load_dataset(name, config_name, split=split or id_split or "train")
    except Exception as e:  # the hub, the network or the name: all are the user's to fix
        raise DataError(dataset_id, None, None,
                        f"not a local file, and loading it from the hub failed: {e}") from None
    return _read_arrow(iter(ds))


def _not_utf8(path: Path) -> DataError:
    """Where a file stops being UTF-8 (the decoder reads in chunks and cannot say), read again as
    bytes."""
    if not path.is_file():
        return DataError(str(path), None, None, "expected UTF-8 text")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return DataError(str(path), None, None,
                         "expected UTF-8 text, found UTF-16 (it starts with a UTF-16 "
                         "byte-order mark); save the file as UTF-8")
    try:
        raw.decode("utf-8")
        return DataError(str(path), None, None, "expected UTF-8 text")
    except UnicodeDecodeError as e:
        return DataError(str(path), at_line(raw.count(b"\n", 0, e.start) + 1), None,
                         f"expected UTF-8 text, found "
                         f"byte {raw[e.start]:#x} (a file saved in another encoding; save it as "
                         "UTF-8)")


GLOB_CHARS = "*?["


def expand_paths(source: str) -> list[str]:
    """A glob's matching files in sorted order; anything else as given. A glob matching nothing is
    an error."""
    if not any(c in source for c in GLOB_CHARS):
        return [source]
    path = Path(source).expanduser()
    anchor = Path(path.anchor) if path.is_absolute() else Path(".")
    pattern = str(path.relative_to(anchor)) if path.is_absolute() else source
    matches = sorted(str(p) for p in anchor.glob(pattern) if p.is_file())
    if not matches:
        raise DataError(source, None, None, "no file matches this pattern")
    return matches


def iter_rows(source: str, limit: int | None = None, *, split: str | None = None,
              config_name: str | None = None) -> Iterator[Row]:
    """The rows of `source` (the first `limit` if given) one at a time, each with its RowNo (the
    editor line for text files): a jsonl, csv or JSON list file is never held whole in memory (a
    JSON object of column lists is). `split` and `config_name` apply to hub datasets."""
    path = Path(source).expanduser()
    if path.exists():
        reader = _read_rows(path)
    elif "/" in source and not source.startswith((".", "/")) and not Path(source).suffix:
        reader = _read_hub(source, split, config_name)
    else:
        raise DataError(source, None, None, "file not found")
    count = 0
    try:
        for row in reader:
            yield row
            count += 1
            if limit is not None and count >= limit:
                return
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(source, None, None,
                        f"could not read the file after {count} rows ({e})") from None
    if not count:
        raise DataError(source, None, None, "no rows found (the file is empty)")


def load_rows(source: str, limit: int | None = None, *, split: str | None = None,
              config_name: str | None = None) -> list[Row]:
    """All rows of `source` (the first `limit` if given), each with its RowNo; see iter_rows."""
    return list(iter_rows(source, limit, split=split, config_name=config_name))
