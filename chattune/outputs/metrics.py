"""metrics.jsonl (one JSON line per logged step) and console progress: loss, learning rate,
tokens/s."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class MetricsLog:
    """Append records to metrics.jsonl and show them; a progress bar on a terminal, lines
    otherwise."""

    def __init__(self, path: Path, total_steps: int, console: Console | None = None,
                 earlier: list[dict[str, Any]] | None = None):
        self.path = path
        self.console = console or Console()
        self.file = path.open("w", encoding="utf-8")
        for rec in earlier or []:  # a resumed run's records up to its checkpoint, then the new ones
            self.file.write(json.dumps({k: v for k, v in rec.items() if k != "total_steps"}) + "\n")
        self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(),
                                 console=self.console, disable=not self.console.is_terminal)
        self.task = self.progress.add_task("train", total=total_steps, stats="")

    def __enter__(self) -> MetricsLog:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()
        self.file.close()

    def __call__(self, rec: dict[str, Any]) -> None:
        self.file.write(json.dumps({k: v for k, v in rec.items() if k != "total_steps"}) + "\n")
        self.file.flush()
        if "generations" in rec:
            for g in rec["generations"][:1]:
                self.console.print(f"step {rec['step']}: eval answer: {g['reply'][:200]!r}",
                                   highlight=False)
            return
        # eval records: one set's eval_loss, or several named sets' eval_<name>_loss
        if "loss" not in rec:
            for key in (k for k in rec if k.endswith("loss")):
                name = key.removesuffix("loss")
                self.console.print(f"step {rec['step']}: {key} {rec[key]:.4f} perplexity "
                                   f"{rec[name + 'perplexity']:.2f} accuracy "
                                   f"{rec[name + 'accuracy']:.3f}")
            return
        stats = (f"loss {rec['loss']:.4f}  lr {rec['learning_rate']:.2e}  "
                 f"{rec['tokens_per_s']:.0f} tok/s")
        if "peak_memory_allocated_gb" in rec:
            stats += ("  mem "
                      f"{rec['peak_memory_allocated_gb']:.1f}/{rec['peak_memory_reserved_gb']:.1f} "
                      "GB")
        self.progress.update(self.task, completed=rec["step"], stats=stats)
        if not self.console.is_terminal:
            self.console.print(f"step {rec['step']}/{rec['total_steps']}  {stats}  grad_norm "
                               f"{rec['grad_norm']:.3f}")


@contextmanager
def counting_progress(console: Console, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar over `total` items (shown on a terminal); yields the function that advances
    it."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
