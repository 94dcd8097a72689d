"""What a judge compares and what it leaves: answer sets read from a run's compare.jsonl or from
answer files, and judge.json (the summary) with judge.jsonl (every question's replies and verdicts)
written beside them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from chattune.errors import DataError, JudgeError
from chattune.eval.judge import Judgement, JudgeSummary

COMPARE_FILE = "compare.jsonl"


@dataclass
class AnswerPairs:
    """Two named sets of answers to the same questions (and the references where the data had
    them)."""

    first_name: str
    second_name: str
    questions: list[str]
    first: list[str]
    second: list[str]
    references: list[str | None]


def _rows(source: str) -> tuple[Path, list[dict]]:
    path = Path(source)
    if path.is_dir():
        path = path / COMPARE_FILE
        if not path.is_file():
            raise DataError(source, None, None,
                            f"a run folder to judge holds {COMPARE_FILE} (written when the "
                            "config has a `compare` section); it has none")
    if not path.is_file():
        raise DataError(source, None, None, "no such answer file or run folder")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(str(path), n, None, f"not JSON: {e.msg}") from None
    if not rows:
        raise DataError(str(path), None, None, "no answers in the file")
    return path, rows


def _question_answer(row: dict, path: Path, n: int) -> tuple[str, str]:
    """(question, answer) of one row: compare.jsonl's question/tuned, `chattune generate`'s
    messages/generation, or question/answer."""
    if "question" in row and ("tuned" in row or "answer" in row):
        return str(row["question"]), str(row.get("tuned", row.get("answer")))
    if "messages" in row and "generation" in row and row["messages"]:
        return str(row["messages"][-1].get("content", "")), str(row["generation"])
    raise DataError(str(path), n, None,
                    "expected compare.jsonl's question/base/tuned, `chattune generate`'s "
                    "messages/generation or question/answer; found keys "
                    f"{', '.join(sorted(row)) or 'none'}")


def answer_pairs(first: str, second: str | None = None, limit: int | None = None) -> AnswerPairs:
    """One run (its base vs tuned answers) or two answer sets on the same questions (the first's vs
    the second's)."""
    path, rows = _rows(first)
    rows = rows[:limit]
    if second is None:
        missing = [n for n, r in enumerate(rows, 1) if not {"question", "base", "tuned"} <= set(r)]
        if missing:
            raise DataError(str(path), missing[0], None,
                            "judging one run needs its base and tuned answers "
                            "(compare.jsonl's question, base, tuned); give a second answer set to "
                            "compare two")
        return AnswerPairs("base", "tuned", [r["question"] for r in rows],
                           [r["base"] for r in rows],
                           [r["tuned"] for r in rows], [r.get("reference") for r in rows])
    other_path, other = _rows(second)
    other = other[:limit]
    if len(other) != len(rows):
        raise JudgeError(f"{path} has {len(rows)} answers and {other_path} {len(other)}: the two "
                         "sets must answer the same questions")
    a = [_question_answer(r, path, n) for n, r in enumerate(rows, 1)]
    b = [_question_answer(r, other_path, n) for n, r in enumerate(other, 1)]
    for n, ((qa, _), (qb, _)) in enumerate(zip(a, b), 1):
        if qa.strip() != qb.strip():
            raise DataError(str(other_path), n, "question",
                            f"differs from row {n} of {path}: {qb[:80]!r} vs "
                            f"{qa[:80]!r}; the two sets must answer the same questions in the same "
                            "order")
    return AnswerPairs(_name(first), _name(second), [q for q, _ in a], [x for _, x in a],
                       [x for _, x in b], [r.get("reference") for r in rows])


def _name(source: str) -> str:
    path = Path(source)
    return (path.name if path.is_dir() else path.parent.name
            if path.name == COMPARE_FILE else path.stem)


def write_judgement(out_dir: Path, items: list[Judgement], summary: JudgeSummary,
                    replace: bool = False) -> tuple[Path, Path]:
    """judge.json and judge.jsonl in `out_dir`; refused where either exists (an earlier judgement is
    kept) unless `replace` (a training run rewriting its own)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "judge.json", out_dir / "judge.jsonl"
    taken = [str(p) for p in paths if p.exists() and not replace]
    if taken:
        raise JudgeError(f"{' and '.join(taken)} already hold(s) a judgement; kept: choose another "
                         "folder with --out")
    paths[0].write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    with paths[1].open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps({**asdict(item), "score": item.score}, ensure_ascii=False) + "\n")
    return paths
