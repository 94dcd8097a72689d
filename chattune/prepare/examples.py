"""Data sources to verified training Examples: convert, render, check the mask, truncate; in
parallel, cached.

Every row is prepared by `prepare_rows` (one function for the library, `data check` and training). A
source's rows run through it in `num_proc` processes, and the result is cached as an Arrow file,
memory-mapped when read back, keyed by everything that decides it: the rows' content, the tokenizer,
the template, the row-shape settings, the masking and truncation options and chattune's version (a
local file's rows by its bytes, read without parsing them).
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import multiprocessing
import os
import random
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chattune.batching.collate import Example
from chattune.config import DataSource
from chattune.data.convert import bad_rows_error, detect_format, to_conversation
from chattune.data.load import Row, expand_paths, iter_rows
from chattune.data.schema import Conversation
from chattune.data.shapes import ShapeTally
from chattune.errors import DataError, TemplateError
from chattune.prepare.cache import (
    DamagedEntry,
    cache_key,
    file_content_lines,
    load_cached,
    save_cached,
)
from chattune.prepare.rows import (
    NO_TRAINED,
    TEMPLATE,
    TOO_LONG,
    PreparedRow,
    PrepareStats,
    from_columns,
    to_columns,
)
from chattune.templates.render import Rendered, check_rendered, render_many

PARALLEL_FROM_ROWS = 2000  # below this, starting worker processes costs more than it saves
# rows per task: a task's rows, texts and encodings are what preparation holds at once
CHUNK_ROWS = 256
# conversations tokenised in one batch hold encodings of about this many characters
RENDER_CHARS = 1 << 22

@dataclass(frozen=True)
class PrepareOptions:
    """How rendered rows become examples."""

    train_on: str = "all_assistant"
    max_length: int = 1024
    truncation: str = "keep_start"  # error | drop | keep_start | keep_end
    # passed to the chat template (enable_thinking, ...)
    template_kwargs: dict[str, Any] | None = None


def truncate(rendered_ids: list[int], labels: list[int],
             opts: PrepareOptions) -> tuple[Example | None, str]:
    """Apply max_length and the truncation rule: (example or None, "" | TOO_LONG | NO_TRAINED)."""
    if len(rendered_ids) > opts.max_length:
        if opts.truncation in ("error", "drop"):
            return None, TOO_LONG
        cut = (slice(-opts.max_length, None) if opts.truncation == "keep_end"
               else slice(opts.max_length))
        rendered_ids, labels = rendered_ids[cut], labels[cut]
    ex = Example(rendered_ids, labels)
    return (ex, "") if ex.num_trained else (None, NO_TRAINED)


def _mark_bad(row: PreparedRow, error: DataError) -> DataError:
    row.reason, row.error = error.reason, str(error)
    return error


def finish_row(row: PreparedRow, conv: Conversation, r: Rendered | TemplateError,
               opts: PrepareOptions, tokenizer: Any) -> DataError | None:
    """Verify a rendered conversation's mask and apply max_length, filling in `row`: an example, a
    drop, or a bad row, whose error (naming the conversation's file and row) is also returned."""
    try:
        if isinstance(r, TemplateError):
            raise r
        if conv.text is None:
            check_rendered(tokenizer, r, conv.messages, opts.train_on)
    except TemplateError as e:
        return _mark_bad(row, DataError(conv.source, conv.row, None, str(e), reason=TEMPLATE))
    if len(r.input_ids) > opts.max_length and opts.truncation == "error":
        return _mark_bad(row, DataError(conv.source, conv.row, None, f"expected at most max_length="
                                        f"{opts.max_length} tokens, found {len(r.input_ids)} "
                                        "(data.truncation: error; or use drop, keep_start or "
                                        "keep_end)", reason=TOO_LONG))
    ex, row.reason = truncate(r.input_ids, r.labels, opts)
    row.truncated = len(r.input_ids) > opts.max_length
    if ex is not None:
        row.input_ids, row.labels = ex.input_ids, ex.labels
    return None


def _size(conv: Conversation | None) -> int:
    """About how many characters a conversation renders to."""
    if conv is None:
        return 0
    if conv.text is not None:
        return len(conv.text)
    return sum(len(m.content) + 32 for m in conv.messages)


def _groups(convs: list[Conversation | None], chars: int) -> Iterator[list[int]]:
    """Indices of convs in runs of about `chars` characters: a batch's token encodings (ids, offsets
    and token strings, about a hundred bytes a token) stay bounded however long the rows are."""
    group, size = [], 0
    for i, conv in enumerate(convs):
        n = _size(conv)
        if group and size + n > chars:
            yield group
            group, size = [], 0
        group.append(i)
        size += n
    if group:
        yield group


def prepare_rows(rows: Sequence[tuple[int, dict[str, Any]]], source: str, spec: DataSource,
                 tokenizer: Any, opts: PrepareOptions) -> list[PreparedRow]:
    """Raw rows to prepared rows: ids and labels, or the reason and the error that names the row and
    field."""
    prepared, convs = [], []
    for row_no, row in rows:
        fmt = "columns" if spec.columns else (spec.format or detect_format(row) or "unknown")
        prepared.append(PreparedRow(fmt))
        try:
            convs.append(to_conversation(row, source=source, row_no=row_no, columns=spec.columns,
                                         fmt=spec.format, prompt_template=spec.prompt_template,
                                         system_prompt=spec.system_prompt))
        except DataError as e:
            _mark_bad(prepared[-1], e)
            convs.append(None)
    for group in _groups(convs, RENDER_CHARS):
        good = [i for i in group if convs[i] is not None]
        rendered = render_many(tokenizer, [convs[i] for i in good], train_on=opts.train_on,
                               template_kwargs=opts.template_kwargs)
        for i, r in zip(good, rendered):
            finish_row(prepared[i], convs[i], r, opts, tokenizer)
    return prepared


_WORKER: dict[str, Any] = {}  # what each worker process prepares with, set once by _init_worker


def _init_worker(source: str, spec: DataSource, tokenizer: Any, opts: PrepareOptions) -> None:
    _WORKER.update(source=source, spec=spec, tokenizer=tokenizer, opts=opts)


def _work(chunk: list[tuple[int, dict[str, Any]]]) -> list[PreparedRow]:
    return prepare_rows(chunk, **_WORKER)


def _workers(rows: int, num_proc: int | None) -> int:
    if num_proc is None:
        num_proc = (os.cpu_count() or 1) if rows >= PARALLEL_FROM_ROWS else 1
    return max(1, min(num_proc, rows))


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _in_order(pool: Any, chunks: Iterable[list[Row]],
              in_flight: int) -> Iterator[list[PreparedRow]]:
    """Each chunk's prepared rows, in order, with at most `in_flight` chunks handed out at once
    (Pool.imap would read the whole input ahead into its task queue)."""
    pending: deque[Any] = deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_work, (chunk,)))
        if len(pending) >= in_flight:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def prepare_all_rows(rows: Iterable[Row], source: str, spec: DataSource, tokenizer: Any,
                     opts: PrepareOptions, num_proc: int | None = None) -> dict[str, list]:
    """Every row prepared, in `num_proc` processes; the result as columns (RECORD_KEYS).

    Rows are read as they are prepared, a few chunks ahead, so a large file is never held whole. A
    plain process pool, not datasets.map: on gsm8k train it cost 1.1 s less (datasets starts a pool
    even for one process and sends the tokenizer with every shard). One process keeps the work here,
    where the Rust tokenizer batches on every core; workers tokenise on one thread each, so the
    cores are not oversubscribed."""
    rows = iter(rows)
    head = list(itertools.islice(rows, PARALLEL_FROM_ROWS))  # enough to tell whether workers pay
    workers = _workers(len(head), num_proc)
    chunks = _chunks(itertools.chain(head, rows), CHUNK_ROWS)
    del head
    if workers == 1:
        records = [rec for part in chunks
                   for rec in prepare_rows(part, source, spec, tokenizer, opts)]
    else:
        # fork shares the loaded tokenizer with the workers at no cost; elsewhere it is pickled once
        # per worker
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        previous = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        # what the workers inherit is never scanned by their collector, nor copied on its account
        gc.freeze()
        try:
            with ctx.Pool(workers, initializer=_init_worker,
                          initargs=(source, spec, tokenizer, opts)) as pool:
                records = [rec for part in _in_order(pool, chunks, 2 * workers) for rec in part]
        finally:
            gc.unfreeze()
            if previous is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = previous
    return to_columns(records)


def _stats_and_examples(cols: dict[str, list],
                        source: str = "") -> tuple[list[Example], PrepareStats]:
    """Examples and the stats that describe them, from prepared columns (fresh or read from the
    cache)."""
    stats = PrepareStats(source=source)
    examples = []
    for row in from_columns(cols):
        stats.count(row)
        if row.input_ids and not row.reason:
            examples.append(Example(row.input_ids, row.labels))
    return examples, stats


def _row_lines(rows: Iterable[Row]) -> Iterator[str]:
    """Each row as the cache key hashes it: its number (cached errors name it) and its JSON."""
    for n, row in rows:
        yield f"{getattr(n, 'where', n)}\t" + json.dumps(row, ensure_ascii=False, sort_keys=True,
                                                         default=str)


def prepare_source(spec: DataSource, tokenizer: Any, opts: PrepareOptions, *,
                   num_proc: int | None = None,
                   cache: bool = True) -> tuple[list[Example], PrepareStats]:
    """Every row of one source (a glob is several files) prepared, from the cache when nothing
    changed.

    Bad rows do not stop it: they are in the stats' problems, for `on_bad_row` to decide."""
    examples: list[Example] = []
    stats = PrepareStats(source=spec.path)
    for path in expand_paths(spec.path):
        # across a glob's files
        left = None if spec.num_samples is None else spec.num_samples - stats.rows
        if left == 0:
            break
        # the file is read once for the cache key and again to prepare it, never held whole
        rows = functools.partial(iter_rows, path, left, split=spec.split, config_name=spec.name)
        cached, damaged, key, content = None, None, None, []
        tally = ShapeTally(path, fmt=spec.format, columns=spec.columns,
                           prompt_template=spec.prompt_template)
        first = tally.tap(rows())  # whichever reading goes through every row tallies the shapes
        if cache:
            # a file's bytes: no reading of its rows for the key
            content = file_content_lines(path, left)
            key = cache_key(path, content or _row_lines(first), spec, opts, tokenizer)
            if not content:  # the key read (and tallied) every row
                first = rows()
            try:
                cached = load_cached(key)
            except DamagedEntry as e:
                damaged = f"{path}: {e}"
        if cached is not None:
            cols = cached
            if content:
                deque(first, maxlen=0)  # the tally reads every row
        else:
            cols = prepare_all_rows(first, path, spec, tokenizer, opts, num_proc)
            if key is not None:
                save_cached(key, cols)
        source_examples, source_stats = _stats_and_examples(cols, path)
        source_stats.shapes = tally.lines()
        source_stats.problems[:0] = [str(e) for e in tally.unknown.errors()]
        if cached is not None:
            source_stats.reused.append(path)
        if damaged:
            source_stats.cache_damaged.append(damaged)
        examples += source_examples
        stats.add(source_stats)
    stats.source = spec.path  # a glob is named as the user wrote it
    return examples, stats


def prepare_sources(sources: Sequence[DataSource], tokenizer: Any, opts: PrepareOptions, *,
                    on_bad_row: str = "error", num_proc: int | None = None,
                    cache: bool = True) -> tuple[list[Example], PrepareStats]:
    """Several sources mixed into one list of Examples. With on_bad_row=error any bad row stops
    here, before training, with every problem listed (the first 20 and a count); with skip they are
    left out and counted."""
    examples: list[Example] = []
    stats = PrepareStats()
    for spec in sources:
        source_examples, source_stats = prepare_source(spec, tokenizer, opts, num_proc=num_proc,
                                                       cache=cache)
        if source_stats.bad and on_bad_row == "error":
            raise bad_rows_error(spec.path, source_stats.problems, source_stats.bad)
        examples += source_examples
        stats.add(source_stats)
    return examples, stats


def split_examples(examples: list[Example], test_size: float | int,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded random hold-out: (train, eval). `test_size` is a share (below 1) or a count."""
    n_eval = round(len(examples) * test_size) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_eval < len(examples):
        raise DataError("data.test_size", None, None,
                        f"expected a hold-out between 1 and {len(examples) - 1} "
                        f"examples, found {n_eval} (test_size {test_size} of {len(examples)} "
                        "examples)")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])


def examples_from_file(source: str, tokenizer: Any, *, columns: dict[str, str] | None = None,
                       system_prompt: str | None = None, train_on: str = "all_assistant",
                       max_length: int = 1024, limit: int | None = None,
                       template_kwargs: dict[str, Any] | None = None) -> tuple[
                               list[Example], PrepareStats]:
    """One file's rows -> verified Examples (every bad row reported at once)."""
    spec = DataSource(path=source, columns=columns, system_prompt=system_prompt, num_samples=limit)
    opts = PrepareOptions(train_on=train_on, max_length=max_length, template_kwargs=template_kwargs)
    return prepare_sources([spec], tokenizer, opts)


def prepare_examples(conversations: Sequence[Conversation], tokenizer: Any, *,
                     template: str | None = None, train_on: str = "all_assistant",
                     max_length: int = 1024,
                     truncation: str = "keep_start") -> tuple[list[Example], PrepareStats]:
    """Conversations already in memory -> verified Examples (rows longer than max_length follow
    `truncation`).

    A row whose trained tokens all fall past the cut is dropped and counted, never kept
    all-masked."""
    opts = PrepareOptions(train_on=train_on, max_length=max_length, truncation=truncation)
    rendered = render_many(tokenizer, conversations, template=template, train_on=train_on)
    rows = []
    for conv, r in zip(conversations, rendered):
        rows.append(PreparedRow())
        error = finish_row(rows[-1], conv, r, opts, tokenizer)
        # the first bad conversation raises; counting is the same as for prepared sources
        if error is not None:
            raise error
    return _stats_and_examples(to_columns(rows))
