"""Datasets as TRL's SFTTrainer takes them -> chattune's Conversations, or Examples where rows come
tokenised.

TRL accepts a datasets.Dataset, an IterableDataset or a list of dicts; rows are chats,
prompt/completion pairs, text (`dataset_text_field`, or a `formatting_func`), or already tokenised
(`input_ids`, with `labels` or a mask column saying what is trained).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

from chattune.batching.collate import Example
from chattune.data.convert import to_conversation
from chattune.data.schema import Conversation
from chattune.labels import IGNORE_INDEX, num_trained

# TRL's mask columns of a tokenised row: 1 where the token is trained
MASK_COLUMNS = ("completion_mask", "assistant_masks")

Item = Conversation | Example


def dataset_rows(dataset: Any, name: str) -> list[dict[str, Any]]:
    """Rows of a datasets.Dataset, an IterableDataset or a list of dicts."""
    if dataset is None:
        return []
    if isinstance(dataset, dict):  # a DatasetDict
        raise TypeError(f"{name}: pass one split of a DatasetDict (e.g. ds['train']), not the "
                        f"whole DatasetDict (splits: {', '.join(map(str, dataset))})")
    if getattr(dataset, "format", {}).get("type") == "custom":  # with_transform / set_transform
        raise ValueError(f"{name}: a Dataset.with_transform() transform runs each time a row is "
                         "read, but chattune prepares (renders, tokenises, masks) every row once "
                         "before training, so it would be lost; apply it with dataset.map() "
                         "instead, or set dataset_kwargs={'skip_prepare_dataset': True} and pass "
                         "trainer-ready rows (input_ids, labels)")
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Iterable):
        raise TypeError(f"{name}: expected a datasets.Dataset or a list of dicts, got "
                        f"{type(dataset).__name__}")
    rows = list(dataset)
    bad = next((i for i, r in enumerate(rows, start=1) if not isinstance(r, dict)), None)
    if bad:
        raise TypeError(f"{name}, row {bad}: expected a dict, got {type(rows[bad - 1]).__name__}")
    return [dict(r) for r in rows]


def _int_list(row: dict[str, Any], key: str, name: str, i: int) -> list[int]:
    value = row[key]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value,
                      list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                       for v in value):
        raise ValueError(f"{name}, row {i}, field {key!r}: expected a list of integers, got "
                         f"{type(value).__name__}")
    return value


def tokenized_example(row: dict[str, Any], name: str, i: int,
                      skip_prepare: bool = False) -> Example:
    """A tokenised row as TRL reads it: `labels` taken as they are; else labels built from a mask
    column (completion_mask / assistant_masks: 1 = trained); else every token trained."""
    ids = _int_list(row, "input_ids", name, i)
    masks = [k for k in MASK_COLUMNS if row.get(k) is not None]
    if row.get("labels") is not None:
        labels = _int_list(row, "labels", name, i)
    elif masks and skip_prepare:
        raise ValueError(f"{name}, row {i}: with dataset_kwargs={{'skip_prepare_dataset': True}} "
                         f"the rows are used as they are, and {masks[0]!r} would be ignored (every "
                         f"token trained). Add a 'labels' column (the input ids, {IGNORE_INDEX} "
                         "where not trained), or let the trainer prepare the data")
    elif masks:
        mask = _int_list(row, masks[0], name, i)
        if len(mask) != len(ids):
            raise ValueError(f"{name}, row {i}: {masks[0]!r} has {len(mask)} entries for "
                             f"{len(ids)} input_ids")
        labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    else:
        labels = list(ids)
    if len(labels) != len(ids):
        raise ValueError(f"{name}, row {i}: 'labels' has {len(labels)} entries for {len(ids)} "
                         "input_ids")
    return Example(ids, labels)


def dataset_items(rows: list[dict[str, Any]], formatting_func: Callable | None, text_field: str,
                  name: str, skip_prepare: bool = False) -> list[Item]:
    """Each row as a Conversation to render, or an Example where it is already tokenised."""
    out: list[Item] = []
    for i, row in enumerate(rows, start=1):
        if formatting_func is not None:  # TRL trains the formatted text as plain language modelling
            out.append(Conversation(messages=[], source=name, row=i, text=formatting_func(row)))
        elif "input_ids" in row or skip_prepare:
            if "input_ids" not in row:
                raise ValueError(f"{name}, row {i}: dataset_kwargs={{'skip_prepare_dataset': "
                                 f"True}} needs trainer-ready rows with 'input_ids' (found "
                                 f"{', '.join(row)})")
            out.append(tokenized_example(row, name, i, skip_prepare))
        elif text_field in row and not any(k in row
                                           for k in ("messages", "conversations", "prompt")):
            out.append(to_conversation({"text": row[text_field]}, source=name, row_no=i))
        else:
            out.append(to_conversation(row, source=name, row_no=i))
    return out


def collator_examples(convs: list[Conversation], tokenizer: Any, collator: Any,
                      max_length: int) -> list[Example]:
    """Text rows tokenised as `tokenizer(text)` and labelled by a DataCollatorForCompletionOnlyLM;
    rows it finds no completion in are named, not trained on nothing."""
    examples, empty = [], []
    for conv in convs:
        if conv.text is None:
            raise TypeError(f"{conv.source}, row {conv.row}: DataCollatorForCompletionOnlyLM needs "
                            "text rows (dataset_text_field or formatting_func)")
        ids = tokenizer(conv.text)["input_ids"][:max_length]
        labels = collator.labels_for(ids)
        if not num_trained(labels):
            empty.append(conv.row)
        else:
            examples.append(Example(ids, labels))
    if empty:
        warnings.warn(f"DataCollatorForCompletionOnlyLM found no completion in rows {empty[:10]} "
                      f"(response template {collator.response_text!r}); they are left out",
                      stacklevel=3)
    return examples
