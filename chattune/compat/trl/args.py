"""SFTConfig: TRL's training arguments, under TRL's names and defaults, turned into the loop's
TrainArgs.

Every argument of TRL 1.16's SFTConfig is known (trl_arguments.py says what chattune does with
each); one chattune does not support raises an error naming it and why unless it is left at TRL's
default. transformers' TrainingArguments are accepted too (old TRL scripts and notebooks pass them).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

from chattune.compat.trl.trl_arguments import ALL, check_argument
from chattune.config import TrainArgs, validated
from chattune.errors import ConfigError

# TRL SFTConfig names that mean the same in the loop's TrainArgs
SAME_NAMES = {"num_train_epochs", "max_steps", "per_device_train_batch_size",
              "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
              "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
              "max_grad_norm", "save_total_limit", "load_best_model_at_end", "max_length",
              "packing", "padding_free", "gradient_checkpointing", "seed", "report_to",
              "gradient_checkpointing_kwargs", "loss_type", "activation_offloading",
              "logging_first_step"}
# transformers' step counts that may be given as a share of the run's steps (a float below 1)
STEP_COUNTS = ("logging_steps", "eval_steps", "save_steps")

NO_LIMIT = 2**31 - 1  # max_length=None: rows are never cut

# TRL 1.16's SFTConfig defaults where chattune's own differ: a script brought over trains the same
# way
TRL_DEFAULTS: dict[str, Any] = {"learning_rate": 2e-5, "num_train_epochs": 3.0,
                                "lr_scheduler_type": "linear", "warmup_ratio": 0.0,
                                "weight_decay": 0.0, "logging_steps": 10, "save_steps": 500,
                                "gradient_checkpointing": True, "per_device_train_batch_size": 8,
                                "per_device_eval_batch_size": 8, "seed": 42, "max_length": 1024,
                                "adam_epsilon": 1e-8, "optim": "adamw_torch_fused",
                                "packing_strategy": "bfd", "truncation_mode": "keep_start",
                                "loss_type": "nll", "dataset_text_field": "text",
                                "eval_strategy": "no", "save_strategy": "steps",
                                "logging_strategy": "steps", "report_to": "none"}
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant_with_warmup": "constant",
             "constant": "constant"}
ADAMW = ("adamw_torch", "adamw_torch_fused")  # chattune's AdamW is torch's, fused on GPUs


def _plain(value: Any) -> Any:
    """transformers' enums (IntervalStrategy.STEPS, SchedulerType.LINEAR) as their plain values."""
    return getattr(value, "value", value)


class SFTConfig:
    """Training arguments under TRL's names and defaults. A name TRL does not have raises TypeError;
    a value chattune cannot honour raises ValueError saying why.

    Attributes can be changed after construction (`args.num_train_epochs = 5`) and copied with
    copy()."""

    def __init__(self, output_dir: str = "trainer_output", **kwargs: Any):
        self.output_dir = output_dir
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        value = _plain(value)
        if name != "output_dir":
            check_argument(name, value)
        if name == "loss_type" and value == "chunked_nll":  # TRL 1.16: a deprecated alias of nll
            warnings.warn("loss_type='chunked_nll' is deprecated in TRL; it is 'nll'",
                          FutureWarning, stacklevel=3)
            value = "nll"
        super().__setattr__(name, value)

    # only called for names never set: TRL's default, else None
    def __getattr__(self, name: str) -> Any:
        if name in ALL:
            return TRL_DEFAULTS.get(name)
        raise AttributeError(name)

    @property
    def values(self) -> dict[str, Any]:
        """The arguments set, without output_dir."""
        return {k: v for k, v in vars(self).items() if k != "output_dir"}

    def __repr__(self) -> str:
        return (f"SFTConfig(output_dir={self.output_dir!r}, "
                f"{', '.join(f'{k}={v!r}' for k, v in self.values.items())})")

    @classmethod
    def from_training_arguments(cls, args: Any) -> SFTConfig:
        """transformers.TrainingArguments (or TRL's SFTConfig) -> SFTConfig: the fields the script
        changed from their defaults, each checked as SFTConfig checks it."""
        default = type(args)(output_dir=args.output_dir,
                             **({"bf16": args.bf16} if hasattr(args, "bf16") else {}))
        changed = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)
                   if f.name != "output_dir" and getattr(args, f.name) != getattr(default, f.name)}
        # transformers' False means off; SFTConfig's unset means automatic
        for name in ("bf16", "fp16"):
            if getattr(args, name, None) is not None:
                changed[name] = getattr(args, name)
        unknown = sorted(k for k in changed if k not in ALL)
        if unknown:
            raise TypeError(f"{type(args).__name__}: {', '.join(unknown)} is not known to chattune "
                            "(it knows TRL 1.16's SFTConfig and transformers 5's "
                            "TrainingArguments)")
        return cls(output_dir=args.output_dir, **changed)

    def train_args(self, has_eval: bool, total_steps: int | None = None) -> TrainArgs:
        """The loop's TrainArgs for these arguments (validated: every problem reported at once).

        `total_steps` (the run's optimizer steps, once the data is prepared) turns a warmup_steps
        count into a share; until it is known, a count takes effect only with max_steps."""
        v = {**TRL_DEFAULTS, **self.values}
        cfg = self._translate_names(v)
        self._translate_step_counts(v, cfg, total_steps)
        self._translate_optimizer(v, cfg)
        cfg["compile"] = bool(v.pop("torch_compile", False))
        self._translate_eval_and_save(v, cfg)
        self._translate_row_lengths(v, cfg)
        if v.pop("logging_strategy", None) not in (None, "steps"):
            raise ConfigError(["logging_strategy: chattune logs every logging_steps ('steps')"])
        warmup = v.pop("warmup_steps", None)
        known = total_steps or (cfg["max_steps"] if cfg.get("max_steps", -1) > 0 else None)
        # transformers 5: a float below 1 is a share, an int a step count
        if warmup and (warmup < 1 or known):
            cfg["warmup_ratio"] = warmup if warmup < 1 else warmup / known
        self._translate_device_and_trackers(v, cfg)
        if cfg.get("eval_steps") and not has_eval:  # transformers.Trainer's rule
            raise ConfigError(["eval_strategy='steps' evaluates during training, but no "
                               "eval_dataset was given"])
        cfg["gradient_checkpointing"] = bool(cfg.get("gradient_checkpointing"))
        return validated(TrainArgs, cfg)

    def _translate_names(self, v: dict[str, Any]) -> dict[str, Any]:
        """The loop's settings that TRL names as chattune does, or under an older or newer name."""
        cfg: dict[str, Any] = {k: v.pop(k) for k in list(v) if k in SAME_NAMES}
        cfg["output_dir"] = self.output_dir
        if v.get("max_seq_length") is not None:
            cfg["max_length"] = v.pop("max_seq_length")
        # transformers >= 5.20's names
        for name in ("activation_checkpointing", "activation_checkpointing_kwargs"):
            if v.get(name) is not None:
                cfg[name.replace("activation", "gradient")] = v.pop(name)
        return cfg

    @staticmethod
    def _translate_step_counts(v: dict[str, Any], cfg: dict[str, Any],
                               total_steps: int | None) -> None:
        """logging_steps, eval_steps and save_steps as step counts (transformers: a float below 1 is
        a share of the run's steps, counted as one step until the total is known without
        max_steps)."""
        steps = total_steps or (cfg["max_steps"] if cfg.get("max_steps", -1) > 0 else 1)
        for name in STEP_COUNTS:
            value = v.pop(name, None)
            cfg[name] = (max(1, math.ceil(value * steps))
                         if isinstance(value, float) and value < 1 else value)

    @staticmethod
    def _translate_eval_and_save(v: dict[str, Any], cfg: dict[str, Any]) -> None:
        """eval_strategy and save_strategy as the loop's eval_steps and save_steps ('steps' or 'no'
        only)."""
        strategy = v.pop("evaluation_strategy", None) or v.pop("eval_strategy", None)
        # TRL's default: no evaluation during training, whatever eval_steps says
        if strategy in (None, "no"):
            cfg.pop("eval_steps", None)
        elif strategy != "steps":
            raise ConfigError(["eval_strategy: chattune evaluates every eval_steps ('steps' or "
                               f"'no'), got {strategy!r}"])
        elif cfg.get("eval_steps") is None:
            cfg["eval_steps"] = cfg["logging_steps"]  # transformers' rule for eval_strategy="steps"
        save = v.pop("save_strategy", None)
        if save == "no":
            cfg["save_steps"] = None
        elif save not in (None, "steps"):
            raise ConfigError(["save_strategy: chattune saves every save_steps ('steps' or 'no'), "
                               f"got {save!r}"])

    def _translate_row_lengths(self, v: dict[str, Any], cfg: dict[str, Any]) -> None:
        """How rows are packed, cut and kept whole: packing_strategy, truncation_mode,
        max_length=None."""
        # 'wrapped' and 'bfd_split' are applied to the examples by SFTTrainer before they are packed
        if v.pop("packing_strategy", None) not in ("bfd", "bfd_split", "wrapped"):
            raise ConfigError([f"packing_strategy must be 'bfd', 'bfd_split' or 'wrapped', got "
                               f"{self.packing_strategy!r}"])
        if v.pop("truncation_mode", None) not in ("keep_start", "keep_end"):
            raise ConfigError(["truncation_mode must be 'keep_start' or 'keep_end', got "
                               f"{self.truncation_mode!r}"])
        # eval_packing only changes how eval_dataset is shown: the loss of packed rows equals the
        # unpacked one
        v.pop("eval_packing", None)
        if cfg.get("max_length") is None:  # TRL's max_length=None: no cut
            if cfg.get("packing"):
                raise ConfigError(["packing=True needs max_length (the length of the packed rows), "
                                   "got None"])
            cfg["max_length"] = NO_LIMIT
        elif cfg.get("padding_free") and not cfg.get("packing"):
            # TRL's rule, kept so a script means the same under both (chattune itself would cut at
            # max_length)
            raise ValueError("padding_free=True without packing: TRL does not cut rows there, so "
                             "`max_length` is not enforced; set max_length=None (got "
                             f"{cfg['max_length']}) or packing=True")

    @staticmethod
    def _translate_device_and_trackers(v: dict[str, Any], cfg: dict[str, Any]) -> None:
        """use_mps_device (checked: the machine has one) and report_to as a list of tracker
        names."""
        if v.pop("use_mps_device", False):
            import torch

            if not torch.backends.mps.is_available():
                raise ConfigError(["use_mps_device=True, but this machine has no MPS device"])
        if isinstance(cfg.get("report_to"), str):
            cfg["report_to"] = [] if cfg["report_to"] == "none" else [cfg["report_to"]]
        if cfg.get("report_to") is None:
            cfg["report_to"] = []

    def _translate_optimizer(self, v: dict[str, Any], cfg: dict[str, Any]) -> None:
        """optim and lr_scheduler_type: torch's AdamW, and the schedules chattune has, under TRL's
        names."""
        optim = v.pop("optim", None)
        if optim not in ADAMW:
            raise ConfigError([f"optim={optim!r}: chattune trains with torch's AdamW "
                               f"({' or '.join(ADAMW)}, fused on GPUs either way)"])
        schedule = v.pop("lr_scheduler_type", None)
        if schedule not in SCHEDULES:
            raise ConfigError([f"lr_scheduler_type={schedule!r}: chattune has "
                               f"{', '.join(SCHEDULES)}"])
        if schedule == "constant" and (v.get("warmup_steps") or cfg.get("warmup_ratio")):
            raise ConfigError(["lr_scheduler_type='constant' has no warmup in transformers; use "
                               "'constant_with_warmup' with warmup_steps or warmup_ratio"])
        cfg["lr_scheduler_type"] = SCHEDULES[schedule]

    @property
    def device(self) -> str:
        """use_cpu / use_mps_device as chattune's device key (auto otherwise)."""
        return "cpu" if self.use_cpu else "mps" if self.use_mps_device else "auto"

    @property
    def train_on(self) -> str:
        values = self.values
        if values.get("completion_only_loss") is False and not values.get("assistant_only_loss"):
            return "all"
        return "all_assistant"
