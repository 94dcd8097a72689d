"""Benchmarks before and after tuning: each metric's change with its standard error, and falls named
in words.

The change's standard error is sqrt(se_base² + se_tuned²), the two runs taken as independent (they
score the same items, so this overstates it a little: a fall flagged here is a fall). A fall of more
than two standard errors of the change is flagged ("truthfulqa_mc1 acc fell 4.1 ± 1.2 points").
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from chattune.eval.harness import BenchmarkResults, Score
from chattune.outputs.report import points

# metrics that measure a cost, where a rise is the bad direction (lm-eval's higher_is_better: false)
_LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter")


def _change(base: Score, tuned: Score) -> dict[str, Any]:
    stderr = (math.sqrt(base.stderr ** 2 + tuned.stderr ** 2)
              if base.stderr is not None and tuned.stderr is not None else None)
    return {"base": base.value, "base_stderr": base.stderr, "tuned": tuned.value,
            "tuned_stderr": tuned.stderr, "change": tuned.value - base.value,
            "change_stderr": stderr}


def compare_benchmarks(base: BenchmarkResults, tuned: BenchmarkResults) -> dict[str, Any]:
    """{task: {metric: base, tuned, their stderrs, change, change_stderr}}, and "falls": each
    significant fall."""
    tasks: dict[str, dict[str, Any]] = {}
    falls = []
    for task, metrics in base.scores.items():
        tasks[task] = {}
        for metric, before in metrics.items():
            after = tuned.scores.get(task, {}).get(metric)
            if after is None:
                continue
            row = tasks[task][metric] = _change(before, after)
            lower_is_better = metric.split(",")[0].endswith(_LOWER_IS_BETTER)
            worse = row["change"] if lower_is_better else -row["change"]
            if row["change_stderr"] and worse > 2 * row["change_stderr"]:
                scale = 1 if lower_is_better else 100  # fractions are said in points
                word = "fell" if row["change"] < 0 else "rose"
                falls.append(f"{task} {metric} {word} {scale * abs(row['change']):.1f} ± "
                             f"{scale * row['change_stderr']:.1f}"
                             + ("" if lower_is_better else " points"))
    return {"tasks": tasks, "falls": falls, "settings": base.settings}


def comparison_table(comparison: dict[str, Any]) -> Table:
    """base ± se, tuned ± se and the change, in points, one row per task and metric."""
    table = Table(title="benchmarks before / after (lm-evaluation-harness; points, ± standard "
                        "error)")
    for column in ("task", "metric", "base", "tuned", "change"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")

    for task, metrics in comparison["tasks"].items():
        for i, (metric, row) in enumerate(metrics.items()):
            table.add_row(task if i == 0 else "", metric, points(row["base"], row["base_stderr"]),
                          points(row["tuned"], row["tuned_stderr"]), f"{100 * row['change']:+.1f}")
    return table
