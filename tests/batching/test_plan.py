"""An epoch's batches: every example once, similar lengths together, a random order."""

import random

from chattune.batching.collate import Example, plan_batches, split_by_length


def _examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    lengths = [rng.randint(50, 500) for _ in range(n)]
    return [Example([1] * k, [1] * k) for k in lengths]


def _padding_share(examples: list[Example], plan: list[list[list[int]]]) -> float:
    real = padded = 0
    for batch in plan:
        lengths = [len(examples[i].input_ids) for row in batch for i in row]
        real, padded = real + sum(lengths), padded + max(lengths) * len(lengths)
    return 1 - real / padded


def test_padded_batches_hold_similar_lengths_and_every_example_once():
    examples = _examples(2000)
    plan = plan_batches(examples, 8, packing=False, max_length=512, seed=0)
    assert sorted(i for batch in plan for row in batch for i in row) == list(range(2000))
    assert all(len(batch) == 8 for batch in plan)
    # lengths spread evenly over 50-500: windows of 16 batches leave about 4.4% padding (no grouping
    # about 35%)
    assert _padding_share(examples, plan) < 0.06


def test_the_epoch_order_and_the_batches_change_with_the_seed():
    examples = _examples(2000)
    plans = [plan_batches(examples, 8, packing=False, max_length=512, seed=s) for s in (0, 1)]
    assert plans[0] == plan_batches(examples, 8, packing=False, max_length=512, seed=0)
    batches = [{frozenset(i for row in batch for i in row) for batch in plan} for plan in plans]
    # a window holds 128 of the 2,000 rows, so which rows share a batch varies from epoch to epoch
    assert len(batches[0] & batches[1]) < len(batches[0]) / 2
    assert [b[0] for b in plans[0][:10]] != [b[0] for b in plans[1][:10]]


def _tokens(examples: list[Example], batch: list[list[int]], padded: bool) -> int:
    rows = [sum(len(examples[i].input_ids) for i in row) for row in batch]
    return len(rows) * max(rows) if padded else sum(rows)


def test_the_largest_batch_comes_first_so_a_run_short_of_memory_fails_at_its_first_step():
    examples = _examples(2000)
    for kwargs, padded in [({}, True), ({"max_tokens": 2000}, True),
                           ({"max_tokens": 2000, "padding_free": True}, False),
                           ({"packing": True}, True)]:
        plan = plan_batches(examples, 8, **{"packing": False, "max_length": 512, "seed": 0,
                                             **kwargs})
        sizes = [_tokens(examples, batch, padded) for batch in plan]
        assert sizes[0] == max(sizes), kwargs
        assert sorted(i for batch in plan for row in batch for i in row) == list(range(2000))
    # one swap, not a sort: the rest of the epoch keeps its random order
    plan = plan_batches(examples, 8, packing=False, max_length=512, seed=0)
    sizes = [_tokens(examples, batch, True) for batch in plan]
    assert sizes[1:] != sorted(sizes[1:]) and sizes[1:] != sorted(sizes[1:], reverse=True)


def test_a_micro_batch_of_unlike_lengths_runs_in_parts_of_like_lengths():
    lengths = [194, 201, 205, 226, 238, 250, 282, 395]
    examples = [Example([1] * k, [1] * k) for k in lengths]
    rows = [[i] for i in reversed(range(8))]
    parts = split_by_length(rows, examples)
    # 8 x 395 = 3,160 padded positions; in two parts 6 x 250 + 2 x 395 = 2,290 (+ 256 each), less
    # than 7 x 282 + 395 = 2,369
    assert parts == [[[i] for i in range(6)], [[6], [7]]]
    assert split_by_length(rows, examples, cost=10**6) == [sorted(rows)]
    # like lengths stay one micro-batch; packed rows count their documents together
    alike = [Example([1] * k, [1] * k) for k in (223, 224, 226, 230, 232)]
    assert split_by_length([[i] for i in range(5)], alike) == [[[i] for i in range(5)]]
    assert split_by_length([[0, 1], [2]], [Example([1] * k, [1] * k) for k in (200, 190, 400)]) \
        == [[[0, 1], [2]]]
    for parts in (split_by_length(p, _examples(64)) for p in ([[i] for i in range(64)],)):
        assert sorted(r for part in parts for row in part for r in row) == list(range(64))
