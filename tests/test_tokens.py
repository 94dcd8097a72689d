"""Tokens: int32 token ids that read like a list, windows of a shared buffer."""

import operator
import pickle

import numpy as np
import pytest

from chattune.batching.collate import Example, wrap
from chattune.labels import IGNORE_INDEX, num_trained
from chattune.tokens import Tokens, concatenated, windows


def test_tokens_read_like_the_list_they_hold():
    values = [5, -100, 7, 49151, -100]
    t = Tokens(values)
    assert len(t) == 5 and list(t) == values and t.tolist() == values
    assert t[0] == 5 and t[-1] == -100 and type(t[3]) is int
    assert t[1:3] == [-100, 7] and type(t[1:3]) is list and t[::-1] == values[::-1]
    assert t.count(-100) == 2 and t.count(3) == 0 and t.count("x") == 0
    assert 7 in t and 8 not in t and "7" not in t
    assert t.index(7) == 2
    with pytest.raises(IndexError):
        t[5]


def test_tokens_compare_equal_to_lists_tuples_and_tokens_of_the_same_ints():
    t = Tokens([1, 2, 3])
    expected = [1, 2, 3]
    assert t == expected and operator.eq(expected, t)  # the list's side falls back to Tokens'
    assert t == (1, 2, 3) and t == Tokens([1, 2, 3])
    assert t != [1, 2] and t != [1, 2, 4] and t != Tokens([1, 2]) and t != "123"
    assert (t, Tokens([4])) == ([1, 2, 3], [4])
    with pytest.raises(TypeError):
        hash(t)


def test_tokens_concatenate_to_lists_and_convert_to_numpy_without_copying():
    t = Tokens([1, 2])
    assert t + [3] == [1, 2, 3] and [0] + t == [0, 1, 2]
    grown = [0]
    grown += t
    assert grown == [0, 1, 2]
    assert np.asarray(t).dtype == np.int32 and np.shares_memory(np.asarray(t), t.array)
    assert np.asarray(t, dtype=np.int64).tolist() == [1, 2]
    assert repr(t) == "Tokens([1, 2])"


def test_windows_share_one_buffer_and_pickle_only_their_own_tokens():
    values = np.arange(100_000, dtype=np.int32)
    parts = windows(values, [0, 3, 3, 100_000])
    assert [len(p) for p in parts] == [3, 0, 99_997]
    assert parts[0] == [0, 1, 2] and parts[1] == [] and parts[2][-1] == 99_999
    assert all(np.shares_memory(p.array, values) for p in parts if len(p))
    with pytest.raises(ValueError, match="read-only"):  # a window cannot write its neighbours' ids
        parts[0].array[0] = 9
    assert values[0] == 0 and parts[0] == [0, 1, 2]
    data = pickle.dumps(parts[0])
    assert len(data) < 200  # three int32s, not the 400 kB buffer
    assert pickle.loads(data) == [0, 1, 2]
    assert Tokens(parts[2], 1, 3) == [4, 5]  # a window of a window
    assert concatenated([parts[0], [7, 8], Tokens([])]).tolist() == [0, 1, 2, 7, 8]
    assert concatenated([]).dtype == np.int32


def test_examples_hold_int32_tokens_and_count_as_lists_do():
    ids, labels = [10, 11, 12, 13], [IGNORE_INDEX, IGNORE_INDEX, 12, 13]
    ex = Example(ids, labels)
    assert isinstance(ex.input_ids, Tokens) and ex.input_ids.array.dtype == np.int32
    assert ex == Example(Tokens(ids), Tokens(labels)) and ex.input_ids == ids
    assert ex.num_trained == num_trained(labels) == num_trained(Tokens(labels)) == 2
    assert num_trained(Tokens([5])) == num_trained([5]) == 0
    assert num_trained(Tokens([])) == num_trained([]) == 0


def test_wrap_cuts_the_examples_end_to_end_as_lists_would():
    examples = [Example([1, 2, 3], [-100, 2, 3]), Example([4, 5], [4, -100]),
                Example([6, 7, 8, 9], [-100, -100, 8, 9])]
    rows = wrap(examples, 4)
    flat_ids, flat_labels = [1, 2, 3, 4, 5, 6, 7, 8, 9], [-100, 2, 3, 4, -100, -100, -100, 8, 9]
    assert [r.input_ids for r in rows] == [flat_ids[i:i + 4] for i in range(0, 9, 4)]
    assert [r.labels for r in rows] == [flat_labels[i:i + 4] for i in range(0, 9, 4)]
    assert wrap([], 4) == []
