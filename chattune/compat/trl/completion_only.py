"""TRL's DataCollatorForCompletionOnlyLM (removed from TRL in 0.20), so scripts and notebooks that
use it run.

Two fixes over TRL's, both for mistakes its users hit:
- Templates are found in the text, not as token ids. A template tokenises differently in context
  (`"?\\n\\n"` is one token), so TRL often found nothing, warned, and trained the row on nothing.
  Here the ids are decoded, each token's start in the text is known (from offsets, or from decoding
  the ids before it), and a token is trained when it starts inside a response (DESIGN.md: masks from
  character spans).
- Padding is masked by position, never by token id, so an eos that doubles as pad is still trained
  (the model learns to stop).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from transformers.data.data_collator import DataCollatorMixin

from chattune.labels import IGNORE_INDEX, as_document, labels_from_token_starts


def _spans(text: str, template: str) -> list[tuple[int, int]]:
    out, start = [], text.find(template)
    while template and start != -1:
        out.append((start, start + len(template)))
        start = text.find(template, start + len(template))
    return out


def _trained_regions(responses: list[tuple[int, int]], instructions: list[tuple[int, int]],
                     end: int) -> list[tuple[int, int]]:
    """Each response runs from the end of its template to the start of the next instruction (or the
    end)."""
    regions = []
    for _, r_end in responses:
        nxt = min((s for s, _ in instructions if s >= r_end), default=end)
        regions.append((r_end, nxt))
    return regions


class DataCollatorForCompletionOnlyLM(DataCollatorMixin):
    """Pad a list of tokenised examples and train only what follows `response_template` (and, with
    an `instruction_template`, stop at the next instruction), as TRL's collator of the same name
    did. A transformers DataCollatorMixin (`collator(examples)` is `torch_call(examples)`); with
    `padding_free` the examples are laid end to end in one row with position ids restarting per
    example, and flash-attention's cu_seq_lens/max_length, as TRL's did."""

    def __init__(self, response_template: str | list[int],
                 instruction_template: str | list[int] | None = None,
                 *, tokenizer: Any, ignore_index: int = IGNORE_INDEX, mlm: bool = False,
                 padding_free: bool = False, return_tensors: str = "pt", **unsupported: Any):
        if unsupported:
            raise TypeError(f"DataCollatorForCompletionOnlyLM: chattune does not support "
                            f"{', '.join(sorted(unsupported))}")
        if mlm:
            raise TypeError("DataCollatorForCompletionOnlyLM: mlm=True is masked language "
                            "modelling, not SFT")
        if return_tensors != "pt":
            raise TypeError("DataCollatorForCompletionOnlyLM: chattune returns torch tensors, got "
                            f"return_tensors={return_tensors!r}")
        self.tokenizer, self.padding_free, self.return_tensors = (tokenizer,
                                                                  padding_free, return_tensors)
        self.response_template = response_template
        self.instruction_template = instruction_template
        self.ignore_index = ignore_index

    @property
    def response_text(self) -> str:
        return self._as_text(self.response_template) or ""

    def _as_text(self, template: str | list[int] | None) -> str | None:
        if template is None or isinstance(template, str):
            return template
        return self.tokenizer.decode(template, clean_up_tokenization_spaces=False)

    def _text_and_starts(self, ids: list[int]) -> tuple[str, list[int]]:
        """The decoded text and the character where each token starts in it."""
        text = self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            if enc["input_ids"] == ids:
                return text, [start for start, _ in enc["offset_mapping"]]
        # decoding does not round-trip (a slow tokenizer, a dropped leading space): a token starts
        # where the text of the ids before it ends
        return text, [len(self.tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False))
                      for k in range(len(ids))]

    def labels_for(self, ids: Sequence[int]) -> list[int]:
        """Labels for one example's ids: the tokens that start inside a response, IGNORE_INDEX
        elsewhere.

        A response runs from the end of a response template to the next instruction template (or the
        end); with an instruction_template, a row without one trains nothing (TRL's rule)."""
        ids = list(ids)
        text, starts = self._text_and_starts(ids)
        responses = _spans(text, self.response_text)
        instruction = self._as_text(self.instruction_template)
        instructions = _spans(text, instruction) if instruction else []
        if instruction and not instructions:
            return [self.ignore_index] * len(ids)
        regions = _trained_regions(responses, instructions, len(text))
        return labels_from_token_starts(ids, starts, regions, self.ignore_index)

    def torch_call(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        """Pad (on the tokenizer's side) and label a list of `tokenizer(text)` outputs or id
        lists."""
        rows = [list(e["input_ids"] if not isinstance(e, (list, tuple)) else e) for e in examples]
        labels = []
        for row in rows:
            lab = self.labels_for(row)
            if all(t == self.ignore_index for t in lab):
                warnings.warn(f"DataCollatorForCompletionOnlyLM: no completion found in "
                              f"{self.tokenizer.decode(row)!r} (response template "
                              f"{self.response_text!r}); this example trains nothing",
                              stacklevel=2)
            labels.append(lab)
        if self.padding_free:
            return self._padding_free(rows, labels)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        left = getattr(self.tokenizer, "padding_side", "right") == "left"

        def padded(seq: list[int], fill: int) -> list[int]:
            fillers = [fill] * (width - len(seq))
            return fillers + seq if left else seq + fillers

        return {"input_ids": torch.tensor([padded(r, pad) for r in rows]),
                "attention_mask": torch.tensor([padded([1] * len(r), 0) for r in rows]),
                "labels": torch.tensor([padded(lab, self.ignore_index) for lab in labels])}

    def _padding_free(self, rows: list[list[int]],
                      labels: list[list[int]]) -> dict[str, torch.Tensor]:
        """One row of every example end to end; an example's first token is never a target
        (as_document)."""
        lengths = [len(r) for r in rows]
        bounds = torch.tensor([0, *lengths]).cumsum(0).to(torch.int32)[None]
        longest = torch.tensor([max(lengths)])
        return {"input_ids": torch.tensor([[t for r in rows for t in r]]),
                "labels": torch.tensor([[t for lab in labels
                                         for t in as_document(lab, self.ignore_index)]]),
                "position_ids": torch.tensor([[i for n in lengths for i in range(n)]]),
                "cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": longest,
                "max_length_k": longest}
