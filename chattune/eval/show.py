"""Evaluation figures as console tables and JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from chattune.eval.harness import BenchmarkResults
from chattune.eval.tasks import DEFAULT_TASKS, lm_eval_task_names, shipped_tasks


def benchmark_table(results: BenchmarkResults, title: str) -> Table:
    """One row per task and metric: the value and its standard error, in points (x100) as
    leaderboards show them."""
    table = Table(title=title)
    for column in ("task", "metric", "value", "± stderr", "items"):
        table.add_column(column,
                         justify="right" if column in ("value", "± stderr", "items") else "left")
    for task, metrics in results.scores.items():
        for i, (metric, score) in enumerate(metrics.items()):
            stderr = "" if score.stderr is None else f"{100 * score.stderr:.1f}"
            table.add_row(task if i == 0 else "", metric, f"{100 * score.value:.1f}", stderr,
                          str(results.samples.get(task, "")) if i == 0 else "")
    settings = results.settings
    shots = "task default" if settings["num_fewshot"] is None else settings["num_fewshot"]
    table.caption = (f"lm-eval {settings['lm_eval']}; chat template "
                     f"{'on' if settings['chat_template'] else 'off'}; few-shot {shots}"
                     + (f"; limit {settings['limit']}" if settings["limit"] is not None else ""))
    return table


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """A metric per row (loss, perplexity, format compliance, exact match)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def write_json(path: str | Path, results: dict[str, Any], console: Any = None) -> None:
    """`results` as indented JSON, said on `console`."""
    Path(path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if console is not None:
        console.print(f"results written to {path}")


def task_listing() -> str:
    """What `--tasks` takes: the shipped offline tasks (with their files), the default set,
    lm-eval's names."""
    shipped = "".join(f"\n  {name}: {path}" for name, path in shipped_tasks().items())
    return (f"offline (shipped):{shipped}\ndefault: {','.join(DEFAULT_TASKS)}\n"
            f"lm-eval's own (data from the Hub): {' '.join(sorted(lm_eval_task_names()))}")
