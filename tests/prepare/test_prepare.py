"""Preparing sources: truncation, bad rows, mixing, globs, hold-out, parallel workers and the
cache."""

from multiprocessing.pool import ThreadPool

import pytest
from conftest import write_jsonl

from chattune.config import DataSource, build_config
from chattune.data.load import load_rows
from chattune.errors import ConfigError, DataError
from chattune.labels import IGNORE_INDEX
from chattune.prepare import examples as prepare
from chattune.prepare.examples import (
    PrepareOptions,
    prepare_source,
    prepare_sources,
    split_examples,
)

QA = {"question": "user", "answer": "assistant"}


def qa_rows(n, start=0, answer_words=3):
    return [{"question": f"What is {i} plus {i}?",
             "answer": " ".join(["word"] * answer_words) + f" {2 * i}"}
            for i in range(start, start + n)]


def test_truncation_modes(tmp_path, tokenizer):
    src = DataSource(path=str(write_jsonl(tmp_path / "d.jsonl",
                                          qa_rows(3) + qa_rows(1, 3, answer_words=200))),
                     columns=QA)
    full, _ = prepare_source(src, tokenizer, PrepareOptions(max_length=4096))
    long_len = len(full[3].input_ids)
    limit = long_len - 50

    with_error = prepare_source(src, tokenizer,
                                PrepareOptions(max_length=limit, truncation="error"))[1]
    assert (with_error.bad == 1
            and f"line 4: expected at most max_length={limit} tokens, found {long_len}" in
            with_error.problems[0])
    dropped, stats = prepare_source(src, tokenizer,
                                    PrepareOptions(max_length=limit, truncation="drop"))
    assert len(dropped) == 3 and stats.dropped_too_long == 1 and stats.bad == 0
    start, stats = prepare_source(src, tokenizer,
                                  PrepareOptions(max_length=limit, truncation="keep_start"))
    assert start[3].input_ids == full[3].input_ids[:limit] and stats.truncated == 1
    end, _ = prepare_source(src, tokenizer, PrepareOptions(max_length=limit, truncation="keep_end"))
    assert (end[3].input_ids == full[3].input_ids[-limit:]
            and end[3].labels == full[3].labels[-limit:])


def test_bad_rows_error_lists_all_or_skip_counts(tmp_path, tokenizer):
    rows = qa_rows(3) + [{"question": "no answer"}, {"question": "q", "answer": 7}] + qa_rows(2, 10)
    src = DataSource(path=str(write_jsonl(tmp_path / "d.jsonl", rows)), columns=QA)
    with pytest.raises(DataError) as e:
        prepare_sources([src], tokenizer, PrepareOptions())
    message = str(e.value)
    assert ("2 bad row(s)" in message
            and "line 4, field 'answer': expected column 'answer'" in message)
    assert "line 5, field 'answer': expected text" in message
    examples, stats = prepare_sources([src], tokenizer, PrepareOptions(), on_bad_row="skip")
    assert len(examples) == 5 and stats.bad == 2 and sum(stats.bad_by_reason.values()) == 2


def test_mixed_sources_globs_and_sample_counts(tmp_path, tokenizer):
    write_jsonl(tmp_path / "part-1.jsonl", qa_rows(4))
    write_jsonl(tmp_path / "part-2.jsonl", qa_rows(4, 4))
    chats = write_jsonl(tmp_path / "chats.jsonl",
                        [{"messages": [{"role": "user", "content": f"hi {i}"},
                                       {"role": "assistant", "content": f"yo {i}"}]}
                         for i in range(6)])
    cfg = build_config({"data": {"train": [{"path": str(tmp_path / "part-*.jsonl"),
                                            "num_samples": 6},
                                           {"path": str(chats), "num_samples": 2}], "columns": QA}})
    specs = cfg.data.sources("train")
    # data-level defaults fill every source ...
    assert specs[0].columns == QA and specs[1].columns == QA
    specs[1] = specs[1].model_copy(update={"columns": None})  # ... unless the source sets its own
    examples, stats = prepare_sources(specs, tokenizer, PrepareOptions())
    assert stats.rows == 8 and len(examples) == 8 and stats.formats == {"columns": 6, "messages": 2}
    with pytest.raises(DataError, match="no file matches"):
        prepare_sources([DataSource(path=str(tmp_path / "nope-*.jsonl"))], tokenizer,
                        PrepareOptions())


def test_test_size_hold_out_and_config_rules(tokenizer):
    from chattune.batching.collate import Example

    examples = [Example([i, i + 1], [i, i + 1]) for i in range(20)]
    train, held = split_examples(examples, 0.25, seed=3)
    assert len(held) == 5 and len(train) == 15 and {ex.input_ids[0]
                                                    for ex in train + held} == set(range(20))
    assert (split_examples(examples, 0.25, seed=3)[1] == held
            and split_examples(examples, 4, seed=3)[1] != held)
    with pytest.raises(DataError, match="expected a hold-out between 1 and 19"):
        split_examples(examples, 20, seed=0)
    with pytest.raises(ConfigError, match="set data.eval or data.test_size, not both"):
        build_config({"data": {"train": "a.jsonl", "eval": "b.jsonl", "test_size": 0.1}})
    with pytest.raises(ConfigError, match="prompt_template builds the user message"):
        build_config({"data": {"train": {"path": "a.jsonl", "prompt_template": "Q: {q}"}}})
    assert build_config({"data": {"train": "a.jsonl", "test_size": 0.1},
                         "eval_steps": 5}).data.has_eval


def test_parallel_workers_match_one_process(tmp_path, tokenizer):
    src = DataSource(path=str(write_jsonl(tmp_path / "d.jsonl", qa_rows(40) + [{"question": "x"}])),
                     columns=QA)
    one, one_stats = prepare_source(src, tokenizer, PrepareOptions(), num_proc=1, cache=False)
    two, two_stats = prepare_source(src, tokenizer, PrepareOptions(), num_proc=2, cache=False)
    assert one == two and one_stats.problems == two_stats.problems and len(one) == 40
    assert all(lab == IGNORE_INDEX for lab in one[0].labels[:10])  # the prompt is masked


def test_cache_hits_and_misses(tmp_path, tokenizer, prepared_cache):
    path = write_jsonl(tmp_path / "d.jsonl", qa_rows(5))
    src = DataSource(path=str(path), columns=QA)
    opts = PrepareOptions(max_length=256)
    first, stats = prepare_source(src, tokenizer, opts)
    assert stats.reused == [] and len(list(prepared_cache.iterdir())) == 1
    again, stats = prepare_source(src, tokenizer, opts)
    assert stats.reused == [str(path)] and again == first
    # read back as int32 windows of one buffer per column, not lists of Python ints
    bases = {id(ex.input_ids.array.base) for ex in again}
    assert len(bases) == 1 and again[0].labels.array.dtype == "int32"

    def misses(spec=src, options=opts, tok=tokenizer) -> bool:
        return prepare_source(spec, tok, options)[1].reused == []

    assert misses(options=PrepareOptions(max_length=128))
    assert misses(options=PrepareOptions(max_length=256, train_on="all"))
    assert misses(spec=src.model_copy(update={"system_prompt": "Be brief."}))
    other_template = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    other_template.chat_template = other_template.chat_template.replace(
        "You are a helpful", "You are a kind")
    assert misses(tok=other_template)
    other_tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    other_tokenizer.add_tokens(["<new_token>"])
    assert misses(tok=other_tokenizer)
    write_jsonl(path, qa_rows(5, 1))  # the data changed
    assert misses()
    assert not misses()  # and the new entry is reused


def _garble_middle(entry):
    path = entry / "prepared.arrow"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 32] = bytes((b + 97) % 256 for b in data[middle:middle + 32])
    path.write_bytes(bytes(data))


def _rewrite_table(entry, change, *, fix_checksum=False):
    """Rewrite the entry's Arrow file with `change(table)`: a well-formed file holding other
    data."""
    import pyarrow as pa

    from chattune.prepare.cache import _sha256

    path = entry / "prepared.arrow"
    with pa.memory_map(str(path)) as source:
        table = change(pa.ipc.open_file(source).read_all())
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    if fix_checksum:  # as if the file was wrong when it was written: only validation can catch it
        (entry / "prepared.arrow.sha256").write_text(_sha256(path))


def _other_valid_ids(table):
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = table.column("input_ids").combine_chunks()
    shifted = pa.ListArray.from_arrays(ids.offsets, pc.add(ids.values, pa.scalar(1, pa.int32())))
    return table.set_column(table.schema.get_field_index("input_ids"), "input_ids", shifted)


def _offsets_out_of_bounds(table):
    import numpy as np
    import pyarrow as pa

    ids = table.column("input_ids").combine_chunks()
    offsets = np.asarray(ids.offsets).copy()
    # the first list ends far past the values: read unvalidated, it walks off the memory map
    offsets[1] = 10**6
    broken = pa.Array.from_buffers(ids.type, len(ids), [None, pa.py_buffer(offsets)],
                                   children=[ids.values])
    return table.set_column(table.schema.get_field_index("input_ids"), "input_ids", broken)


@pytest.mark.parametrize("damage", [
    _garble_middle,
    lambda entry: _rewrite_table(entry, _other_valid_ids),
    lambda entry: (entry / "prepared.arrow.sha256").unlink(),
    lambda entry: _rewrite_table(entry, _offsets_out_of_bounds, fix_checksum=True),
], ids=["garbled", "other-valid-ids", "no-checksum", "invalid-but-checksummed"])
def test_damaged_cache_entry_is_reported_removed_and_prepared_again(
        tmp_path, tokenizer, prepared_cache, damage):
    import io

    from rich.console import Console

    from chattune.prepare.rows import print_stats

    path = write_jsonl(tmp_path / "d.jsonl", qa_rows(6))
    src, opts = DataSource(path=str(path), columns=QA), PrepareOptions(max_length=256)
    first, _ = prepare_source(src, tokenizer, opts)
    (entry,) = prepared_cache.iterdir()
    damage(entry)

    again, stats = prepare_source(src, tokenizer, opts)
    assert again == first and stats.reused == []  # prepared again, not read from the damaged file
    assert len(stats.cache_damaged) == 1 and entry.name in stats.cache_damaged[0]
    assert stats.cache_damaged[0].startswith(f"{path}: the prepared-data cache entry")
    out = io.StringIO()
    print_stats(Console(file=out, soft_wrap=True), stats, "train data")
    assert f"warning: {stats.cache_damaged[0]}; prepared again" in out.getvalue()

    # the entry written again is sound and reused
    third, stats = prepare_source(src, tokenizer, opts)
    assert third == first and stats.reused == [str(path)] and stats.cache_damaged == []


def counted(rows, pulled):
    """`rows` as a generator that records how many have been read."""
    for row in rows:
        pulled.append(row)
        yield row


@pytest.mark.parametrize("num_proc", [1, 2])
def test_rows_are_read_as_they_are_prepared(tmp_path, tokenizer, monkeypatch, num_proc):
    """A large file is never held whole: preparation reads a few chunks ahead of what it has
    prepared, in one process and with workers, and the result is the same as preparing everything at
    once."""
    monkeypatch.setattr(prepare, "PARALLEL_FROM_ROWS", 4)
    monkeypatch.setattr(prepare, "CHUNK_ROWS", 3)
    source = str(write_jsonl(tmp_path / "d.jsonl", qa_rows(40)))
    spec, opts = DataSource(path=source, columns=QA), PrepareOptions()
    rows = load_rows(source)
    pulled, ahead = [], []
    real = prepare.prepare_rows if num_proc == 1 else prepare._work
    if num_proc == 1:
        monkeypatch.setattr(prepare, "prepare_rows",
                            lambda chunk, *a: ahead.append(len(pulled)) or real(chunk, *a))
        records = prepare.prepare_all_rows(counted(rows, pulled), source, spec, tokenizer, opts,
                                           num_proc)
        assert ahead[0] <= 4 + 3 and max(a - 3 * k for k, a in enumerate(ahead)) <= 4 + 3, ahead
    else:
        results = []
        prepare._init_worker(source, spec, tokenizer, opts)
        # a real pool in this process, so what was read can be seen
        with ThreadPool(num_proc) as pool:
            for part in prepare._in_order(pool, prepare._chunks(counted(rows, pulled), 3),
                                          2 * num_proc):
                ahead.append(len(pulled) - 3 * len(results))
                results.append(part)
        assert max(ahead) <= 3 * (2 * num_proc), ahead
        records = prepare.to_columns([rec for part in results for rec in part])
    assert records == prepare.to_columns(prepare.prepare_rows(rows, source, spec, tokenizer, opts))


def test_long_rows_are_tokenised_in_batches_of_bounded_size(tmp_path, tokenizer, monkeypatch):
    """However long the rows, one tokenizer batch holds about RENDER_CHARS characters; the examples
    are the ones one batch gives."""
    source = str(write_jsonl(tmp_path / "d.jsonl", qa_rows(6, answer_words=400)))
    spec, opts = DataSource(path=source, columns=QA), PrepareOptions(max_length=4096)
    rows = load_rows(source)
    whole = prepare.prepare_rows(rows, source, spec, tokenizer, opts)
    batches = []
    real = prepare.render_many
    monkeypatch.setattr(prepare, "render_many",
                        lambda tok, convs, **k: batches.append(len(convs)) or real(tok, convs,
                                                                                   **k))
    monkeypatch.setattr(prepare, "RENDER_CHARS", 5000)  # about two of these rows
    assert prepare.prepare_rows(rows, source, spec, tokenizer, opts) == whole
    assert len(batches) >= 3 and max(batches) <= 2, batches


def test_cache_entry_round_trips_every_column_kind_without_pandas(prepared_cache):
    import subprocess
    import sys

    columns = {"format": ["messages", "text", "messages"], "input_ids": [[1, 2], [], [3]],
               "labels": [[-100, 2], [], [3]], "truncated": [False, True, False],
               "reason": [None, "longer than max_length", None],
               "error": [None, "row 2: 'messages' is missing — ünïcode", None]}
    from chattune.prepare.cache import load_cached, save_cached

    save_cached("entry", columns)
    assert load_cached("entry") == columns
    # pyarrow's list conversion imports pandas (0.4 s of a cold preparation); the writer avoids it
    code = ("import sys, tempfile, pathlib\nfrom chattune.prepare import cache\n"
            "d = pathlib.Path(tempfile.mkdtemp()); cache.prepared_dir = lambda: d\n"
            f"cache.save_cached('k', {columns!r})\nassert cache.load_cached('k') == {columns!r}\n"
            "print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
