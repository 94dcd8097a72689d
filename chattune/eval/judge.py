"""LLM-as-judge: two sets of answers to the same questions compared pair by pair by a judge model,
each pair in both orders so that a judge's preference for a position cancels out."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chattune.errors import JudgeError

# MT-Bench's pairwise verdict format ([[A]], [[B]], [[C]] for a tie), which judges are commonly
# prompted with
DEFAULT_RUBRIC = """Act as an impartial judge. Compare the two assistants' answers to the user's \
question below and decide which answer is better. Consider correctness first, then helpfulness, \
relevance and clarity. The order in which the answers appear, their length and the assistants' \
names must not influence you.

[Question]
{question}

[Assistant A's answer]
{answer_a}

[Assistant B's answer]
{answer_b}

Explain your reasoning in a few sentences. Then give your verdict on the last line, exactly one \
of: [[A]] if assistant A's answer is better, [[B]] if assistant B's answer is better, [[C]] for a \
tie."""
PLACEHOLDERS = ("{question}", "{answer_a}", "{answer_b}")
VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")

# a judge takes the filled-in rubrics and returns its replies, in order
JudgeFn = Callable[[list[str]], list[str]]


def check_rubric(rubric: str, source: str = "rubric") -> str:
    """The rubric, if it holds every placeholder ({reference} is optional); else a JudgeError naming
    the missing."""
    missing = [p for p in PLACEHOLDERS if p not in rubric]
    if missing:
        raise JudgeError(f"{source}: a judge rubric must contain {', '.join(PLACEHOLDERS)} (where "
                         f"the question and the two answers go); missing {', '.join(missing)}")
    return rubric


def read_rubric(path: str | None) -> str:
    """The rubric in the file at `path`, checked (DEFAULT_RUBRIC for None)."""
    if path is None:
        return DEFAULT_RUBRIC
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JudgeError(f"judge rubric {path}: no such file") from None
    return check_rubric(text, path)


def fill_rubric(rubric: str, question: str, first: str, second: str,
                reference: str | None = None) -> str:
    """The rubric with the question and answers in place (plain replacement: braces elsewhere stay
    as written)."""
    values = {"{question}": question, "{answer_a}": first, "{answer_b}": second,
              "{reference}": reference or ""}
    return re.sub("|".join(re.escape(k) for k in values), lambda m: values[m.group(0)], rubric)


def parse_verdict(reply: str) -> str | None:
    """"A", "B" or "C" (tie): the last [[X]] in the judge's reply; None when it gave none."""
    found = VERDICT.findall(reply)
    return found[-1] if found else None


@dataclass
class Judgement:
    """One question: both answers, the judge's replies in both orders and the outcome for the second
    set."""

    question: str
    first: str
    second: str
    reply_in_order: str  # the first set's answer shown as A
    reply_swapped: str  # the second set's answer shown as A
    verdict_in_order: str | None
    verdict_swapped: str | None
    outcome: str  # "win", "tie" or "loss" for the second set

    @property
    def score(self) -> float:
        return {"win": 1.0, "tie": 0.5, "loss": 0.0}[self.outcome]


def outcome(verdict_in_order: str | None, verdict_swapped: str | None) -> str:
    """The second set's result over both orders: each order gives +1 (second preferred), -1 or 0
    (tie or no verdict); the sum decides. A judge that always picks the same position scores +1 and
    -1: a tie."""
    points = ({"B": 1, "A": -1}.get(verdict_in_order or "C", 0)
              + {"A": 1, "B": -1}.get(verdict_swapped or "C", 0))
    return "win" if points > 0 else "loss" if points < 0 else "tie"


@dataclass
class JudgeSummary:
    """Wins, ties and losses of the second set against the first, and its win rate (ties count half)
    with a 95% confidence interval (normal approximation over questions)."""

    first: str
    second: str
    judge: str
    n: int
    wins: int
    ties: int
    losses: int
    no_verdict: int  # replies without a [[A]]/[[B]]/[[C]] (counted as a tie in that order)
    same_position: int  # questions where both orders named the same position better: position bias
    win_rate: float
    ci95: tuple[float, float]
    rubric: str = field(repr=False, default=DEFAULT_RUBRIC)

    def as_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}

    def sentence(self) -> str:
        """e.g. "tuned vs base: 12 wins, 3 ties, 5 losses of 20; win rate 67.5% (95% CI
        49.1-85.9%)"."""
        lo, hi = self.ci95
        return (f"{self.second} vs {self.first}: {self.wins} wins, {self.ties} ties, {self.losses} "
                f"losses of {self.n}; win rate {self.win_rate:.1%} (95% CI {lo:.1%}-{hi:.1%}), "
                f"judged by {self.judge}")


def summarise(items: Sequence[Judgement], first: str, second: str, judge: str,
              rubric: str) -> JudgeSummary:
    """Counts, win rate and its 95% interval from the judgements."""
    n = len(items)
    scores = [j.score for j in items]
    rate = sum(scores) / n if n else 0.0
    spread = math.sqrt(sum((s - rate) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * spread / math.sqrt(n) if n else 0.0
    same = sum(1 for j in items
               if j.verdict_in_order in ("A", "B") and j.verdict_in_order == j.verdict_swapped)
    return JudgeSummary(first, second, judge, n, sum(j.outcome == "win" for j in items),
                        sum(j.outcome == "tie" for j in items),
                        sum(j.outcome == "loss" for j in items),
                        sum((j.verdict_in_order is None) + (j.verdict_swapped is None)
                            for j in items), same, rate,
                        (max(0.0, rate - half), min(1.0, rate + half)), rubric)


def judge_pairs(judge: JudgeFn, questions: Sequence[str], first: Sequence[str],
                second: Sequence[str], *,
                rubric: str = DEFAULT_RUBRIC,
                references: Sequence[str | None] | None = None) -> list[Judgement]:
    """Every question judged twice, first set's answer as A then as B, in one call of `judge` (so a
    local model or a server can batch them)."""
    check_rubric(rubric)
    refs = list(references) if references is not None else [None] * len(questions)
    rows = list(zip(questions, first, second, refs, strict=True))
    prompts = [fill_rubric(rubric, q, a, b, r) for q, a, b, r in rows] + \
        [fill_rubric(rubric, q, b, a, r) for q, a, b, r in rows]
    replies = judge(prompts)
    if len(replies) != len(prompts):
        raise JudgeError(f"the judge returned {len(replies)} replies for {len(prompts)} prompts")
    n = len(rows)
    out = []
    for i, (q, a, b, _) in enumerate(rows):
        v1, v2 = parse_verdict(replies[i]), parse_verdict(replies[n + i])
        out.append(Judgement(q, a, b, replies[i], replies[n + i], v1, v2, outcome(v1, v2)))
    return out
