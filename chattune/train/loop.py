"""The training loop: accumulation normalised by trained tokens, mixed precision, clipping, schedule, hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from chattune.batching.collate import Batch, Example, collate, plan_batches
from chattune.config import TrainConfig
from chattune.errors import TrainingError, TrainingInterrupted
from chattune.train.loss import loss_and_accuracy, summed_loss
from chattune.train.optim import build_optimizer, build_scheduler
from chattune.train.state import TrainProgress, rng_state

Hook = Callable[[dict[str, Any]], None]


def _micro_batches(examples: Sequence[Example], cfg: TrainConfig, pad_id: int,
                   skip: int = 0) -> Iterator[tuple[float, Batch]]:
    """Micro-batches forever, epoch after epoch (each reshuffled from the seed), with the fractional epoch reached.

    The first `skip` are planned but not built: a resumed run continues exactly where the checkpoint left off."""
    epoch = n = 0
    while True:
        plan = plan_batches(examples, cfg.per_device_train_batch_size, packing=cfg.packing,
                            max_length=cfg.max_length, seed=cfg.seed + epoch)
        for k, rows in enumerate(plan):
            n += 1
            if n > skip:
                yield epoch + (k + 1) / len(plan), collate([[examples[i] for i in row] for row in rows], pad_id)
        epoch += 1


def count_steps(examples: Sequence[Example], cfg: TrainConfig) -> int:
    """Optimizer steps in the run: max_steps, or num_train_epochs over the micro-batch plan."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_epoch = len(plan_batches(examples, cfg.per_device_train_batch_size, packing=cfg.packing,
                                 max_length=cfg.max_length, seed=cfg.seed))
    return max(1, math.ceil(cfg.num_train_epochs * per_epoch / cfg.gradient_accumulation_steps))


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


@torch.no_grad()
def evaluate_loss(model: Any, examples: Sequence[Example], batch_size: int, pad_id: int,
                  device: torch.device, bf16: bool = False) -> dict[str, float]:
    """Mean loss, perplexity and next-token accuracy over the trained tokens of `examples`."""
    was_training = model.training
    model.eval()
    loss = correct = count = 0.0
    for rows in plan_batches(examples, batch_size, packing=False, max_length=0, seed=0):
        batch = collate([[examples[i] for i in row] for row in rows], pad_id).to(device)
        with autocast(device, bf16):
            s, c, n = loss_and_accuracy(model, batch)
        loss, correct, count = loss + s, correct + c, count + n
    model.train(was_training)
    mean = loss / max(count, 1)
    return {"eval_loss": mean, "eval_perplexity": math.exp(min(mean, 50)), "eval_accuracy": correct / max(count, 1)}


class _NotFinite(Exception):
    """The step's loss or gradient norm is NaN or infinite (raised before the optimizer touches the weights)."""


def _optimizer_step(model: Any, optimizer: Any, scheduler: Any, micro: list[Batch], cfg: TrainConfig,
                    device: torch.device, bf16: bool) -> tuple[float, float]:
    """Forward/backward over one step's micro-batches; loss normalised by the step's trained tokens."""
    trained = sum(b.num_trained for b in micro)
    total = 0.0
    for b in micro:
        with autocast(device, bf16):
            loss = summed_loss(model, b.to(device)) / max(trained, 1)
        loss.backward()
        total += loss.item()
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    if not (math.isfinite(total) and math.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        raise _NotFinite(f"loss {total}, gradient norm {grad_norm}")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, grad_norm


SaveHook = Callable[[int, dict[str, Any]], Path | None]


def train(model: Any, examples: Sequence[Example], cfg: TrainConfig, *, pad_id: int, device: torch.device,
          bf16: bool, eval_examples: Sequence[Example] | None = None, on_log: Hook | None = None,
          on_save: SaveHook | None = None, on_eval: Callable[[int], None] | None = None,
          resume: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train `model` in place and return the logged records (one per logging step, plus eval records).

    `on_save(step, state)` writes a checkpoint every save_steps (and on Ctrl-C) and returns its path;
    `resume` is a saved state: the run continues from its step with the same data, RNG and optimizer.
    A NaN or infinite loss or gradient norm stops the run before the weights change."""
    torch.manual_seed(cfg.seed)
    total_steps = count_steps(examples, cfg)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    progress = TrainProgress.restore(resume, optimizer, scheduler) if resume else TrainProgress()
    last_checkpoint = resume.get("path") if resume else None
    stream = _micro_batches(examples, cfg, pad_id, skip=progress.micro_batches)
    window: list[tuple[float, float, int]] = []  # (loss, seconds, tokens) of the steps not yet logged

    def emit(rec: dict[str, Any]) -> None:
        progress.records.append(rec)
        if on_log:
            on_log(rec)

    try:
        for step in range(progress.step + 1, total_steps + 1):
            start = time.perf_counter()
            epoch, first = next(stream)
            micro = [first] + [next(stream)[1] for _ in range(cfg.gradient_accumulation_steps - 1)]
            lr = scheduler.get_last_lr()[0]
            try:
                loss, grad_norm = _optimizer_step(model, optimizer, scheduler, micro, cfg, device, bf16)
            except _NotFinite as e:
                where = f"the last good checkpoint is {last_checkpoint} (chattune train CONFIG --resume)" \
                    if last_checkpoint else "no checkpoint was saved yet (set save_steps to keep one)"
                raise TrainingError(f"training stopped at step {step}: {e}; the weights were not updated. "
                                    f"{where}. A lower learning_rate or max_grad_norm usually helps.") from None
            step_tokens = sum(b.num_tokens for b in micro)
            progress.step, progress.micro_batches = step, progress.micro_batches + len(micro)
            progress.tokens += step_tokens
            progress.trained_tokens += sum(b.num_trained for b in micro)
            progress.rng = rng_state()  # after the step's dropout: what the next step starts from
            # a logged record covers every step since the previous one: mean loss and time, tokens/s over all
            window.append((loss, time.perf_counter() - start, step_tokens))
            if step % cfg.logging_steps == 0 or step == total_steps:
                seconds = sum(w[1] for w in window)
                emit({"step": step, "epoch": round(epoch, 4), "loss": sum(w[0] for w in window) / len(window),
                      "learning_rate": lr, "grad_norm": grad_norm, "tokens": progress.tokens,
                      "trained_tokens": progress.trained_tokens, "step_time_s": round(seconds / len(window), 4),
                      "tokens_per_s": round(sum(w[2] for w in window) / seconds, 1), "total_steps": total_steps})
                window.clear()
            if eval_examples and cfg.eval_steps and (step % cfg.eval_steps == 0 or step == total_steps):
                emit({"step": step, **evaluate_loss(model, eval_examples, cfg.per_device_eval_batch_size, pad_id,
                                                    device, bf16)})
                if on_eval:
                    on_eval(step)
            if on_save and cfg.save_steps and step % cfg.save_steps == 0 and step != total_steps:
                last_checkpoint = on_save(step, progress.snapshot(optimizer, scheduler))
    except KeyboardInterrupt:
        optimizer.zero_grad(set_to_none=True)
        saved = ""
        if on_save and progress.step > 0 and (resume is None or progress.step > resume["step"]):
            last_checkpoint = on_save(progress.step, progress.snapshot(optimizer, scheduler))
        if last_checkpoint:
            saved = f"; checkpoint {last_checkpoint} (continue with chattune train CONFIG --resume)"
        raise TrainingInterrupted(f"interrupted after step {progress.step}{saved}") from None
    model.eval()
    return progress.records
