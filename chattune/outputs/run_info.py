"""What a run is, said in its first lines and kept in run.json for the report and the model cards:
chattune's version, the date, the model, method, template, data files, device and precision."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RUN_INFO_FILE = "run.json"


def chattune_version() -> str:
    try:
        return version("chattune")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from chattune import __version__

        return __version__


@dataclass
class RunInfo:
    """The run's identity, in the words the console, report.html and the model cards use."""

    model: str
    method: str
    template: str
    data: list[str]
    device: str
    precision: str
    eval_data: list[str] = field(default_factory=list)
    model_path: str | None = None  # where the model was read from, when not what the user named
    chattune: str = field(default_factory=chattune_version)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"))

    def lines(self) -> list[str]:
        """The run's first lines on the console."""
        model = self.model + (f" (read from {self.model_path})" if self.model_path else "")
        out = [f"chattune {self.chattune}, {self.started}", f"model: {model}",
               f"method: {self.method}",
               f"template: {self.template}", f"data: {'; '.join(self.data)}"]
        if self.eval_data:
            out.append(f"eval data: {'; '.join(self.eval_data)}")
        out.append(f"device: {self.device}, precision: {self.precision}")
        return out

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for report.html's summary."""
        rows = [("model", self.model), ("method", self.method), ("template", self.template),
                ("data", "; ".join(self.data))]
        if self.eval_data:
            rows.append(("eval data", "; ".join(self.eval_data)))
        return rows + [("device", self.device), ("precision", self.precision),
                       ("started", self.started), ("chattune", self.chattune)]

    def write(self, out_dir: Path) -> Path:
        path = Path(out_dir) / RUN_INFO_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def read_run_info(out_dir: Path) -> RunInfo | None:
    """run.json of a run folder, None when absent or unreadable (runs of older versions have
    none)."""
    path = Path(out_dir) / RUN_INFO_FILE
    try:
        values: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return RunInfo(**{k: v for k, v in values.items() if k in RunInfo.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
