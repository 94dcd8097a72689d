"""A task of your own without writing lm-eval YAML: a data file, which column is the prompt and
which the answer, and a metric; made into an lm-eval task config, so the harness runs it (batching,
standard errors) like any other.

Metrics: `exact_match`, `contains` (the reference appears in the answer), `last_number` (the last
number of each), `regex:PATTERN` (its first group, or the whole match, in each), `gsm8k` (the final
`#### n` line: format compliance and exact match, as `chattune eval --data` scores them), `choice`
(multiple choice by loglikelihood: a column of choices, the answer an index or one of them),
`python:module:function` (called with the answer and the reference; returns a number or a dict of
numbers, each averaged).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.errors import TaskError
from chattune.eval.scoring import extract_gsm8k, regex_extractor, score_answers

_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
KINDS = ("exact_match", "contains", "last_number", "regex:", "gsm8k", "choice", "python:")


def _last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def _extracting(extract: Callable[[str], str | None]) -> Callable[[str, str], dict[str, float]]:
    def score(answer: str, reference: str) -> dict[str, float]:
        scored = score_answers([answer], [reference], extract)
        return {"format_compliance": scored.compliance, "exact_match": scored.accuracy}
    return score


def scorer(metric: str) -> Callable[[str, str], dict[str, float]]:
    """(answer, reference) -> {metric name: value} for a generation metric."""
    if metric == "exact_match":
        return lambda a, r: {"exact_match": float(a.strip() == r.strip())}
    if metric == "contains":
        return lambda a, r: {"contains": float(r.strip() in a)}
    if metric == "last_number":
        return _extracting(_last_number)
    if metric == "gsm8k":
        return _extracting(extract_gsm8k)
    if metric.startswith("regex:"):
        try:
            return _extracting(regex_extractor(metric.removeprefix("regex:")))
        except re.error as e:
            raise TaskError(f"metric {metric!r}: not a regular expression ({e})") from None
    if metric.startswith("python:"):
        return _python_metric(metric.removeprefix("python:"))
    kinds = ", ".join(k + ("..." if k.endswith(":") else "") for k in KINDS)
    raise TaskError(f"metric {metric!r}: expected one of {kinds}")


def _python_metric(spec: str) -> Callable[[str, str], dict[str, float]]:
    module, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise TaskError(f"metric python:{spec}: cannot import it ({e}); expected "
                        "python:package.module:function") \
            from None

    def score(answer: str, reference: str) -> dict[str, float]:
        value = function(answer, reference)
        return ({k: float(v) for k, v in value.items()} if isinstance(value, dict)
                else {name: float(value)})
    return score


def own_task(data: str | Path, *, prompt: str, answer: str, metric: str, choices: str | None = None,
             name: str | None = None, max_new_tokens: int = 256, **unknown: Any) -> dict[str, Any]:
    """An lm-eval task config: the rows of `data` (jsonl, json, csv or parquet), `prompt` and
    `answer` columns."""
    if unknown:
        raise TaskError(f"own task {name or data}: unknown key(s) {', '.join(unknown)}; expected "
                        "data, prompt, answer, metric, choices, name, max_new_tokens")
    path = Path(data).expanduser().resolve()
    if not path.is_file():
        raise TaskError(f"task data file not found: {path}")
    builder = {".jsonl": "json", ".json": "json", ".csv": "csv",
               ".parquet": "parquet"}.get(path.suffix)
    if builder is None:
        raise TaskError(f"{path}: expected a .jsonl, .json, .csv or .parquet file")
    base = {"task": name or path.stem, "dataset_path": builder,
            "dataset_kwargs": {"data_files": {"test": str(path)}},
            "test_split": "test", "fewshot_split": "test",
            "doc_to_text": lambda doc: str(doc[prompt])}
    if metric == "choice":
        if not choices:
            raise TaskError("metric choice: name the column that holds the choices "
                            "(choices=COLUMN)")
        return {**base, "output_type": "multiple_choice",
                "doc_to_choice": lambda doc: list(doc[choices]),
                "doc_to_target": lambda doc: _choice_index(doc, choices, answer),
                "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}]}
    score = scorer(metric)
    # the metrics' names, from a trial on empty text (a function that cannot take it: its own name)
    try:
        names = list(score("", "").keys())
    except Exception:  # noqa: BLE001 (a user's function may raise anything on empty text)
        names = [metric.rsplit(":", 1)[-1]]

    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        return score(results[0], str(doc[answer]))

    return {**base, "output_type": "generate_until", "doc_to_target": lambda doc: str(doc[answer]),
            "process_results": process_results,
            "generation_kwargs": {"until": [], "max_gen_toks": max_new_tokens, "do_sample": False},
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                            for m in names]}


def _choice_index(doc: dict, choices: str, answer: str) -> int:
    value = doc[answer]
    return (int(value) if isinstance(value, int) or str(value).isdigit()
            else list(doc[choices]).index(value))
