"""Labels: the one place that says which tokens are trained and how they are counted.

Rendering (spans of the rendered text), the TRL completion-only collator (response regions) and
collation (documents placed end to end) all make and count labels here, so a trained token means the
same thing everywhere: `labels[i]` is `input_ids[i]` where the token is a target, IGNORE_INDEX where
it is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

IGNORE_INDEX = -100  # the one label value that means "not trained" (torch's cross_entropy default)


def labels_from_token_ranges(ids: Sequence[int], ranges: Iterable[tuple[int, int]]) -> list[int]:
    """Train the tokens in each [first, stop) range, nothing else."""
    labels = [IGNORE_INDEX] * len(ids)
    for first, stop in ranges:
        labels[first:stop] = ids[first:stop]
    return labels


def labels_from_token_starts(ids: Sequence[int], starts: Sequence[int],
                             regions: Sequence[tuple[int, int]],
                             ignore_index: int = IGNORE_INDEX) -> list[int]:
    """Train the tokens whose first character (`starts[i]`) lies inside a [start, end) character
    region."""
    return [t if any(a <= s < b for a, b in regions) else ignore_index for t, s in zip(ids, starts)]


def as_document(labels: Sequence[int], ignore_index: int = IGNORE_INDEX) -> list[int]:
    """A document's labels as placed in a batch: its first token has no context before it inside the
    document (packed neighbours are invisible to it), so it is never a target."""
    return [ignore_index, *labels[1:]] if labels else []


def num_trained(labels: Sequence[int]) -> int:
    """Positions the loss is taken on: every label but the first (the shift rule: token i is
    predicted from the tokens before it, and nothing comes before the first)."""
    # counted in C (a list's or Tokens' count): this runs for every prepared row, a few times
    if isinstance(labels, list | tuple) or callable(getattr(labels, "count", None)):
        return (len(labels) - 1 - labels.count(IGNORE_INDEX)
                + (labels[0] == IGNORE_INDEX) if labels else 0)
    return sum(lab != IGNORE_INDEX for lab in labels[1:])


def first_trained(labels: Sequence[int]) -> int | None:
    """Index of the first trained token (the end of the first prompt), None when nothing is
    trained."""
    return next((i for i, lab in enumerate(labels) if lab != IGNORE_INDEX), None)


def trained_ids(labels: Sequence[int]) -> list[int]:
    """The trained token ids, in order."""
    return [lab for lab in labels if lab != IGNORE_INDEX]
