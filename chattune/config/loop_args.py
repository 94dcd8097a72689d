"""TrainArgs: what the training loop reads. `chattune train`'s config holds these keys at its top
level; SFTTrainer builds them from TRL's arguments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from chattune.config.base import RESUME_MAY_CHANGE, _Strict


class TrainArgs(_Strict):
    """What the training loop reads: steps, batches, optimizer and schedule, logging, eval and
    checkpoint cadence, batch layout. `chattune train`'s config holds these keys at its top level;
    SFTTrainer builds them from TRL's arguments."""

    output_dir: str = Field(
        "runs/chattune",
        description="Where everything the run writes goes.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    num_train_epochs: float = Field(
        1.0,
        gt=0,
        description="Epochs, used when max_steps is -1.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    max_steps: int = Field(
        -1,
        ge=-1,
        description="Optimizer steps (positive); -1 means use num_train_epochs.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    per_device_train_batch_size: int = Field(8, gt=0, description="Sequences per micro-batch.")
    per_device_eval_batch_size: int = Field(
        8, gt=0, description="Sequences per eval batch.", json_schema_extra=RESUME_MAY_CHANGE
    )
    gradient_accumulation_steps: int = Field(
        1, gt=0, description="Micro-batches per optimizer step."
    )
    learning_rate: float = Field(
        2e-4,
        gt=0,
        le=1,
        description="Peak learning rate (at most 1: an AdamW step "
        "moves each weight by about the learning rate).",
    )
    warmup_ratio: float = Field(
        0.03, ge=0, lt=1, description="Share of steps spent warming up linearly."
    )
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2.")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    max_grad_norm: float = Field(
        1.0, ge=0, description="Gradient clipping norm; 0 disables clipping."
    )
    logging_steps: int = Field(
        1,
        gt=0,
        description="Log metrics every N optimizer steps.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    logging_first_step: bool = Field(
        False, description="Also log the first step.", json_schema_extra=RESUME_MAY_CHANGE
    )
    eval_steps: int | None = Field(
        None,
        gt=0,
        description="Evaluate every N steps (needs data.eval).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    save_steps: int | None = Field(
        None,
        gt=0,
        description="Save a checkpoint (weights, optimizer, scheduler, RNG, "
        "data position) every N steps; `--resume` continues from one.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    save_total_limit: int | None = Field(
        None,
        gt=0,
        description="Keep only the newest N checkpoints (and the best).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    load_best_model_at_end: bool = Field(
        False,
        description="Keep the checkpoint with the lowest eval loss and save "
        "its weights as the final model (needs eval_steps and save_steps).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    eval_max_new_tokens: int = Field(
        64, gt=0, description="Length cap of those answers.", json_schema_extra=RESUME_MAY_CHANGE
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list,
        description="Trackers that also receive the metrics (each an optional extra).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    max_length: int = Field(
        1024, gt=0, description="Longest sequence in tokens; longer rows follow data.truncation."
    )
    packing: bool = Field(False, description="Pack several conversations into each row.")
    padding_free: bool = Field(
        False,
        description="Each micro-batch as one sequence (its documents end to end, "
        "position ids restarting per document): no compute on padding, exact. Pays with "
        "variable-length attention; with SDPA the block-diagonal mask is dense.",
    )
    compile: bool = Field(
        False,
        description="torch.compile each decoder layer (regional, dynamic shapes); "
        "the first steps pay the compile time.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    max_tokens_per_batch: int | None = Field(
        None,
        gt=0,
        description="Fill each micro-batch up to this many tokens "
        "(padded: rows x longest row) instead of per_device_train_batch_size "
        "rows.",
    )
    bf16_full: bool = Field(
        False,
        description="Full fine-tuning in pure bf16: bf16 weights, an AdamW with "
        "Kahan summation (torch-optimi), no fp32 master copy; half the memory.",
    )
    gradient_checkpointing: bool | None = Field(
        None,
        description="Trade compute for memory; None: on for qlora, off otherwise.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    gradient_checkpointing_kwargs: dict[str, Any] | None = Field(
        None,
        description="Passed to transformers' "
        "gradient checkpointing (default "
        "{use_reentrant: false}).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    activation_offloading: bool = Field(
        False,
        description="Keep the activations saved for backward in CPU memory "
        "(pinned) instead of the GPU's: less GPU memory, more transfers.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    loss_type: Literal["nll", "dft"] = Field(
        "nll",
        description="nll: token cross-entropy; dft: each token's "
        "cross-entropy weighted by its (detached) probability, as TRL's "
        "loss_type dft (Dynamic Fine-Tuning).",
    )
    seed: int = Field(
        42,
        ge=0,
        lt=2**32,
        description="Seed for data order, init and dropout (0 to 2**32 - 1, "
        "the range transformers' set_seed takes).",
    )

    @field_validator("max_steps")
    @classmethod
    def _steps_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError(
                "0 steps would train nothing; set a positive number, or -1 to train "
                "num_train_epochs"
            )
        return value

    @model_validator(mode="after")
    def _check_best(self) -> TrainArgs:
        if self.load_best_model_at_end and not (self.eval_steps and self.save_steps):
            raise ValueError("load_best_model_at_end needs eval_steps and save_steps")
        return self

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing on or off (TrainConfig turns an unset value on for QLoRA)."""
        return bool(self.gradient_checkpointing)
