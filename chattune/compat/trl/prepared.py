"""SFTTrainer's data: its datasets' rows as Examples (rendered with exact masks, labelled by a
completion-only collator, or tokenised rows as they are), prepared once per setting, and shown as
TRL's processed datasets."""

from __future__ import annotations

import warnings
from typing import Any

from chattune.batching.collate import Example, pack, wrap
from chattune.compat.trl.args import NO_LIMIT
from chattune.compat.trl.datasets import Item, collator_examples, dataset_items, dataset_rows
from chattune.data.schema import Conversation
from chattune.prepare.examples import prepare_examples


class PreparedDataMixin:
    """The data side of SFTTrainer (it sets args, cfg, tokenizer, data_collator, _formatting_func,
    _train_items, _eval_items and _prepared)."""

    args: Any
    cfg: Any
    tokenizer: Any
    data_collator: Any
    _formatting_func: Any
    _train_items: list[Item]
    _eval_items: dict[str, list[Item]]
    _prepared: Any

    def _items(self, dataset: Any, name: str) -> list[Item]:
        """The dataset's rows as Conversations (to render) or Examples (rows that come
        tokenised)."""
        skip = bool((self.args.dataset_kwargs or {}).get("skip_prepare_dataset"))
        return dataset_items(dataset_rows(dataset, name), self._formatting_func,
                             self.args.dataset_text_field or "text", name, skip)

    def _examples_of(self, items: list[Item], max_length: int | None = None) -> list[Example]:
        """Examples in the dataset's order: tokenised rows as they are (cut to max_length), the
        others prepared (rendered with exact masks, or labelled by the completion-only collator)."""
        n = max_length or self.cfg.max_length
        convs = [c for c in items if isinstance(c, Conversation)]
        if not convs:
            prepared: list[Example] = []
        elif self.data_collator is not None:
            prepared = collator_examples(convs, self.tokenizer, self.data_collator, n)
        else:
            prepared, _ = prepare_examples(convs, self.tokenizer, train_on=self.args.train_on,
                                           max_length=n, truncation=self.args.truncation_mode
                                           or "keep_start")
        if len(convs) == len(items):
            return prepared
        if len(prepared) != len(convs):
            raise ValueError("a dataset mixes tokenised rows (input_ids) with rows to render; pass "
                             "one kind")
        rendered = iter(prepared)
        out = [next(rendered) if isinstance(c, Conversation)
               else Example(c.input_ids[:n], c.labels[:n]) for c in items]
        # as TRL does: a row left with nothing to train (all of it masked, or cut off by max_length)
        # is dropped
        kept = [ex for ex in out if ex.num_trained]
        if len(kept) < len(out):
            warnings.warn(f"{len(out) - len(kept)} tokenised rows have no trained token within "
                          f"max_length={n} and are left out", stacklevel=3)
        return kept

    def _prepare(self) -> tuple[list[Example], dict[str, list[Example]]]:
        strategy = self.args.packing_strategy if self.args.packing else None
        # prepared again when args that decide the examples change between train() calls
        key = (self.cfg.max_length, strategy, self.args.train_on, self.args.truncation_mode)
        if self._prepared is None or self._prepared[0] != key:
            evals = {name: self._examples_of(items) for name, items in self._eval_items.items()}
            if strategy == "wrapped":  # whole rows end to end, then cut
                train = wrap(self._examples_of(self._train_items, NO_LIMIT), self.cfg.max_length)
            # a row longer than max_length becomes several documents, none lost
            elif strategy == "bfd_split":
                train = [piece for ex in self._examples_of(self._train_items, NO_LIMIT)
                         for piece in wrap([ex], self.cfg.max_length) if piece.num_trained]
            else:
                train = self._examples_of(self._train_items)
            self._prepared = (key, train, evals)
        return self._prepared[1], self._prepared[2]

    @property
    def train_examples(self) -> list[Example]:
        return self._prepare()[0]

    @property
    def eval_examples(self) -> list[Example]:
        """The examples of every eval set, in order."""
        return [ex for exs in self._prepare()[1].values() for ex in exs]

    def _as_dataset(self, examples: list[Example], packed: bool = False) -> Any:
        """Examples as a datasets.Dataset (input_ids, labels); packed: the rows chattune trains on
        (best-fit decreasing into max_length), with TRL's seq_lengths column."""
        from datasets import Dataset

        if not packed:
            return Dataset.from_dict({"input_ids": [ex.input_ids.tolist() for ex in examples],
                                      "labels": [ex.labels.tolist() for ex in examples]})
        rows = [[examples[i] for i in row] for row in pack(examples, self.cfg.max_length)]
        return Dataset.from_dict({"input_ids": [[t for d in row for t in d.input_ids]
                                                for row in rows],
                                  "labels": [[t for d in row for t in d.labels] for row in rows],
                                  "seq_lengths": [[len(d.input_ids) for d in row] for row in rows]})

    @property
    def train_dataset(self) -> Any:
        """The prepared training examples as a datasets.Dataset (input_ids, labels), as TRL's
        trainer holds its processed dataset."""
        return self._as_dataset(self.train_examples, bool(self.args.packing))

    @property
    def eval_dataset(self) -> Any:
        """The prepared eval examples as a Dataset (a dict of them for named eval sets); None
        without any."""
        evals = self._prepare()[1]
        if not evals:
            return None
        # TRL's eval_packing (None: as packing); chattune evaluates unpacked either way, with the
        # same loss
        packed = bool(self.args.packing if self.args.eval_packing is None
                      else self.args.eval_packing)
        if list(evals) == [""]:
            return self._as_dataset(evals[""], packed)
        return {name: self._as_dataset(exs, packed) for name, exs in evals.items()}
