"""The training loop: accumulation normalised by trained tokens, mixed precision, clipping,
schedule, hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from chattune.batching.collate import (
    Batch,
    Example,
    collate,
    collate_padding_free,
    plan_batches,
    split_by_length,
)
from chattune.config import TrainArgs
from chattune.errors import TrainingError, TrainingInterrupted
from chattune.model.device import autocast, memory_stats
from chattune.train.dist import Dist
from chattune.train.health import Guard, Unhealthy
from chattune.train.heap import kept_heap
from chattune.train.linear_ce import kept_logits_buffers
from chattune.train.loss import summed_loss_and_correct
from chattune.train.optim import build_optimizer, build_scheduler
from chattune.train.speed import CompiledLayers
from chattune.train.state import ResumeState, TrainProgress, rng_state

Hook = Callable[[dict[str, Any]], None]


Plan = list[list[int]]  # one micro-batch: rows of example indices
# one optimizer step: its gradient_accumulation_steps x world micro-batches, micro-batch j on
# process j % world; None where a short last step of an epoch leaves a process without rows
Step = list[Plan | None]


def _steps(examples: Sequence[Example], cfg: TrainArgs, world: int,
           skip: int = 0) -> Iterator[tuple[float, Step]]:
    """Step plans forever, epoch after epoch (each reshuffled from the seed), with the fractional
    epoch.

    Every process walks the same stream (the global order); the first `skip` steps are passed over,
    so a resumed run continues exactly where its checkpoint left off."""
    epoch = n = 0
    while True:
        plan = epoch_plan(examples, cfg, cfg.seed + epoch, world)
        for k, step in enumerate(plan):
            n += 1
            if n > skip:
                yield epoch + (k + 1) / len(plan), step
        epoch += 1


def epoch_plan(examples: Sequence[Example], cfg: TrainArgs, seed: int,
               world: int = 1) -> list[Step]:
    """One epoch's steps. The global batch (per_device_train_batch_size x
    gradient_accumulation_steps x world rows or packed rows) is planned first and then split into
    micro-batches, so a step trains the same rows whatever the number of processes and accumulation
    steps it is spread over. With max_tokens_per_batch the token budget is per micro-batch:
    micro-batches are planned, then grouped into steps."""
    per_step = cfg.gradient_accumulation_steps * world
    size = cfg.per_device_train_batch_size
    if cfg.max_tokens_per_batch:
        micro = plan_batches(examples, size, packing=cfg.packing, max_length=cfg.max_length,
                             seed=seed, max_tokens=cfg.max_tokens_per_batch,
                             padding_free=cfg.padding_free)
        groups = [micro[i:i + per_step] for i in range(0, len(micro), per_step)]
    else:
        steps = plan_batches(examples, size * per_step, packing=cfg.packing,
                             max_length=cfg.max_length, seed=seed, padding_free=cfg.padding_free)
        groups = [[rows[i:i + size] for i in range(0, len(rows), size)] for rows in steps]
    return [group + [None] * (per_step - len(group)) for group in groups]


def count_steps(examples: Sequence[Example], cfg: TrainArgs, world: int = 1) -> int:
    """Optimizer steps in the run: max_steps, or num_train_epochs over the epoch's steps."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.num_train_epochs * len(epoch_plan(examples, cfg, cfg.seed, world))))


class SummedLoss(torch.nn.Module):
    """The model with chattune's loss as its forward, so DDP/FSDP wrap the call that runs the model
    (their gradient hooks are set up in forward) while the LM head still runs only on trained
    positions."""

    def __init__(self, model: Any, loss_type: str = "nll"):
        super().__init__()
        self.model, self.loss_type = model, loss_type

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor,
                trained_index: torch.Tensor | None = None) -> torch.Tensor:
        return summed_loss_and_correct(self.model,
                                       Batch(input_ids, labels, position_ids, 0, 0, trained_index),
                                       self.loss_type)


def _accuracy(window: list[tuple[float, float, int, float, int]]) -> dict[str, float]:
    """TRL's mean_token_accuracy over the logged steps (absent where the fused loss gives no
    predictions)."""
    correct, trained = sum(w[3] for w in window), sum(w[4] for w in window)
    return {"mean_token_accuracy": correct / trained} if trained and math.isfinite(correct) else {}


def _my_micro_batches(plans: Step, examples: Sequence[Example], dist: Dist,
                      lay_out: Callable[[list[list[Example]]], Batch],
                      split: bool = False) -> list[tuple[Batch, float]]:
    """This process's micro-batches of the step, each with its weight in the loss. A process left
    without rows by a short last step still runs the step's first micro-batch with weight 0 (its
    collectives must run). `split` (one process): padded micro-batches of rows of unlike lengths
    run in parts of like lengths (`split_by_length`)."""
    mine = plans[dist.rank::dist.world]
    if dist.world == 1:
        parts = [part for rows in mine if rows
                 for part in (split_by_length(rows, examples) if split else [rows])]
        return [(lay_out([[examples[i] for i in row] for row in rows]), 1.0) for rows in parts]
    spare = plans[0]
    return [(lay_out([[examples[i] for i in row] for row in rows or spare]), 1.0 if rows else 0.0)
            for rows in mine]


def _split_micro_batches(cfg: TrainArgs, device: torch.device) -> bool:
    """Whether padded micro-batches run in parts of like lengths: on a CPU, where padding costs as
    much compute as a token (on a GPU they stay whole until splitting is measured there)."""
    return device.type == "cpu" and not cfg.padding_free


@contextmanager
def _memory_kept(device: torch.device) -> Iterator[None]:
    """While training, the memory one step frees is kept for the next: the LM head's buffers, and
    on a CPU glibc's freed heap (neither paged in again each step)."""
    with kept_logits_buffers(), kept_heap(device):
        yield


def _offloaded(cfg: TrainArgs, device: torch.device) -> Any:
    """TRL's activation_offloading: tensors saved for backward wait in (pinned) CPU memory."""
    if not cfg.activation_offloading:
        return nullcontext()
    return torch.autograd.graph.save_on_cpu(pin_memory=device.type == "cuda")


def _optimizer_step(wrapped: Any, optimizer: Any, scheduler: Any, micro: list[tuple[Batch, float]],
                    trained: int, cfg: TrainArgs, device: torch.device, dtype: torch.dtype | None,
                    dist: Dist, scaler: Any = None,
                    guard: Guard | None = None) -> tuple[float, float, float]:
    """Forward/backward over this process's micro-batches of the step; the loss is normalised by the
    trained tokens of the whole step on every process. Returns the step's loss (summed over
    processes), grad norm, and correct next-token predictions (summed over processes; NaN where the
    loss is fused).

    With fp16 loss scaling (`scaler`), a step whose scaled gradients overflow is skipped and the
    scale lowered, as GradScaler does; only a non-finite loss stops the run. `guard` raises
    Unhealthy before the weights change when the loss, the gradient or the weights the previous step
    wrote are not finite, or the run has collapsed."""
    guard = guard or Guard(None, 0)
    # [loss, correct predictions, squared norm of the weights the previous step wrote]
    total = torch.cat([torch.zeros((2,), device=device), guard.carry(device).float()[None]])
    for k, (b, weight) in enumerate(micro):
        b = b.to(device, non_blocking=True)
        with (dist.no_sync(wrapped, sync=k == len(micro) - 1), autocast(device, dtype),
              _offloaded(cfg, device)):
            out = wrapped(b.input_ids, b.labels, b.position_ids, b.trained_index) * weight
            # DDP averages gradients over processes: scaling by their number makes that average a
            # sum
            loss = out[0] / (max(trained, 1) / dist.world)
            (scaler.scale(loss) if scaler else loss).backward()
        # stays on the device: no host sync per micro-batch
        total[:2] += torch.stack([loss.detach().float() / dist.world, out[1].detach().float()])
    if scaler:
        scaler.unscale_(optimizer)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
    norm = dist.clip_grad_norm(wrapped, params, max_norm)
    # the step's one host sync: these values are needed before the optimizer may touch the weights
    total, correct, written, grad_norm = torch.cat([dist.sum_tensor(total),
                                                    norm.detach().float().to(device)[None]]).tolist()
    try:
        guard.check(total, grad_norm, written, overflow_ok=scaler is not None)
    except Unhealthy:
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.update()
        raise
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    guard.wrote(params)
    return total, grad_norm, correct


SaveHook = Callable[[int, dict[str, Any]], Path | None]


def _checkpoint(on_save: SaveHook | None, step: int, progress: TrainProgress, wrapped: Any,
                optimizer: Any, scheduler: Any, scaler: Any, cfg: TrainArgs, dist: Dist,
                guard: Guard) -> Path | None:
    """A checkpoint of the step. Under FSDP every process first checks the weights with the others
    and writes its shards of the weights and optimizer state (torch.distributed.checkpoint); the
    main process's `on_save` then writes the rest around them."""
    if not dist.sharded:
        return on_save(step, progress.snapshot(optimizer, scheduler, scaler)) if on_save else None
    from chattune.train.fsdp import save_shards

    guard.check_before_saving(step)
    shards = save_shards(wrapped, optimizer, Path(cfg.output_dir), step)
    path = (on_save(step, {**progress.snapshot(None, scheduler, scaler), "shards": str(shards)})
            if on_save else None)
    dist.barrier()  # the others wait until the checkpoint is in place
    return path


# metrics of one eval set (its name, its examples), keys prefixed eval_ (eval_<name>_ for a named
# set)
EvalFn = Callable[[str, Sequence[Example]], dict[str, float]]


def _enable_checkpointing(model: Any, cfg: TrainArgs) -> None:
    """Gradient checkpointing as configured (transformers' own, non-reentrant unless told
    otherwise)."""
    if not cfg.checkpointing:
        return
    kwargs = cfg.gradient_checkpointing_kwargs or {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.20's name for it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


@dataclass
class Hooks:
    """What a caller hears of a run: records (`on_log`), checkpoints to write every save_steps and
    on Ctrl-C (`on_save(step, state)`, returning the path), evals (`on_eval(step)` after each eval),
    each finished step (`on_step(step, epoch)`, after its logging, eval and checkpoint; True stops
    the run), and how an eval set is scored (`evaluate(name, examples)`:
    chattune.eval.loss.loss_evaluator gives loss, perplexity, accuracy)."""

    on_log: Hook | None = None
    on_save: SaveHook | None = None
    on_eval: Callable[[int], None] | None = None
    on_step: Callable[[int, float], bool] | None = None
    evaluate: EvalFn | None = None


@dataclass
class _Loop:
    """One run of the loop: the wrapped model, optimizer, schedule, health guard and progress every
    step reads."""

    model: Any
    cfg: TrainArgs
    total_steps: int
    device: torch.device
    dtype: torch.dtype | None
    dist: Dist
    hooks: Hooks
    resume: ResumeState | None
    wrapped: Any = None
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None
    guard: Guard | None = None
    progress: TrainProgress = field(default_factory=TrainProgress)
    last_checkpoint: Path | None = None
    grad_norm: float = 0.0  # of the last step
    # (loss, seconds, tokens, correct, trained) of the steps not yet logged
    window: list[tuple[float, float, int, float, int]] = field(default_factory=list)

    def start(self) -> None:
        """Wrap the model, build the optimizer and schedule, put a resumed state back."""
        cfg, resume = self.cfg, self.resume
        self.wrapped = self.dist.wrap(SummedLoss(self.model, cfg.loss_type), self.model, self.dtype)
        self.optimizer = build_optimizer(self.wrapped, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.scaler = (torch.amp.GradScaler(self.device.type)
                       if self.dtype == torch.float16 else None)
        # FSDP: weights and optimizer state from each process's shards
        if resume and resume.sharded:
            from chattune.train.fsdp import SHARDS, load_shards

            load_shards(self.wrapped, self.optimizer, resume.path / SHARDS)
        if resume:
            self.progress = TrainProgress.restore(resume, self.optimizer, self.scheduler,
                                                  self.scaler)
        self.guard = Guard(self.model, self.total_steps, self.progress.step,
                           resume.path if resume else None, dist=self.dist)
        if self.hooks.on_save:  # only checked weights are called a good checkpoint
            self.hooks.on_save = self.guard.saving(self.hooks.on_save)
        self.last_checkpoint = resume.path if resume else None

    def step(self, step: int, docs: list[Example], micro: list[tuple[Batch, float]],
             start: float) -> float:
        """One optimizer step over this process's micro-batches (planned from `start`, a
        perf_counter time); returns the learning rate it used."""
        lr = self.scheduler.get_last_lr()[0]
        step_tokens = sum(len(d.input_ids) for d in docs)
        # the whole step's, known to every process from the plan
        trained = sum(d.num_trained for d in docs)
        try:
            loss, grad_norm, correct = _optimizer_step(self.wrapped, self.optimizer, self.scheduler,
                                                       micro, trained, self.cfg, self.device,
                                                       self.dtype, self.dist, self.scaler,
                                                       self.guard)
        except Unhealthy as e:
            raise TrainingError(self.guard.message(step, e)) from None
        p = self.progress
        p.step, p.micro_batches = (step,
                                   p.micro_batches + self.cfg.gradient_accumulation_steps
                                   * self.dist.world)
        p.tokens, p.trained_tokens = p.tokens + step_tokens, p.trained_tokens + trained
        p.rng = rng_state()  # after the step's dropout: what the next step starts from
        self.window.append((loss, time.perf_counter() - start, step_tokens, correct, trained))
        self.grad_norm = grad_norm
        return lr

    def emit(self, rec: dict[str, Any]) -> None:
        self.progress.records.append(rec)
        if self.hooks.on_log:
            self.hooks.on_log(rec)

    def log(self, step: int, epoch: float, lr: float) -> None:
        """A record of every step since the previous one: mean loss and time, tokens/s over all of
        them."""
        cfg, window = self.cfg, self.window
        if not (step % cfg.logging_steps == 0 or step == self.total_steps
                or (step == 1 and cfg.logging_first_step)):
            return
        seconds = sum(w[1] for w in window)
        self.emit({"step": step, "epoch": round(epoch, 4),
                   "loss": sum(w[0] for w in window) / len(window),
                   "learning_rate": lr, "grad_norm": self.grad_norm, "tokens": self.progress.tokens,
                   "trained_tokens": self.progress.trained_tokens,
                   "step_time_s": round(seconds / len(window), 4),
                   "tokens_per_s": round(sum(w[2] for w in window) / seconds, 1),
                   **memory_stats(self.device),
                   **_accuracy(window), "total_steps": self.total_steps})
        window.clear()

    def evaluate(self, step: int, eval_sets: dict[str, Sequence[Example]],
                 compiled: CompiledLayers) -> None:
        if not (eval_sets and self.cfg.eval_steps and (step % self.cfg.eval_steps == 0
                                                       or step == self.total_steps)):
            return
        for name, exs in eval_sets.items():  # a record per set, as transformers.Trainer logs them
            self.emit({"step": step, **self.hooks.evaluate(name, exs)})
        if self.hooks.on_eval:
            with compiled.eager():
                self.hooks.on_eval(step)

    def save(self, step: int, save_last: bool) -> None:
        every, last = self.cfg.save_steps, step == self.total_steps
        if every and ((step % every == 0 and not last) or (last and save_last)):
            path = _checkpoint(self.hooks.on_save, step, self.progress, self.wrapped,
                               self.optimizer, self.scheduler, self.scaler, self.cfg, self.dist,
                               self.guard)
            self.last_checkpoint = path or self.last_checkpoint

    def interrupted(self) -> TrainingInterrupted:
        """Ctrl-C: a checkpoint of the last finished step where it is not saved yet (not under FSDP:
        its shards need every process, and Ctrl-C reaches them at different moments), and what to do
        next."""
        self.optimizer.zero_grad(set_to_none=True)
        p, on_save = self.progress, self.hooks.on_save
        unsaved = p.step > 0 and (self.resume is None or p.step > self.resume.step)
        if on_save and not self.dist.sharded and unsaved:
            self.last_checkpoint = on_save(p.step,
                                           p.snapshot(self.optimizer, self.scheduler, self.scaler))
        saved = (f"; checkpoint {self.last_checkpoint} (continue with chattune train CONFIG "
                 "--resume)"
                 if self.last_checkpoint else "")
        return TrainingInterrupted(f"interrupted after step {p.step}{saved}")


def train(model: Any, examples: Sequence[Example], cfg: TrainArgs, *, pad_id: int,
          device: torch.device, dtype: torch.dtype | None = None,
          eval_examples: Sequence[Example] | dict[str, Sequence[Example]] | None = None,
          on_log: Hook | None = None, on_save: SaveHook | None = None,
          on_eval: Callable[[int], None] | None = None,
          resume: ResumeState | None = None, dist: Dist | None = None, save_last: bool = False,
          evaluate: EvalFn | None = None, on_step: Callable[[int, float], bool] | None = None,
          total_steps: int | None = None) -> list[dict[str, Any]]:
    """Train `model` in place and return the logged records (one per logging step, plus eval
    records).

    `resume`: a saved state; the run continues from its step with the same data, RNG and optimizer.
    `dtype`: the compute dtype (bf16/fp16 autocast; fp16 adds loss scaling), None for fp32.
    `total_steps`: as count_steps gives it (computed here when not given). A non-finite loss or
    gradient norm stops the run before the weights change. Each step's global batch is planned, then
    split into A*W micro-batches (A accumulation steps, W processes in `dist`), micro-batch j on
    process j mod W: any A and W with the same global batch train the same rows. Hooks: see `Hooks`;
    `save_last` checkpoints the last step too, whatever save_steps (as transformers' Trainer does;
    chattune's own runs save it as the final model)."""
    if not isinstance(cfg, TrainArgs):
        raise TypeError("train() takes the loop's TrainArgs (TrainConfig.train_args() gives them)")
    dist = dist or Dist()
    if eval_examples and evaluate is None:
        raise TypeError("train(): eval_examples need `evaluate` (chattune.eval.loss.loss_evaluator "
                        "gives the loss)")
    torch.manual_seed(cfg.seed)
    total_steps = total_steps or count_steps(examples, cfg, dist.world)
    # several named eval sets (TRL's dict of eval datasets) are logged as eval_<name>_loss, ...
    eval_sets = (dict(eval_examples) if isinstance(eval_examples, dict) else {"": eval_examples}
                 if eval_examples else {})
    _enable_checkpointing(model, cfg)
    model.train()
    loop = _Loop(model, cfg, total_steps, device, dtype, dist,
                 Hooks(on_log, on_save, on_eval, on_step, evaluate), resume)
    loop.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # the stream is a sequence of global steps whatever the number of processes, so a checkpoint
    # resumes at its step on another world size too (micro-batches are counted per world: they would
    # skip too far)
    stream = _steps(examples, cfg, dist.world, skip=loop.progress.step)
    lay_out = collate_padding_free if cfg.padding_free else collate
    with CompiledLayers(model, cfg.compile) as compiled, _memory_kept(device):
        try:
            for step in range(loop.progress.step + 1, total_steps + 1):
                start = time.perf_counter()
                epoch, plans = next(stream)
                docs = [examples[i] for rows in plans if rows for row in rows for i in row]
                micro = _my_micro_batches(plans, examples, dist, lambda rows: lay_out(rows, pad_id),
                                          _split_micro_batches(cfg, device))
                lr = loop.step(step, docs, micro, start)
                loop.log(step, epoch, lr)
                loop.evaluate(step, eval_sets, compiled)
                loop.save(step, save_last)
                if on_step and on_step(step, epoch):
                    break
        except KeyboardInterrupt:
            raise loop.interrupted() from None
    model.eval()
    return loop.progress.records
