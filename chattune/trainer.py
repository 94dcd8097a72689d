"""TRL-style API on chattune's engine: `from chattune import SFTConfig, SFTTrainer` in a TRL script.

The common arguments of TRL's SFTConfig/SFTTrainer (and the course's) are accepted with their meaning;
anything chattune does not support raises an error that names it, never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chattune.batching.collate import Example
from chattune.batching.prepare import prepare_examples
from chattune.config import build_config
from chattune.data.convert import to_conversation
from chattune.data.schema import Conversation
from chattune.errors import ConfigError

# TRL SFTConfig names that mean the same in chattune's config
SAME_NAMES = {"output_dir", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
              "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm", "logging_steps",
              "eval_steps", "save_steps", "save_total_limit", "load_best_model_at_end", "max_length", "packing",
              "bf16", "gradient_checkpointing", "seed", "report_to"}
# accepted with a translation (see SFTConfig.train_config)
TRANSLATED = {"eval_strategy", "evaluation_strategy", "warmup_steps", "max_seq_length", "dataset_text_field",
              "completion_only_loss", "assistant_only_loss", "use_mps_device", "hub_model_id", "save_strategy"}


class SFTConfig:
    """Training arguments under TRL's names. Unsupported ones raise TypeError naming them."""

    def __init__(self, output_dir: str = "runs/chattune", **kwargs: Any):
        unknown = sorted(set(kwargs) - SAME_NAMES - TRANSLATED)
        if unknown:
            raise TypeError(f"SFTConfig: chattune does not support {', '.join(unknown)}; supported: "
                            f"{', '.join(sorted(SAME_NAMES | TRANSLATED))}")
        self.output_dir = output_dir
        self.values = dict(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)

    def train_config(self, model_name: str, total_rows: int, has_eval: bool) -> Any:
        """chattune's TrainConfig for these arguments (validated: every problem reported at once)."""
        v = dict(self.values)
        cfg: dict[str, Any] = {k: v.pop(k) for k in list(v) if k in SAME_NAMES}
        cfg["output_dir"] = self.output_dir
        if "max_seq_length" in v:
            cfg.setdefault("max_length", v.pop("max_seq_length"))
        strategy = v.pop("eval_strategy", v.pop("evaluation_strategy", None))
        if strategy == "no":
            cfg.pop("eval_steps", None)
        elif strategy not in (None, "steps"):
            raise ConfigError([f"eval_strategy: chattune evaluates every eval_steps ('steps' or 'no'), got "
                               f"{strategy!r}"])
        save = v.pop("save_strategy", None)
        if save == "no":
            cfg["save_steps"] = None
        elif save not in (None, "steps"):
            raise ConfigError([f"save_strategy: chattune saves every save_steps ('steps' or 'no'), got {save!r}"])
        warmup = v.pop("warmup_steps", None)
        if warmup is not None:  # transformers 5: a float below 1 is a share of the steps, an int a step count
            steps = cfg.get("max_steps", -1)
            cfg["warmup_ratio"] = warmup if warmup < 1 else warmup / max(steps if steps > 0 else total_rows, 1)
        if v.pop("use_mps_device", False):
            import torch

            if not torch.backends.mps.is_available():
                raise ConfigError(["use_mps_device=True, but this machine has no MPS device"])
        if isinstance(cfg.get("report_to"), str):
            cfg["report_to"] = [] if cfg["report_to"] == "none" else [cfg["report_to"]]
        cfg["data"] = {"train": "<train_dataset>", "eval": "<eval_dataset>" if has_eval else None}
        cfg["model"] = model_name
        return build_config(cfg)

    @property
    def train_on(self) -> str:
        if self.values.get("completion_only_loss") is False and not self.values.get("assistant_only_loss"):
            return "all"
        return "all_assistant"


def _rows(dataset: Any) -> list[dict[str, Any]]:
    """Rows of a datasets.Dataset or a list of dicts."""
    if dataset is None:
        return []
    if isinstance(dataset, dict):  # a DatasetDict
        raise TypeError("pass one split of a DatasetDict (e.g. ds['train']), not the whole DatasetDict")
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Iterable):
        raise TypeError(f"expected a datasets.Dataset or a list of dicts, got {type(dataset).__name__}")
    rows = list(dataset)
    bad = next((i for i, r in enumerate(rows, start=1) if not isinstance(r, dict)), None)
    if bad:
        raise TypeError(f"row {bad}: expected a dict, got {type(rows[bad - 1]).__name__}")
    return [dict(r) for r in rows]


def _conversations(rows: list[dict[str, Any]], formatting_func: Callable | None, text_field: str,
                   name: str) -> list[Conversation]:
    out = []
    for i, row in enumerate(rows, start=1):
        if formatting_func is not None:  # TRL trains the formatted text as plain language modelling
            out.append(Conversation(messages=[], source=name, row=i, text=formatting_func(row)))
        elif text_field in row and not any(k in row for k in ("messages", "conversations", "prompt")):
            out.append(to_conversation({"text": row[text_field]}, source=name, row_no=i))
        else:
            out.append(to_conversation(row, source=name, row_no=i))
    return out


class SFTTrainer:
    """TRL's SFTTrainer surface on chattune's engine (exact masks, packing, chunked loss)."""

    def __init__(self, model: Any, args: SFTConfig | None = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None, tokenizer: Any = None,
                 peft_config: Any = None, formatting_func: Callable[[dict], str] | None = None,
                 dataset_text_field: str | None = None, **unsupported: Any):
        if unsupported:
            raise TypeError(f"SFTTrainer: chattune does not support {', '.join(sorted(unsupported))}")
        from chattune.model.device import bf16_is_fast, pick_device
        from chattune.model.load import load_model_and_tokenizer, load_tokenizer
        from chattune.pipeline import setup_template

        self.args = args or SFTConfig()
        if isinstance(model, str):
            model, loaded_tokenizer = load_model_and_tokenizer(model)
            processing_class = processing_class or tokenizer or loaded_tokenizer
        self.tokenizer = processing_class or tokenizer or load_tokenizer(model.name_or_path)
        new_tokens = setup_template(model, self.tokenizer, None)
        text_field = dataset_text_field or self.args.values.get("dataset_text_field", "text")
        train_rows, eval_rows = _rows(train_dataset), _rows(eval_dataset)
        self.cfg = self.args.train_config(str(getattr(model, "name_or_path", "model")), len(train_rows),
                                          bool(eval_rows))
        if peft_config is not None:
            import torch
            from peft import get_peft_model

            torch.manual_seed(self.cfg.seed)  # LoRA's initial weights: the same script gives the same run
            if new_tokens:
                peft_config.trainable_token_indices = new_tokens
            model = get_peft_model(model, peft_config)
        self.model = model
        self.device = pick_device()
        self.bf16 = bf16_is_fast(self.device) if self.cfg.bf16 is None else self.cfg.bf16
        self.train_examples = self._examples(train_rows, formatting_func, text_field, "train_dataset")
        self.eval_examples = self._examples(eval_rows, formatting_func, text_field, "eval_dataset")

    def _examples(self, rows: list[dict[str, Any]], formatting_func: Callable | None, text_field: str,
                  name: str) -> list[Example]:
        if not rows:
            return []
        convs = _conversations(rows, formatting_func, text_field, name)
        examples, _ = prepare_examples(convs, self.tokenizer, train_on=self.args.train_on,
                                       max_length=self.cfg.max_length)
        return examples

    def train(self) -> dict[str, Any]:
        """Train; returns the global step and the mean training loss (like TRL's TrainOutput)."""
        from rich.console import Console

        from chattune.outputs.metrics import MetricsLog
        from chattune.train.loop import count_steps, train

        out = Path(self.cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.to(self.device)
        with MetricsLog(out / "metrics.jsonl", count_steps(self.train_examples, self.cfg), Console()) as log:
            self.records = train(self.model, self.train_examples, self.cfg, pad_id=self.tokenizer.pad_token_id,
                                 device=self.device, bf16=self.bf16, eval_examples=self.eval_examples or None,
                                 on_log=log)
        losses = [r["loss"] for r in self.records if "loss" in r]
        return {"global_step": self.records[-1]["step"] if self.records else 0,
                "training_loss": sum(losses) / max(len(losses), 1)}

    def evaluate(self) -> dict[str, float]:
        """Eval loss, perplexity and token accuracy on eval_dataset."""
        from chattune.train.loop import evaluate_loss

        if not self.eval_examples:
            raise ConfigError(["evaluate() needs an eval_dataset"])
        self.model.to(self.device)
        return evaluate_loss(self.model, self.eval_examples, self.cfg.per_device_eval_batch_size,
                             self.tokenizer.pad_token_id, self.device, self.bf16)

    def save_model(self, output_dir: str | None = None) -> Path:
        """The adapter (with peft) or the model, with tokenizer, template and stop tokens."""
        from chattune.generate import stop_token_ids
        from chattune.outputs.save import save_pretrained_atomic

        path = Path(output_dir or self.cfg.output_dir)
        return save_pretrained_atomic(self.model, self.tokenizer, path, stop_token_ids(self.tokenizer))

    def push_to_hub(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError(["push_to_hub: chattune does not upload; save_model() writes a directory that "
                           "`huggingface-cli upload` can push"])
