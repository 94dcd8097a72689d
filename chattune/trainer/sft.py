"""TRL-style API on chattune's engine: `from chattune import SFTConfig, SFTTrainer` in a TRL script.

The common arguments of TRL's SFTConfig/SFTTrainer (and the course's, old TRL's included) are accepted with
their meaning; anything chattune does not support raises an error that names it, never a silent no-op.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chattune.batching.collate import Example
from chattune.batching.completion_only import DataCollatorForCompletionOnlyLM
from chattune.batching.prepare import prepare_examples
from chattune.data.convert import to_conversation
from chattune.data.schema import Conversation
from chattune.errors import ConfigError
from chattune.labels import num_trained
from chattune.trainer.args import SFTConfig


def _rows(dataset: Any, name: str) -> list[dict[str, Any]]:
    """Rows of a datasets.Dataset or a list of dicts."""
    if dataset is None:
        return []
    if isinstance(dataset, dict):  # a DatasetDict
        raise TypeError(f"{name}: pass one split of a DatasetDict (e.g. ds['train']), not the whole DatasetDict "
                        f"(splits: {', '.join(map(str, dataset))})")
    if getattr(dataset, "format", {}).get("type") == "custom":  # with_transform / set_transform
        raise ValueError(f"{name}: a Dataset.with_transform() transform runs each time a row is read, but chattune "
                         "prepares (renders, tokenises, masks) every row once before training, so it would be lost; "
                         "apply it with dataset.map() instead (TRL's other way, dataset_kwargs={'skip_prepare_dataset':"
                         " True} with trainer-ready rows, is not supported)")
    if isinstance(dataset, (str, bytes)) or not isinstance(dataset, Iterable):
        raise TypeError(f"{name}: expected a datasets.Dataset or a list of dicts, got {type(dataset).__name__}")
    rows = list(dataset)
    bad = next((i for i, r in enumerate(rows, start=1) if not isinstance(r, dict)), None)
    if bad:
        raise TypeError(f"{name}, row {bad}: expected a dict, got {type(rows[bad - 1]).__name__}")
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


def _collator_examples(convs: list[Conversation], tokenizer: Any, collator: DataCollatorForCompletionOnlyLM,
                       max_length: int) -> list[Example]:
    """Text rows tokenised as `tokenizer(text)` and labelled by the collator; rows it finds no completion in
    are named, not trained on nothing."""
    examples, empty = [], []
    for conv in convs:
        if conv.text is None:
            raise TypeError(f"{conv.source}, row {conv.row}: DataCollatorForCompletionOnlyLM needs text rows "
                            "(dataset_text_field or formatting_func)")
        ids = tokenizer(conv.text)["input_ids"][:max_length]
        labels = collator.labels_for(ids)
        if not num_trained(labels):
            empty.append(conv.row)
        else:
            examples.append(Example(ids, labels))
    if empty:
        warnings.warn(f"DataCollatorForCompletionOnlyLM found no completion in rows {empty[:10]} "
                      f"(response template {collator.response_text!r}); they are left out",
                      stacklevel=3)
    return examples


class SFTTrainer:
    """TRL's SFTTrainer surface on chattune's engine (exact masks, packing, chunked loss, checkpoints)."""

    def __init__(self, model: Any, args: Any = None, data_collator: Any = None, train_dataset: Any = None,
                 eval_dataset: Any = None, processing_class: Any = None, *, tokenizer: Any = None,
                 peft_config: Any = None, formatting_func: Callable[[dict], str] | None = None,
                 dataset_text_field: str | None = None, max_seq_length: int | None = None,
                 packing: bool | None = None, quantization_config: Any = None, **unsupported: Any):
        if unsupported:
            raise TypeError(f"SFTTrainer: chattune does not support {', '.join(sorted(unsupported))}")
        if data_collator is not None and not isinstance(data_collator, DataCollatorForCompletionOnlyLM):
            raise TypeError(f"SFTTrainer: chattune batches examples itself; data_collator takes only "
                            f"DataCollatorForCompletionOnlyLM, got {type(data_collator).__name__}")
        from chattune.model.load import load_tokenizer
        from chattune.templates.setup import setup_template

        self.args = args
        # old TRL took these on the trainer; they are arguments like any other
        for name, value in (("max_seq_length", max_seq_length), ("packing", packing),
                            ("dataset_text_field", dataset_text_field)):
            if value is not None:
                setattr(self.args, name, value)
        if isinstance(model, str):
            model, loaded_tokenizer = self._load_model(model, quantization_config)
            processing_class = processing_class or tokenizer or loaded_tokenizer
        self.tokenizer = processing_class or tokenizer or load_tokenizer(model.name_or_path)
        self.data_collator = data_collator
        self._formatting_func = formatting_func
        # TRL takes one eval dataset or a dict of named ones (logged as eval_<name>_loss)
        named = isinstance(eval_dataset, dict)
        evals = dict(eval_dataset) if named else {"": eval_dataset} if eval_dataset is not None else {}
        self._convs = {"train_dataset": self._to_conversations(train_dataset, "train_dataset")}
        self._eval_convs = {name: self._to_conversations(data, f"eval_dataset[{name!r}]" if name else "eval_dataset")
                            for name, data in evals.items()}
        new_tokens = self._set_chat_template(model, self.args.chat_template_path)
        chats = [c for convs in (self._convs["train_dataset"], *self._eval_convs.values()) for c in convs]
        if any(c.text is None for c in chats):  # chats need a template: ChatML where the tokenizer has none
            new_tokens += setup_template(model, self.tokenizer, None)
        if hasattr(model, "add_model_tags"):  # the model card's tags, as TRL sets them (code written for it checks)
            model.add_model_tags(["sft", "trl", "chattune"])
        if peft_config is not None:
            import torch

            from chattune.model.lora import wrap_with_peft

            torch.manual_seed(self.args.seed)  # LoRA's initial weights: the same script gives the same run
            if new_tokens:
                peft_config.trainable_token_indices = new_tokens
            model = wrap_with_peft(model, peft_config)
        self.model = model
        from transformers import TrainerState

        self.state = TrainerState()  # filled in by train(), as transformers.Trainer's is
        # TRL adds an MoE router's load-balancing loss to the loss; chattune trains on the token loss alone
        self.aux_loss_enabled = False
        self.records: list[dict[str, Any]] = []  # what the last train() logged
        self._prepared: tuple[int, list[Example], list[Example]] | None = None
        self.cfg = self._train_config()

    def _set_chat_template(self, model: Any, path: str | None) -> list[int]:
        """TRL's chat_template_path: a Jinja file (its special tokens must already be in the tokenizer), or a
        tokenizer (hub id or directory) whose template, tokens and eos are cloned. Returns added token ids."""
        if not path:
            return []
        if Path(path).is_file():
            self.tokenizer.chat_template = Path(path).read_text(encoding="utf-8")
            return []
        from chattune.templates.setup import clone_chat_template

        return clone_chat_template(model, self.tokenizer, path)[2]

    def _load_model(self, name: str, quantization_config: Any) -> tuple[Any, Any]:
        """A model named by a string, loaded as TRL does: args.model_init_kwargs (dtype fp32 unless they say
        otherwise), and a BitsAndBytesConfig (QLoRA) from the trainer or those kwargs, placed on the run's device."""
        from chattune.model.device import resolve_device
        from chattune.model.load import load_model, load_tokenizer, resolve_model_path

        kwargs = dict(self.args.model_init_kwargs or {})
        if quantization_config is not None:
            if "quantization_config" in kwargs:
                raise ConfigError(["quantization_config is set both on SFTTrainer and in args.model_init_kwargs; "
                                   "set it in one place"])
            kwargs["quantization_config"] = quantization_config
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        if isinstance(dtype, str) and dtype != "auto":
            import torch

            dtype = getattr(torch, dtype)
        if kwargs.get("quantization_config") is not None:
            kwargs.setdefault("device_map", {"": str(resolve_device(self.args.device))})
        path = resolve_model_path(name)
        trust = bool(kwargs.pop("trust_remote_code", False))
        return load_model(path, trust, dtype, extra=kwargs), load_tokenizer(path, trust)

    @property
    def args(self) -> SFTConfig:
        return self._args

    @args.setter
    def args(self, value: Any) -> None:
        """SFTConfig, or transformers' TrainingArguments (translated); None means TRL's defaults."""
        if value is None:
            value = SFTConfig()
        elif not isinstance(value, SFTConfig):
            value = SFTConfig.from_training_arguments(value)
        self._args = value

    def _to_conversations(self, dataset: Any, name: str) -> list[Conversation]:
        text_field = self.args.dataset_text_field or "text"
        return _conversations(_rows(dataset, name), self._formatting_func, text_field, name)

    @property
    def processing_class(self) -> Any:
        """The tokenizer (transformers' and TRL's name for it)."""
        return self.tokenizer

    def _train_config(self, total_steps: int | None = None) -> Any:
        name = str(getattr(getattr(self.model, "config", None), "_name_or_path", "") or "model")
        return self.args.train_config(name, bool(self._eval_convs), total_steps)

    def _examples(self, which: str) -> list[Example]:
        return self._examples_of(self._convs[which])

    def _examples_of(self, convs: list[Conversation]) -> list[Example]:
        if not convs:
            return []
        if self.data_collator is not None:
            return _collator_examples(convs, self.tokenizer, self.data_collator, self.cfg.max_length)
        examples, _ = prepare_examples(convs, self.tokenizer, train_on=self.args.train_on,
                                       max_length=self.cfg.max_length)
        return examples

    def _prepare(self) -> tuple[list[Example], dict[str, list[Example]]]:
        if self._prepared is None or self._prepared[0] != self.cfg.max_length:
            evals = {name: self._examples_of(convs) for name, convs in self._eval_convs.items()}
            self._prepared = (self.cfg.max_length, self._examples("train_dataset"), evals)
        return self._prepared[1], self._prepared[2]

    @property
    def train_examples(self) -> list[Example]:
        return self._prepare()[0]

    @property
    def eval_examples(self) -> list[Example]:
        """The examples of every eval set, in order."""
        return [ex for exs in self._prepare()[1].values() for ex in exs]

    @staticmethod
    def _as_dataset(examples: list[Example]) -> Any:
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": [ex.input_ids for ex in examples],
                                  "labels": [ex.labels for ex in examples]})

    @property
    def train_dataset(self) -> Any:
        """The prepared training examples as a datasets.Dataset (input_ids, labels), as TRL's trainer holds its
        processed dataset."""
        return self._as_dataset(self.train_examples)

    @property
    def eval_dataset(self) -> Any:
        """The prepared eval examples as a Dataset (a dict of them for named eval sets); None without any."""
        evals = self._prepare()[1]
        if not evals:
            return None
        if list(evals) == [""]:
            return self._as_dataset(evals[""])
        return {name: self._as_dataset(exs) for name, exs in evals.items()}

    def _device_and_dtype(self) -> tuple[Any, Any]:
        """The device (use_cpu / use_mps_device, else the first GPU) and the compute dtype (None for fp32)."""
        from chattune.model.device import resolve_device, resolve_precision

        device = resolve_device(self.cfg.device)
        precision = resolve_precision(device, finetuning=self.cfg.finetuning, bf16=self.cfg.bf16,
                                      fp16=self.cfg.fp16)
        return device, precision.compute

    def _to_device(self, device: Any) -> None:
        from chattune.model.load import is_quantized

        if not is_quantized(self.model):  # bitsandbytes placed its weights when the model loaded
            self.model.to(device)

    def train(self, resume_from_checkpoint: bool | str | None = None) -> Any:
        """Train (again, with the current args, when called again); returns transformers' TrainOutput.

        resume_from_checkpoint: True for the newest checkpoint in output_dir, or a checkpoint directory."""
        from rich.console import Console
        from transformers.trainer_utils import TrainOutput

        from chattune.generate import stop_token_ids
        from chattune.model.load import load_trained_weights
        from chattune.outputs.checkpoint import resume_state
        from chattune.outputs.trackers import check_trackers
        from chattune.pipeline import train_and_log
        from chattune.train.loop import count_steps

        self.cfg = self._train_config()
        check_trackers(self.cfg.report_to)
        examples, eval_sets = self._prepare()
        self.cfg = self._train_config(count_steps(examples, self.cfg))  # a warmup_steps count needs the total
        out = Path(self.cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        resumed = resume_state(out, "latest" if resume_from_checkpoint is True else resume_from_checkpoint or None)
        device, dtype = self._device_and_dtype()
        self._to_device(device)
        if resumed:
            load_trained_weights(self.model, resumed["path"])
        start = time.perf_counter()
        self.records = train_and_log(self.model, self.tokenizer, examples, self.cfg, device=device, dtype=dtype,
                                     stops=stop_token_ids(self.tokenizer), console=Console(),
                                     eval_examples=(eval_sets.get("") if list(eval_sets) == [""] else eval_sets)
                                     or None, resumed=resumed, save_last=True)
        runtime = time.perf_counter() - start
        logged = self._training_records()
        step = logged[-1]["step"] if logged else 0
        done = step - (resumed["step"] if resumed else 0)
        samples = done * self.cfg.per_device_train_batch_size * self.cfg.gradient_accumulation_steps
        metrics = {"train_runtime": round(runtime, 4), "train_samples_per_second": round(samples / runtime, 3),
                   "train_steps_per_second": round(done / runtime, 3),
                   "train_loss": sum(r["loss"] for r in logged) / max(len(logged), 1),
                   "epoch": logged[-1]["epoch"] if logged else 0.0}
        self._fill_state(step, metrics)
        if self.args.push_to_hub:
            self.push_to_hub()
        return TrainOutput(step, metrics["train_loss"], metrics)

    def _fill_state(self, step: int, metrics: dict[str, Any]) -> None:
        """trainer.state as transformers.Trainer leaves it: the step, epoch and every logged record under
        TRL's names, then the run's summary (train_loss, train_runtime, ...)."""
        from transformers import TrainerState

        def trl_name(key: str) -> str:  # tokens -> num_tokens; eval[_<set>]_accuracy -> ..._mean_token_accuracy
            if key == "tokens":
                return "num_tokens"
            return key.replace("_accuracy", "_mean_token_accuracy") if key.startswith("eval") else key

        history = [{trl_name(k): v for k, v in r.items() if k != "total_steps"}
                   for r in self.records if "loss" in r or any(k.startswith("eval_") for k in r)]
        self.state = TrainerState(global_step=step, epoch=metrics["epoch"], max_steps=self.cfg.max_steps
                                  if self.cfg.max_steps > 0 else step, log_history=history,
                                  logging_steps=self.cfg.logging_steps, save_steps=self.cfg.save_steps or 0,
                                  eval_steps=self.cfg.eval_steps or 0,
                                  train_batch_size=self.cfg.per_device_train_batch_size)
        last = next((r for r in reversed(history) if "mean_token_accuracy" in r), {})
        extra = {k: last[k] for k in ("mean_token_accuracy", "num_tokens") if k in last}
        self.state.log_history.append({**extra, **metrics, "step": step})  # TRL's last record carries its metrics

    def _training_records(self) -> list[dict[str, Any]]:
        """The last train()'s logged training records (eval records carry eval_loss instead of loss)."""
        return [r for r in self.records if "loss" in r]

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Eval loss, perplexity and token accuracy, as transformers.Trainer.evaluate: on the trainer's eval set(s)
        (each named set's metrics prefixed with its name), on `eval_dataset` (a dataset, a dict of them, or the
        name of one of the trainer's), under `metric_key_prefix`."""
        from chattune.train.loop import evaluate_loss, named_metrics

        if eval_dataset is None:
            sets = self._prepare()[1]
        elif isinstance(eval_dataset, str):
            sets = {eval_dataset: self._prepare()[1].get(eval_dataset)}
            if sets[eval_dataset] is None:
                raise KeyError(f"evaluate: no eval dataset named {eval_dataset!r}; the trainer has "
                               f"{', '.join(self._prepare()[1]) or 'none'}")
        else:
            given = dict(eval_dataset) if isinstance(eval_dataset, dict) else {"": eval_dataset}
            sets = {name: self._examples_of(self._to_conversations(data, "eval_dataset")) for name, data in
                    given.items()}
        if not any(sets.values()):
            raise ConfigError(["evaluate() needs an eval_dataset"])
        device, dtype = self._device_and_dtype()
        self._to_device(device)
        out: dict[str, float] = {}
        for name, examples in sets.items():
            metrics = named_metrics(evaluate_loss(self.model, examples, self.cfg.per_device_eval_batch_size,
                                                  self.tokenizer.pad_token_id, device, dtype), name)
            out.update({metric_key_prefix + k.removeprefix("eval").replace("_accuracy", "_mean_token_accuracy"): v
                        for k, v in metrics.items() if k not in (ignore_keys or [])})
        self.state.log_history.append({**out, "step": self.state.global_step})
        return out

    def save_model(self, output_dir: str | None = None) -> Path:
        """The adapter (with peft) or the model, with tokenizer, template and stop tokens."""
        from chattune.generate import stop_token_ids
        from chattune.outputs.save import save_pretrained_atomic

        path = Path(output_dir or self.cfg.output_dir)
        if output_dir is None:  # never replace output_dir itself: it holds the checkpoints and metrics
            path = path / ("adapter" if hasattr(self.model, "peft_config") else "model")
        return save_pretrained_atomic(self.model, self.tokenizer, path, stop_token_ids(self.tokenizer))

    def push_to_hub(self, commit_message: str = "End of training", blocking: bool = True, token: str | None = None,
                    revision: str | None = None, *, tags: list[str] | str | None = None,
                    model_name: str | None = None, dataset_name: str | None = None, **unsupported: Any) -> Any:
        """Save the model with a model card and upload it to args.hub_model_id (default: output_dir's name).

        Returns huggingface_hub's CommitInfo. A failed upload raises HubError naming the saved directory."""
        from chattune.outputs.hub import push_folder, write_model_card

        if unsupported:
            raise TypeError(f"push_to_hub: chattune does not support {', '.join(sorted(unsupported))}")
        repo_id = self.args.hub_model_id or model_name or Path(self.cfg.output_dir).resolve().name
        folder = self.save_model(str(Path(self.cfg.output_dir) / "hub"))
        tag_list = [tags] if isinstance(tags, str) else list(tags or [])
        logged = self._training_records()
        summary = {"steps": logged[-1]["step"] if logged else None,
                   "final loss": round(logged[-1]["loss"], 4) if logged else None, "dataset": dataset_name}
        # cfg.model is the loaded model's name (a peft model's is its base's), "model" when it has none
        write_model_card(folder, repo_id, base_model=None if self.cfg.model == "model" else self.cfg.model,
                         tags=tag_list, summary={k: v for k, v in summary.items() if v is not None})
        return push_folder(folder, repo_id, token=token or self.args.hub_token, private=self.args.hub_private_repo,
                           revision=revision, commit_message=commit_message)
