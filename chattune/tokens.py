"""Token ids and labels stored as int32: 4 bytes a token, where a list of Python ints takes about 44
(an 8-byte pointer and a 28-byte int object for an id above 256, twice). A prepared dataset's
examples are windows of a few shared numpy buffers, so millions of tokens stay small in memory and
move between processes and out of the cache as buffers, not as millions of objects."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


def _from_bytes(data: bytes) -> Tokens:
    return Tokens(np.frombuffer(data, dtype=np.int32))


class Tokens(Sequence[int]):
    """A read-only sequence of ints that reads like a list (len, index, slice, iterate, count,
    compare equal to a list or tuple of the same ints), held as the window [start, stop) of a 1-D
    int32 numpy buffer. A slice is a plain list (what callers build on), an item a Python int."""

    __slots__ = ("_buf", "_start", "_stop")

    def __init__(self, values: Sequence[int] | np.ndarray, start: int = 0,
                 stop: int | None = None):
        if isinstance(values, Tokens):
            values, start, stop = values._buf, values._start + start, \
                values._start + (len(values) if stop is None else stop)
        buf = values if isinstance(values, np.ndarray) and values.dtype == np.int32 else \
            np.asarray(values, dtype=np.int32)
        if buf.ndim != 1:
            raise ValueError(f"token ids must be one-dimensional, found shape {buf.shape}")
        self._buf, self._start = buf, start
        self._stop = len(buf) if stop is None else stop

    @property
    def array(self) -> np.ndarray:
        """The tokens as a read-only int32 numpy view (no copy; the buffer is shared with other
        windows)."""
        view = self._buf[self._start:self._stop]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.array[index].tolist()
        return int(self.array[index])

    def __iter__(self) -> Iterator[int]:
        return iter(self.array.tolist())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and bool((self.array == value).any())

    def count(self, value: Any) -> int:
        return int(np.count_nonzero(self.array == value)) if isinstance(value, int) else 0

    def tolist(self) -> list[int]:
        return self.array.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.array if dtype is None else self.array.astype(dtype, copy=False)
        return out.copy() if copy else out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tokens):
            return bool(np.array_equal(self.array, other.array))
        if isinstance(other, list | tuple):
            return self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, which has no hash

    def __add__(self, other: Sequence[int]) -> list[int]:
        return self.tolist() + list(other)

    def __radd__(self, other: Sequence[int]) -> list[int]:
        return list(other) + self.tolist()

    def __repr__(self) -> str:
        return f"Tokens({self.tolist()!r})"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # the window's bytes only: pickling the slots would send the whole shared buffer
        return _from_bytes, (self.array.tobytes(),)


def as_tokens(values: Sequence[int]) -> Tokens:
    """`values` as Tokens (itself when it already is)."""
    return values if isinstance(values, Tokens) else Tokens(values)


def concatenated(parts: Sequence[Sequence[int]]) -> np.ndarray:
    """Sequences of ints end to end in one int32 buffer."""
    if not parts:
        return np.zeros(0, dtype=np.int32)
    return np.concatenate([np.asarray(p, dtype=np.int32) for p in parts])


def windows(values: np.ndarray, offsets: Sequence[int]) -> list[Tokens]:
    """Tokens for each [offsets[i], offsets[i + 1]) window of one shared buffer."""
    bounds = np.asarray(offsets).tolist()
    return [Tokens(values, a, b) for a, b in zip(bounds[:-1], bounds[1:])]
