"""What exact resume needs besides the weights: optimizer, scheduler, RNG, data position, counters,
records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from chattune.errors import TrainingError


def rng_state() -> dict[str, Any]:
    """The random generators training draws from (dropout); data order has its own seeded
    generator."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ResumeState:
    """A checkpoint's saved training state, as a resumed run reads it
    (chattune.outputs.checkpoint.load_state)."""

    path: Path
    step: int
    micro_batches: int  # consumed from the seeded data stream
    tokens: int
    trained_tokens: int
    records: list[dict[str, Any]]
    rng: dict[str, Any]
    scheduler: dict[str, Any]
    optimizer: dict[str, Any] | None = None  # None in a sharded checkpoint: it is in the shards
    scaler: dict[str, Any] | None = None  # fp16's loss scale
    sharded: bool = False  # FSDP: weights and optimizer state in the checkpoint's shards


@dataclass
class TrainProgress:
    """Where a run is after its last completed optimizer step."""

    step: int = 0
    micro_batches: int = 0  # consumed from the seeded data stream
    tokens: int = 0
    trained_tokens: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] = field(default_factory=rng_state)

    def snapshot(self, optimizer: Any, scheduler: Any, scaler: Any = None) -> dict[str, Any]:
        """Everything to save with the weights, as plain types and tensors (loadable with
        weights_only=True); `scaler`: fp16's loss scale and its growth counter."""
        state = {"step": self.step, "micro_batches": self.micro_batches, "tokens": self.tokens,
                 "trained_tokens": self.trained_tokens, "records": list(self.records),
                 "rng": self.rng, "scheduler": scheduler.state_dict()}
        if optimizer is not None:  # None under FSDP: the optimizer state is saved in shards
            state["optimizer"] = optimizer.state_dict()
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        return state

    @classmethod
    def restore(cls, saved: ResumeState, optimizer: Any, scheduler: Any,
                scaler: Any = None) -> TrainProgress:
        """Put a saved state back; one that does not fit this run (garbled, or another model's
        optimizer) is a TrainingError naming the checkpoint."""
        try:
            # a sharded checkpoint's optimizer state is loaded from its shards
            if not saved.sharded:
                optimizer.load_state_dict(saved.optimizer)
            scheduler.load_state_dict(saved.scheduler)
            if scaler is not None and saved.scaler is not None:
                scaler.load_state_dict(saved.scaler)
            set_rng_state(saved.rng)
        except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as e:
            raise TrainingError(f"{saved.path}: its training state does not fit this run "
                                f"({type(e).__name__}: {e}); the checkpoint is damaged or from "
                                "another model: resume from another one") from None
        return cls(saved.step, saved.micro_batches, saved.tokens, saved.trained_tokens,
                   list(saved.records), saved.rng)
