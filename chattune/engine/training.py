"""A run's training with everything it writes on the way, for `chattune train` and SFTTrainer alike:
metrics.jsonl and the console, trackers, checkpoints, eval answers; then the final save, insured by
the last checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from chattune.batching.collate import Example
from chattune.config import TrainArgs
from chattune.errors import ChattuneError, TrainingError
from chattune.eval.loss import loss_evaluator
from chattune.generate import generate_from_ids
from chattune.labels import IGNORE_INDEX, first_trained
from chattune.model.load import (
    load_trained_weights,
)
from chattune.outputs.checkpoint import Checkpointer, latest_checkpoint
from chattune.outputs.metrics import MetricsLog
from chattune.outputs.save import save_pretrained_atomic
from chattune.outputs.show import prompt_as_text
from chattune.outputs.trackers import Trackers
from chattune.train.dist import Dist
from chattune.train.loop import EvalFn, train
from chattune.train.state import ResumeState


@dataclass
class EvalPrompt:
    """An eval example cut where its first answer starts, with that answer as the reference."""

    ids: list[int]
    reference: list[int]


def eval_prompts(examples: list[Example] | None, n: int) -> list[EvalPrompt]:
    """The first n eval examples cut where their first trained token starts (prompts ending with the
    generation prompt, answered at each eval), each with the trained tokens of that first answer."""
    prompts = []
    for ex in (examples or [])[:n]:
        first = first_trained(ex.labels)
        if first:
            end = next((i for i in range(first, len(ex.labels)) if ex.labels[i] == IGNORE_INDEX),
                       len(ex.labels))
            prompts.append(EvalPrompt(ex.input_ids[:first], ex.labels[first:end]))
    return prompts


def _answered(tokenizer: Any, prompts: list[EvalPrompt],
              replies: list[str]) -> list[dict[str, str]]:
    """Eval answers as metrics.jsonl and the report keep them: the conversation so far, the
    reference, the reply."""
    return [{"prompt": prompt_as_text(tokenizer, p.ids),
             "reference": tokenizer.decode(p.reference, skip_special_tokens=True).strip(),
             "reply": r}
            for p, r in zip(prompts, replies)]


def train_with_outputs(model: Any, tokenizer: Any, examples: list[Example], cfg: TrainArgs, *,
                       total_steps: int, device: Any,
                  dtype: torch.dtype | None, stops: list[int], console: Console,
                  eval_examples: list[Example] | None = None,
                  resumed: ResumeState | None = None, dist: Dist | None = None,
                  eval_prompts: list[EvalPrompt] | None = None, save_last: bool = False,
                  evaluate: EvalFn | None = None,
                       on_step: Callable[[int, float], bool] | None = None,
                  on_record: Callable[[dict[str, Any]], None] | None = None,
                  hparams: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train with what every run writes: metrics.jsonl and the console, the configured trackers,
    checkpoints (every save_steps and on Ctrl-C; kept by save_total_limit and, when asked, the
    best), answers to `eval_prompts` at each eval; then load the best checkpoint's weights when
    load_best_model_at_end says so.
    `evaluate`, `on_step`: as train() takes them; `on_record` sees each logged record after it is
    written; `hparams`: what the trackers record as the run's configuration (default: the
    TrainArgs). A process other than the main one (`dist`) only trains its share."""
    if eval_examples and evaluate is None:
        evaluate = loss_evaluator(model, cfg.per_device_eval_batch_size, tokenizer.pad_token_id,
                                  device, dtype, dist)
    # the others train their share; the main process writes
    if dist is not None and not dist.is_main:
        return train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=device,
                     dtype=dtype, eval_examples=eval_examples, resume=resumed, dist=dist,
                     evaluate=evaluate, on_step=on_step, save_last=save_last,
                     total_steps=total_steps)
    out = Path(cfg.output_dir)
    checkpointer = _checkpointer(model, tokenizer, cfg, stops, resumed, hparams, console)
    trackers = Trackers(cfg.report_to, out, hparams or cfg.model_dump())
    try:
        with MetricsLog(out / "metrics.jsonl", total_steps, console,
                        earlier=resumed.records if resumed else None) as log:

            def on_log(rec: dict[str, Any]) -> None:
                log(rec)
                trackers.log(rec)
                if on_record:
                    on_record(rec)

            def on_eval(step: int) -> None:
                if eval_prompts:
                    replies = generate_from_ids(model, tokenizer, [p.ids for p in eval_prompts],
                                                stops=stops, max_new_tokens=cfg.eval_max_new_tokens)
                    model.train()  # generation switched it to eval mode
                    log({"step": step, "generations": _answered(tokenizer, eval_prompts, replies)})

            records = train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=device,
                            dtype=dtype, eval_examples=eval_examples, on_log=on_log,
                            on_save=checkpointer, on_eval=on_eval, resume=resumed, dist=dist,
                            save_last=save_last, evaluate=evaluate, on_step=on_step,
                            total_steps=total_steps)
    finally:
        trackers.close()
    if cfg.load_best_model_at_end and checkpointer.best:
        load_trained_weights(model, checkpointer.best[1])
        console.print(f"loaded the best checkpoint {checkpointer.best[1]} (eval loss "
                      f"{checkpointer.best[0]:.4f})")
    return records


def _checkpointer(model: Any, tokenizer: Any, cfg: TrainArgs, stops: list[int],
                  resumed: ResumeState | None, hparams: dict[str, Any] | None,
                  console: Console) -> Checkpointer:
    """The run's checkpoint writer (it removes what a killed run half-wrote, and says so)."""
    checkpointer = Checkpointer(Path(cfg.output_dir), model, tokenizer, stops,
                                limit=cfg.save_total_limit, keep_best=cfg.load_best_model_at_end,
                                records=resumed.records if resumed else None, config=hparams)
    if checkpointer.removed:
        console.print("removed half-written checkpoint folders of a stopped run: "
                      + ", ".join(p.name for p in checkpointer.removed))
    return checkpointer


def last_good_copy(out: Path, error: Exception, total_steps: int | None = None,
                   final_dir: Path | None = None) -> TrainingError:
    """A failed save of the final weights, with where the last good copy of them is: the newest
    checkpoint in `out` (with the steps it lacks of `total_steps`, and how to use it in place of
    `final_dir`)."""
    last = latest_checkpoint(out)
    if last is None:
        return TrainingError(f"{error}; no checkpoint holds the trained weights (the one written "
                             "before the save failed too)" if total_steps
                             else f"{error}; no checkpoint holds the trained weights")
    if total_steps is None or final_dir is None:
        return TrainingError(f"{error}; the last checkpoint of the weights is {last}")
    step = int(last.name.removeprefix("checkpoint-"))
    lost = f"; the {total_steps - step} later steps are lost" if step < total_steps else ""
    return TrainingError(f"{error}; the last good copy of the weights is {last} (step {step} of "
                         f"{total_steps}{lost}): load it as the {final_dir.name} directory, or "
                         "free space and run chattune train CONFIG --resume to save it again")


def save_final(model: Any, tokenizer: Any, final_dir: Path, stops: list[int], total_steps: int, *,
               insured: bool, state_dict: dict[str, Any] | None = None) -> None:
    """Save the trained adapter/model atomically. When that fails, the TrainingError says where the
    last good copy of the weights is; `insured`: the last step was checkpointed only for this, and
    the checkpoint goes once the save has succeeded."""
    try:
        save_pretrained_atomic(model, tokenizer, final_dir, stops, state_dict)
    except ChattuneError as e:
        raise last_good_copy(final_dir.parent, e, total_steps, final_dir) from None
    last = latest_checkpoint(final_dir.parent)
    if insured and last is not None and last.name == f"checkpoint-{total_steps}":
        shutil.rmtree(last, ignore_errors=True)
