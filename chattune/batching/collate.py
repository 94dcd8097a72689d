"""Examples to batches: padded (grouped by length) or packed (best-fit decreasing), one tensor layout for both.

Every batch carries position ids that restart at 0 for each document and no attention mask: transformers
then builds a block-diagonal causal mask from the position ids, so packed documents cannot see each other and
padding (a document of its own at the end of a row) is never seen by real tokens.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from chattune.templates.render import IGNORE_INDEX


@dataclass(frozen=True)
class Example:
    """One training example: token ids and labels (IGNORE_INDEX where not trained), same length."""

    input_ids: list[int]
    labels: list[int]

    def __post_init__(self) -> None:
        assert len(self.input_ids) == len(self.labels), "input_ids and labels must have the same length"

    @cached_property
    def num_trained(self) -> int:
        # the first token has nothing before it to predict it from
        return len(self.labels) - 1 - self.labels[1:].count(IGNORE_INDEX) if self.labels else 0


@dataclass
class Batch:
    """Tensors for one micro-batch; `num_trained` counts the positions the loss is taken on."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    num_tokens: int  # real (non-pad) tokens
    num_trained: int

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.labels.to(device), self.position_ids.to(device),
                     self.num_tokens, self.num_trained)


def collate(rows: Sequence[Sequence[Example]], pad_id: int) -> Batch:
    """Lay out rows (each a list of documents placed end to end) as one batch padded to the longest row."""
    width = max(sum(len(d.input_ids) for d in row) for row in rows)
    ids, labels, pos = [], [], []
    num_tokens = num_trained = 0
    for row in rows:
        r_ids, r_lab, r_pos = [], [], []
        for doc in row:
            r_ids += doc.input_ids
            # the first token of a document has no context in it, so it is never a target
            r_lab += [IGNORE_INDEX] + doc.labels[1:]
            r_pos += range(len(doc.input_ids))
            num_trained += doc.num_trained
        num_tokens += len(r_ids)
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_lab + [IGNORE_INDEX] * pad)
        pos.append(r_pos + list(range(pad)))
    return Batch(torch.tensor(ids), torch.tensor(labels), torch.tensor(pos), num_tokens, num_trained)


def pack(examples: Sequence[Example], max_length: int) -> list[list[int]]:
    """Best-fit decreasing: indices of examples grouped into rows of at most max_length tokens."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids), reverse=True)
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (space left, row index)
    for i in order:
        n = len(examples[i].input_ids)
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, r = free.pop(k)
            rows[r].append(i)
            if space - n > 0:
                bisect.insort(free, (space - n, r))
        else:
            rows.append([i])
            if max_length - n > 0:
                bisect.insort(free, (max_length - n, len(rows) - 1))
    return rows


def plan_batches(examples: Sequence[Example], batch_size: int, *, packing: bool, max_length: int,
                 seed: int) -> list[list[list[int]]]:
    """One epoch's micro-batches as lists of rows of example indices, in a seeded shuffled order.

    Without packing, examples are sorted by length inside shuffled windows so a batch holds similar lengths
    (little padding) while the epoch order stays random.
    """
    rng = random.Random(seed)
    if packing:
        rows = pack(examples, max_length)
        rng.shuffle(rows)
        return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    window = batch_size * 16
    batches = []
    for w in range(0, len(idx), window):
        chunk = sorted(idx[w:w + window], key=lambda i: len(examples[i].input_ids))
        batches += [[[i] for i in chunk[b:b + batch_size]] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
