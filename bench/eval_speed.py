"""Benchmark: `chattune eval --tasks` against lm-evaluation-harness's own CLI, same model, tasks and
items, one run.

Both score the same task YAMLs (chattune's shipped subsets, written out with absolute data paths so
lm_eval's CLI, which reads relative paths from its working directory, finds them too) on the default
model in fp32 on the CPU. lm_eval runs with its default batch size (1) and with chattune's (16);
every figure must agree.

    .venv/bin/python bench/eval_speed.py [--tasks gsm8k,ifeval,truthfulqa_mc1] [--limit 8] [--out
    FILE]

Prints wall-clock seconds (process start to exit: model load, task set-up, scoring), the ratios, and
writes the figures as JSON (bench/results/eval_speed.json by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def absolute_tasks(names: list[str], folder: Path) -> list[Path]:
    """Each shipped task's folder copied to `folder`, its YAML's data_files made absolute (same
    content)."""
    import yaml

    from chattune.eval.tasks import shipped_tasks

    paths = []
    for name in names:
        source = shipped_tasks()[name]
        target = folder / source.parent.name
        if not target.exists():
            shutil.copytree(source.parent, target)
        text = source.read_text()
        cfg = yaml.safe_load("\n".join(line for line in text.splitlines()
                                       if "!function" not in line))
        for split, file in ((cfg.get("dataset_kwargs") or {}).get("data_files") or {}).items():
            text = text.replace(f"{split}: {file}", f"{split}: {target / file}")
        (target / source.name).write_text(text)
        paths.append(target / source.name)
    return paths


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def lm_eval_figures(out: Path) -> dict[str, dict[str, float]]:
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    return {task: {k.replace(",none", ""): v for k, v in row.items()
                   if isinstance(v, (int, float)) and "," in k}
            for task, row in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="gsm8k,ifeval,truthfulqa_mc1")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval_speed.json"))
    args = parser.parse_args()
    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import resolve_model_path

    model_dir = resolve_model_path(DEFAULT_MODEL)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp())
    tasks = ",".join(map(str, absolute_tasks(args.tasks.split(","), work)))
    common = ["--limit", str(args.limit), "--apply_chat_template", "--device", "cpu"]
    ours = work / "chattune.json"
    seconds = {"chattune": timed([str(BIN / "chattune"), "eval", str(model_dir), "--tasks", tasks,
                                  "--limit", str(args.limit), "--device", "cpu", "--dtype",
                                  "float32", "--out", str(ours)], env)}
    figures = {"chattune": {t: v for t, v in json.loads(ours.read_text()).items()
                            if t != "settings"}}
    for batch in (1, 16):
        out = work / f"lm-eval-{batch}"
        seconds[f"lm_eval batch {batch}"] = timed(
            [str(BIN / "lm_eval"), "--model", "hf", "--model_args",
             f"pretrained={model_dir},dtype=float32", "--tasks",
             tasks, "--batch_size", str(batch), "--output_path", str(out), *common], env)
        figures[f"lm_eval batch {batch}"] = lm_eval_figures(out)
    agree = {name: all(figures["chattune"][t][m] == v for t, row in fig.items()
                       for m, v in row.items()
                       if m in figures["chattune"][t]) for name, fig in figures.items()
             if name != "chattune"}
    ratios = {name: round(s / seconds["chattune"], 2) for name, s in seconds.items()
              if name != "chattune"}
    for name, s in seconds.items():
        print(f"{name:>18}: {s:7.1f} s"
              + (f"  ({ratios[name]:.2f}x chattune's time; same figures: {agree[name]})"
                 if name in ratios else ""))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               "")
    record = {"tasks": args.tasks, "limit": args.limit, "seconds": seconds,
              "lm_eval_time_over_chattune": ratios, "same_figures": agree, "figures": figures,
              "cpu": cpu, "cores": os.cpu_count(),
              "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
