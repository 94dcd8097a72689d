"""An epoch's batches: every example once, similar lengths together, a random order."""

import random

from chattune.batching.collate import Example, plan_batches


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
