"""The run's health checks: a step whose loss or gradient is not finite, weights a step wrote that
are not finite, and a collapsed model; and which checkpoint is still good when one of them stops the
run.

The weights are checked without a host sync of their own: the squared norm of what a step wrote
stays on the device and travels in the next step's one sync; a checkpoint (which copies the weights
to the host anyway) and the last step check it at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from chattune.errors import TrainingError

COLLAPSE_STEPS = 5  # consecutive steps of a collapse sign before the run is stopped
RISE = 5.0  # a loss this many times its best is a diverged run
FLAT = 1e-8  # a gradient norm at or below this is zero


class Unhealthy(Exception):
    """A step found the run unable to go on. `since`: the first step whose written weights are bad
    (the step itself when only its loss or gradient is, and the weights were not updated)."""

    def __init__(self, message: str, *, since: int, weights_bad: bool):
        super().__init__(message)
        self.since, self.weights_bad = since, weights_bad


def vocab_size(model: Any) -> int | None:
    """Rows of the LM head: a uniform prediction has loss ln(vocab)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return getattr(getattr(model, "config", None), "vocab_size", None)


def squared_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squares of this process's share of `params`, on their device (no host sync); NaN or
    inf when any value is."""
    local = [(p.to_local() if hasattr(p, "to_local") else p).detach() for p in params]
    if not local:
        return torch.zeros(())
    return torch.stack([n.float() for n in torch._foreach_norm(local)]).pow(2).sum()


class Guard:
    """Follows one run's steps: `carry()` goes into a step's sync, `check()` reads it back with the
    step's loss and gradient norm, `wrote()` takes the weights the step wrote, `saving()` wraps the
    checkpoint hook."""

    def __init__(self, model: Any, total_steps: int, start_step: int = 0,
                 resumed: Path | None = None, dist: Any = None):
        self.step, self.total, self.dist = start_step, total_steps, dist
        self._checked: int | None = None  # the step whose weights check_before_saving found finite
        self.uniform = math.log(v) if (v := vocab_size(model)) else None
        self.pending: torch.Tensor | None = None  # squared norm of the weights the last step wrote
        self.saved: list[tuple[int, Path]] = [(start_step, Path(resumed))] if resumed else []
        self.best = math.inf
        # first step of a run of uniform predictions with zero gradient
        self.flat_since: int | None = None
        self.rise_since: int | None = None  # first step of a run of losses RISE times the best

    def carry(self, device: torch.device) -> torch.Tensor:
        return (self.pending.to(device) if self.pending is not None
                else torch.zeros((), device=device))

    def check(self, loss: float, grad_norm: float, written: float, *, overflow_ok: bool) -> None:
        """After the step's sync, before the optimizer touches the weights: raise Unhealthy when the
        weights the previous step wrote (`written`: their squared norm), the loss or the gradient
        (unless fp16's scaler skips an overflowing step: `overflow_ok`) are not finite, or when the
        run has collapsed."""
        self.step += 1
        step = self.step
        if not math.isfinite(written):
            raise Unhealthy(f"the weights step {step - 1} wrote are not finite (the update "
                            "overflowed)",
                            since=step - 1, weights_bad=True)
        if not math.isfinite(loss) or (not math.isfinite(grad_norm) and not overflow_ok):
            raise Unhealthy(f"loss {loss}, gradient norm {grad_norm}", since=step,
                            weights_bad=False)
        flat = (grad_norm <= FLAT and self.uniform is not None
                and abs(loss - self.uniform) <= 0.02 * self.uniform)
        self.flat_since = (self.flat_since or step) if flat else None
        self.rise_since = (self.rise_since or step) if loss > RISE * self.best else None
        self.best = min(self.best, loss)
        if self.flat_since is not None and step - self.flat_since + 1 >= COLLAPSE_STEPS:
            raise Unhealthy(f"the model has collapsed: loss {loss:.4f} = ln(vocabulary) with "
                            f"gradient norm {grad_norm:.1e} for {COLLAPSE_STEPS} steps (it "
                            "predicts the same for every token)",
                            since=self.flat_since - 1, weights_bad=True)
        if self.rise_since is not None and step - self.rise_since + 1 >= COLLAPSE_STEPS:
            raise Unhealthy(f"the run has diverged: loss {loss:.4f}, over {RISE:g}x its best "
                            f"{self.best:.4f}, for {COLLAPSE_STEPS} steps",
                            since=self.rise_since - 1, weights_bad=True)

    def wrote(self, params: list[torch.Tensor]) -> None:
        """After the optimizer step: keep the written weights' norm for the next sync; the last step
        has none, so it is checked now."""
        self.pending = squared_norm(params)
        if self.step == self.total:
            self._check_written()

    def check_before_saving(self, step: int) -> None:
        """Stop the run (TrainingError) when the weights about to be checkpointed are not finite
        (checked once per step: under FSDP every process calls this before the collective save, and
        the main process's checkpoint hook then finds it done)."""
        if self._checked == self.step:
            return
        try:
            self._check_written()
        except Unhealthy as e:
            raise TrainingError(self.message(step,
                                             e) + " (no checkpoint of them was written)") from None
        self._checked = self.step

    def _check_written(self) -> None:
        """Sharded weights: each process holds its share's norm, summed here so every process
        decides alike (one stopping alone would leave the others waiting in the next collective)."""
        pending = self.pending
        if pending is not None and self.dist is not None and self.dist.sharded:
            pending = self.dist.sum_tensor(pending.clone())
        if pending is not None and not math.isfinite(float(pending)):
            raise Unhealthy(f"the weights step {self.step} wrote are not finite (the update "
                            "overflowed)",
                            since=self.step, weights_bad=True)

    def last_good(self, before: int) -> Path | None:
        good = [path for step, path in self.saved if step < before and path.is_dir()]
        return good[-1] if good else None

    def message(self, step: int, e: Unhealthy) -> str:
        """What the TrainingError that stops the run says: what happened, what holds, where to
        resume."""
        good = self.last_good(e.since)
        where = (f"the last good checkpoint is {good} (chattune train CONFIG --resume {good})"
                 if good else "no good checkpoint was saved (set save_steps to keep one)")
        weights = ("the weights in memory are not usable" if e.weights_bad
                   else "the weights were not updated")
        return (f"training stopped at step {step}: {e}; {weights}. {where}. A lower learning_rate "
                "or max_grad_norm usually helps.")

    def saving(self, on_save: Callable[[int, dict[str, Any]], Path | None]) -> Callable[
            ..., Path | None]:
        """`on_save`, called only for weights checked finite (the save copies them to the host: the
        check costs no extra sync); what it saved is remembered as good."""

        def save(step: int, state: dict[str, Any]) -> Path | None:
            self.check_before_saving(step)
            path = on_save(step, state)
            if path is not None:
                self.saved.append((step, Path(path)))
            return path

        return save
