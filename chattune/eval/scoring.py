"""Task metrics on generated answers: gsm8k-style answer extraction, exact match, format
compliance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# gsm8k's answers end with a line `#### <number>`; the number may carry commas, a sign, decimals.
GSM8K_FINAL = re.compile(r"^####\s*(-?[\d,]*\.?\d+)\s*$")


def _normalise_number(text: str) -> str:
    text = text.replace(",", "").strip()
    if re.fullmatch(r"-?\d+\.0*", text):
        text = text.split(".")[0]
    return text


def extract_gsm8k(answer: str) -> str | None:
    """The number on the answer's final `#### n` line, or None when the final line is not in that
    format."""
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return None
    m = GSM8K_FINAL.match(lines[-1].strip())
    return _normalise_number(m.group(1)) if m else None


@dataclass(frozen=True)
class TaskScore:
    """Format compliance and exact match, as fractions of the questions scored."""

    n: int
    format_ok: int
    exact: int

    @property
    def compliance(self) -> float:
        return self.format_ok / self.n if self.n else 0.0

    @property
    def accuracy(self) -> float:
        return self.exact / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "format_compliance": self.compliance, "exact_match": self.accuracy}


def regex_extractor(pattern: str):
    """An answer extractor from a regex: its first group (or whole match) in the answer, else
    None."""
    compiled = re.compile(pattern, re.MULTILINE)

    def extract(answer: str) -> str | None:
        m = compiled.search(answer)
        return None if m is None else (m.group(1) if compiled.groups else m.group(0)).strip()

    return extract


def score_answers(predictions: Sequence[str], references: Sequence[str],
                  extract=extract_gsm8k) -> TaskScore:
    """Compliance: `extract` finds an answer. Exact match: it equals what `extract` finds in the
    reference."""
    ok = exact = 0
    for pred, ref in zip(predictions, references, strict=True):
        got = extract(pred)
        ok += got is not None
        exact += got is not None and got == extract(ref)
    return TaskScore(len(predictions), ok, exact)


def score_gsm8k(predictions: Sequence[str], references: Sequence[str]) -> TaskScore:
    """Compliance: the final line is `#### <number>`. Exact match: that number equals the
    reference's."""
    return score_answers(predictions, references, extract_gsm8k)
