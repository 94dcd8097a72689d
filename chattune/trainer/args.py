"""SFTConfig: TRL's training arguments, under TRL's names and defaults, turned into chattune's TrainConfig.

transformers' TrainingArguments are accepted too (old TRL scripts and notebooks pass them): every field
chattune supports is taken, and a field it does not support but the script changed raises an error naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chattune.config import TrainConfig, build_config
from chattune.errors import ConfigError

# TRL SFTConfig names that mean the same in chattune's config
SAME_NAMES = {"num_train_epochs", "max_steps", "per_device_train_batch_size", "per_device_eval_batch_size",
              "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_ratio", "weight_decay",
              "adam_beta1", "adam_beta2", "max_grad_norm", "logging_steps", "eval_steps", "save_steps",
              "save_total_limit", "load_best_model_at_end", "max_length", "packing", "bf16", "fp16", "padding_free",
              "gradient_checkpointing", "seed", "report_to", "gradient_checkpointing_kwargs", "loss_type"}
# accepted with a translation (see SFTConfig.train_config)
TRANSLATED = {"eval_strategy", "evaluation_strategy", "warmup_steps", "max_seq_length", "dataset_text_field",
              "completion_only_loss", "assistant_only_loss", "use_mps_device", "save_strategy", "use_cpu",
              "logging_strategy", "eval_packing", "packing_strategy"}
# read by SFTTrainer (push_to_hub; loading a model given by name; its chat template)
HUB_NAMES = {"hub_model_id", "hub_token", "hub_private_repo", "push_to_hub", "model_init_kwargs",
             "chat_template_path", "trust_remote_code", "dataset_kwargs", "metric_for_best_model",
             "greater_is_better"}
SUPPORTED = SAME_NAMES | TRANSLATED | HUB_NAMES

NO_LIMIT = 2**31 - 1  # max_length=None: rows are never cut

# TRL 1.16's SFTConfig defaults where chattune's own differ: a script brought over trains the same way
TRL_DEFAULTS: dict[str, Any] = {"learning_rate": 2e-5, "num_train_epochs": 3.0, "lr_scheduler_type": "linear",
                                "warmup_ratio": 0.0, "weight_decay": 0.0, "logging_steps": 10, "save_steps": 500,
                                "gradient_checkpointing": True, "per_device_train_batch_size": 8,
                                "per_device_eval_batch_size": 8, "seed": 42, "max_length": 1024}


def _plain(value: Any) -> Any:
    """transformers' enums (IntervalStrategy.STEPS, SchedulerType.LINEAR) as their plain values."""
    return getattr(value, "value", value)


class SFTConfig:
    """Training arguments under TRL's names. Unsupported ones raise TypeError naming them.

    Attributes can be changed after construction (`args.num_train_epochs = 5`) and copied with copy()."""

    def __init__(self, output_dir: str = "trainer_output", **kwargs: Any):
        unknown = sorted(set(kwargs) - SUPPORTED)
        if unknown:
            raise TypeError(f"SFTConfig: chattune does not support {', '.join(unknown)}; supported: "
                            f"{', '.join(sorted(SUPPORTED))}")
        self.output_dir = output_dir
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "output_dir" and name not in SUPPORTED:
            raise TypeError(f"SFTConfig: chattune does not support {name}")
        super().__setattr__(name, _plain(value))

    def __getattr__(self, name: str) -> Any:  # only called for names never set: TRL's default, else None
        if name in SUPPORTED or name in TRL_DEFAULTS:
            return TRL_DEFAULTS.get(name)
        raise AttributeError(name)

    @property
    def values(self) -> dict[str, Any]:
        """The arguments set, without output_dir."""
        return {k: v for k, v in vars(self).items() if k != "output_dir"}

    def __repr__(self) -> str:
        return f"SFTConfig(output_dir={self.output_dir!r}, {', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    @classmethod
    def from_training_arguments(cls, args: Any) -> SFTConfig:
        """transformers.TrainingArguments (or TRL's SFTConfig) -> SFTConfig, naming changed unsupported fields."""
        default = type(args)(output_dir=args.output_dir, **({"bf16": args.bf16} if hasattr(args, "bf16") else {}))
        kept: dict[str, Any] = {}
        changed = []
        for field in dataclasses.fields(args):
            value = getattr(args, field.name)
            if field.name in SUPPORTED:
                kept[field.name] = value
            elif field.name != "output_dir" and value != getattr(default, field.name):
                changed.append(field.name)
        if changed:
            raise TypeError(f"{type(args).__name__}: chattune does not support {', '.join(sorted(changed))}")
        return cls(output_dir=args.output_dir, **{k: v for k, v in kept.items() if v is not None})

    def train_config(self, model_name: str, has_eval: bool, total_steps: int | None = None) -> TrainConfig:
        """chattune's TrainConfig for these arguments (validated: every problem reported at once).

        `total_steps` (the run's optimizer steps, once the data is prepared) turns a warmup_steps count into
        a share; until it is known, a count takes effect only with max_steps."""
        v = {**TRL_DEFAULTS, **self.values}
        cfg: dict[str, Any] = {k: v.pop(k) for k in list(v) if k in SAME_NAMES}
        cfg["output_dir"] = self.output_dir
        if v.get("max_seq_length") is not None:
            cfg["max_length"] = v.pop("max_seq_length")
        strategy = v.pop("eval_strategy", None) or v.pop("evaluation_strategy", None)
        if strategy in (None, "no"):  # TRL's default: no evaluation during training, whatever eval_steps says
            cfg.pop("eval_steps", None)
        elif strategy != "steps":
            raise ConfigError([f"eval_strategy: chattune evaluates every eval_steps ('steps' or 'no'), got "
                               f"{strategy!r}"])
        elif cfg.get("eval_steps") is None:
            cfg["eval_steps"] = cfg["logging_steps"]  # transformers' rule for eval_strategy="steps"
        save = v.pop("save_strategy", None)
        if save == "no":
            cfg["save_steps"] = None
        elif save not in (None, "steps"):
            raise ConfigError([f"save_strategy: chattune saves every save_steps ('steps' or 'no'), got {save!r}"])
        # 'wrapped' is applied to the examples by SFTTrainer (concatenated, cut into max_length rows)
        if v.pop("packing_strategy", None) not in (None, "bfd", "wrapped"):
            raise ConfigError([f"packing_strategy must be 'bfd' or 'wrapped', got {self.packing_strategy!r}"])
        # eval_packing only changes how eval_dataset is shown: the loss of packed rows equals the unpacked one
        v.pop("eval_packing", None)
        if cfg.get("max_length") is None:  # TRL's max_length=None: no cut
            if cfg.get("packing"):
                raise ConfigError(["packing=True needs max_length (the length of the packed rows), got None"])
            cfg["max_length"] = NO_LIMIT
        elif cfg.get("padding_free") and not cfg.get("packing"):
            # TRL's rule, kept so a script means the same under both (chattune itself would cut at max_length)
            raise ValueError(f"padding_free=True without packing: TRL does not cut rows there, so `max_length` is "
                             f"not enforced; set max_length=None (got {cfg['max_length']}) or packing=True")
        if v.pop("logging_strategy", None) not in (None, "steps"):
            raise ConfigError(["logging_strategy: chattune logs every logging_steps ('steps')"])
        warmup = v.pop("warmup_steps", None)
        steps = total_steps or (cfg["max_steps"] if cfg.get("max_steps", -1) > 0 else None)
        if warmup and (warmup < 1 or steps):  # transformers 5: a float below 1 is a share, an int a step count
            cfg["warmup_ratio"] = warmup if warmup < 1 else warmup / steps
        if v.pop("use_mps_device", False):
            import torch

            if not torch.backends.mps.is_available():
                raise ConfigError(["use_mps_device=True, but this machine has no MPS device"])
        cfg["device"] = self.device
        if isinstance(cfg.get("report_to"), str):
            cfg["report_to"] = [] if cfg["report_to"] == "none" else [cfg["report_to"]]
        if cfg.get("report_to") is None:
            cfg["report_to"] = []
        cfg["data"] = {"train": "<train_dataset>", "eval": "<eval_dataset>" if has_eval else None}
        cfg["model"] = model_name
        return build_config(cfg)

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
