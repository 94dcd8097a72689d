"""Loss curves as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss(records: list[dict[str, Any]], path: Path) -> Path:
    """Train (and eval, where logged) loss against optimizer step."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (trained tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_series(records: list[dict[str, Any]], key: str, path: Path) -> Path:
    """One logged value (learning rate, gradient norm) against optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["step"], r[key]) for r in records if key in r]
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    if points:
        ax.plot(*zip(*points), lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(key.replace("_", " "))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
