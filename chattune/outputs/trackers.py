"""Experiment trackers named in `report_to`: TensorBoard, Weights & Biases, MLflow, trackio.

Each is an optional extra, imported only when asked for; one that is asked for and missing is a
config error before training starts, naming the package to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from chattune.errors import ConfigError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
            "trackio": "trackio"}
SKIPPED_KEYS = {"step", "total_steps", "epoch"}


def _numbers(rec: dict[str, Any]) -> dict[str, float]:
    prefix = "eval/" if any(k.startswith("eval_") for k in rec) else "train/"
    return {prefix + k.removeprefix("eval_"): float(v) for k, v in rec.items()
            if k not in SKIPPED_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardTracker:
    def __init__(self, out_dir: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
        self.writer.add_text("config", f"```\n{config}\n```")

    def log(self, rec: dict[str, Any]) -> None:
        for key, value in _numbers(rec).items():
            self.writer.add_scalar(key, value, rec["step"])

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, out_dir: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project="chattune", dir=str(out_dir), config=config)

    def log(self, rec: dict[str, Any]) -> None:
        self.wandb.log(_numbers(rec), step=rec["step"])

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, out_dir: Path, config: dict[str, Any]):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run()
        mlflow.log_params({k: str(v)[:500] for k, v in config.items()})

    def log(self, rec: dict[str, Any]) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in _numbers(rec).items()},
                                step=rec["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class TrackioTracker:
    def __init__(self, out_dir: Path, config: dict[str, Any]):
        import trackio

        self.trackio = trackio
        trackio.init(project="chattune", config=config)

    def log(self, rec: dict[str, Any]) -> None:
        self.trackio.log(_numbers(rec), step=rec["step"])

    def close(self) -> None:
        self.trackio.finish()


TRACKERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker,
            "trackio": TrackioTracker}


def check_trackers(names: list[str]) -> None:
    """Every tracker asked for is installed, or one ConfigError naming what to install."""
    missing = [n for n in names if importlib.util.find_spec(PACKAGES[n]) is None]
    if missing:
        raise ConfigError([f"report_to: {n} is asked for but not installed; pip install "
                           f"'chattune[{n}]' (or pip install {PACKAGES[n]})" for n in missing])


class Trackers:
    """All trackers of a run behind one log/close."""

    def __init__(self, names: list[str], out_dir: Path, config: dict[str, Any]):
        check_trackers(names)
        flat = {k: v for k, v in config.items() if not isinstance(v, dict)}
        flat.update({f"{k}.{sub}": v for k, section in config.items() if isinstance(section, dict)
                     for sub, v in section.items()})
        self.trackers = [TRACKERS[n](out_dir, flat) for n in names]

    def log(self, rec: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log(rec)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
