"""Run lm-evaluation-harness on a model chattune has loaded, and read its figures back.

chattune loads the model its own way (local dir, .gguf, the default model offline, an adapter,
device, dtype) and hands it to lm-eval's HFLM; prompts, metrics and standard errors are lm-eval's.
The settings that decide a figure are lm_eval's CLI defaults (seeds 0/1234/1234/1234, the model's
own max length, few-shot examples as turns of the chat when the chat template is on), so `lm_eval
--model hf` gives the same numbers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from chattune.eval.tasks import resolve_tasks


@dataclass(frozen=True)
class Score:
    """One metric of one task: its value and lm-eval's standard error (None where lm-eval gives
    none)."""

    value: float
    stderr: float | None


@dataclass
class BenchmarkResults:
    """{task: {metric: Score}} (a metric with a filter is named "metric,filter", e.g.
    "exact_match,strict-match"), the number of items each task scored, and the settings that decide
    the figures."""

    scores: dict[str, dict[str, Score]]
    samples: dict[str, int]
    settings: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """Each task's metrics under its name (value, `<metric>_stderr`, items scored), and the
        settings."""
        tasks = {task: {**{m: s.value for m, s in metrics.items()},
                        **{f"{m}_stderr": s.stderr for m, s in metrics.items()},
                        "samples": self.samples.get(task)}
                 for task, metrics in self.scores.items()}
        return {**tasks, "settings": self.settings}


def read_scores(results: dict[str, Any]) -> dict[str, dict[str, Score]]:
    """lm-eval's results["results"] ({"acc,none": v, "acc_stderr,none": se, ...}) as Scores."""
    out: dict[str, dict[str, Score]] = {}
    for task, row in results["results"].items():
        metrics = {}
        for key, value in row.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = row.get(f"{metric}_stderr,{filt}")  # "N/A" where lm-eval could not compute one
            metrics[metric if filt == "none" else key] = Score(
                float(value), float(stderr) if isinstance(stderr, (int, float)) else None)
        out[task] = metrics
    return out


def run_benchmarks(model: Any, tokenizer: Any, tasks: Sequence[str | dict[str, Any]], *,
                   limit: int | float | None = None, num_fewshot: int | None = None,
                   chat_template: bool | None = None, batch_size: int = 16,
                   full: bool = False) -> BenchmarkResults:
    """Score `model` on `tasks` (shipped names, lm-eval names, task YAML paths; "default" for the
    default set).
    `chat_template` None: on where the tokenizer has one. The model comes back in the mode it had,
    and the random generators lm-eval reseeds are restored."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    specs = resolve_tasks(tasks, full=full)
    if chat_template is None:
        chat_template = bool(getattr(tokenizer, "chat_template", None))
    # lm-eval's index of its own ~15,000 task names costs seconds; only when one of them is asked
    # for
    manager = TaskManager(include_defaults=any(isinstance(s, str) for s in specs))
    was_training, states = (model.training,
                            (random.getstate(), np.random.get_state(), torch.get_rng_state()))
    # HFLM warns that a loaded model (not a path) makes its loading arguments moot: chattune loaded
    # it on purpose
    logging.getLogger("lm_eval.models.huggingface").setLevel(logging.ERROR)
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        results = simple_evaluate(model=lm, tasks=specs, limit=limit, num_fewshot=num_fewshot,
                                  task_manager=manager, apply_chat_template=chat_template,
                                  fewshot_as_multiturn=chat_template, log_samples=False,
                                  random_seed=0, numpy_random_seed=1234, torch_random_seed=1234,
                                  fewshot_random_seed=1234)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        model.train(was_training)
    samples = {task: int(n.get("effective", n.get("original", 0)))
               for task, n in results.get("n-samples", {}).items()}
    settings = {"limit": limit, "num_fewshot": num_fewshot, "chat_template": chat_template,
                "batch_size": batch_size, "full": full, "lm_eval": _lm_eval_version()}
    return BenchmarkResults(read_scores(results), samples, settings)


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")
