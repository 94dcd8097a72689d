"""TRL-style API on chattune's engine: `from chattune import SFTConfig, SFTTrainer` in a TRL script.

The common arguments of TRL's SFTConfig/SFTTrainer (and the course's, old TRL's included) are
accepted with their meaning; anything chattune does not support raises an error that names it, never
a silent no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chattune.batching.collate import Example
from chattune.compat.trl.args import SFTConfig
from chattune.compat.trl.completion_only import DataCollatorForCompletionOnlyLM
from chattune.compat.trl.evaluation import EvalMixin
from chattune.compat.trl.hub import HubMixin
from chattune.compat.trl.prepared import PreparedDataMixin
from chattune.data.schema import Conversation
from chattune.errors import ConfigError
from chattune.outputs.quiet import Kept, hold_import_messages, kept_quiet

# a TRL script imports peft after this module: what bitsandbytes logs on that import goes to the
# next run's log
hold_import_messages()


def _refuse_unsupported(data_collator: Any, optimizers: tuple[Any, Any],
                        unsupported: dict[str, Any]) -> None:
    """TRL trainer arguments chattune does not take: a TypeError naming them, never a silent
    no-op."""
    if any(o is not None for o in optimizers):
        unsupported["optimizers"] = optimizers  # chattune builds AdamW and the schedule from args
    if unsupported:
        raise TypeError(f"SFTTrainer: chattune does not support {', '.join(sorted(unsupported))}")
    if data_collator is not None and not isinstance(data_collator, DataCollatorForCompletionOnlyLM):
        raise TypeError(f"SFTTrainer: chattune batches examples itself; data_collator takes only "
                        f"DataCollatorForCompletionOnlyLM, got {type(data_collator).__name__}")


class SFTTrainer(PreparedDataMixin, EvalMixin, HubMixin):
    """TRL's SFTTrainer surface on chattune's engine (exact masks, packing, chunked loss,
    checkpoints)."""

    def __init__(self, model: Any, args: Any = None, data_collator: Any = None,
                 train_dataset: Any = None, eval_dataset: Any = None, processing_class: Any = None,
                 *, tokenizer: Any = None, peft_config: Any = None,
                 formatting_func: Callable[[dict], str] | None = None,
                 dataset_text_field: str | None = None, max_seq_length: int | None = None,
                 packing: bool | None = None, quantization_config: Any = None,
                 compute_metrics: Callable[[Any], dict[str, float]] | None = None,
                 callbacks: list[Any] | None = None,
                 preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
                 optimizers: tuple[Any, Any] = (None, None), **unsupported: Any):
        _refuse_unsupported(data_collator, optimizers, unsupported)
        self.args = args
        # the libraries' messages while this trainer loads and trains: OUTPUT_DIR/warnings.log
        self._kept = Kept()
        # old TRL took these on the trainer; they are arguments like any other
        for name, value in (("max_seq_length", max_seq_length), ("packing", packing),
                            ("dataset_text_field", dataset_text_field)):
            if value is not None:
                setattr(self.args, name, value)
        model = self._set_up_model_and_tokenizer(model, processing_class or tokenizer,
                                                 quantization_config)
        self.data_collator = data_collator
        self.compute_metrics, self.preprocess_logits_for_metrics = (compute_metrics,
                                                                    preprocess_logits_for_metrics)
        self.callbacks: list[Any] = list(callbacks or [])
        self._formatting_func = formatting_func
        self._read_datasets(train_dataset, eval_dataset)
        new_tokens = self._set_up_template(model)
        # the model card's tags, as TRL sets them (code written for it checks)
        if hasattr(model, "add_model_tags"):
            model.add_model_tags(["sft", "trl", "chattune"])
        self.model = self._with_adapter(self._with_liger(model), peft_config, new_tokens)
        from transformers import TrainerState

        self.state = TrainerState()  # filled in by train(), as transformers.Trainer's is
        # TRL adds an MoE router's load-balancing loss to the loss; chattune trains on the token
        # loss alone
        self.aux_loss_enabled = False
        self.records: list[dict[str, Any]] = []  # what the last train() logged
        self._prepared: tuple[tuple[Any, ...], list[Example],
                              dict[str, list[Example]]] | None = None
        self.cfg = self._train_args()

    def _set_up_model_and_tokenizer(self, model: Any, tokenizer: Any,
                                    quantization_config: Any) -> Any:
        """The model (loaded when named by a string) and self.tokenizer: the one given, else the
        model's own."""
        from chattune.model.load import load_tokenizer, model_id, name_model, resolve_model_path

        if isinstance(model, str):
            with self._quiet():
                model, loaded_tokenizer = self._load_model(model, quantization_config)
            tokenizer = tokenizer or loaded_tokenizer
        # a cached conversion's folder named by the id it stands for
        if getattr(model, "name_or_path", None):
            name_model(model, model_id(model.name_or_path))
        self.tokenizer = tokenizer or load_tokenizer(resolve_model_path(model.name_or_path))
        return model

    def _read_datasets(self, train_dataset: Any, eval_dataset: Any) -> None:
        """The train and eval datasets' rows as items; TRL takes one eval dataset or a dict of named
        ones (logged as eval_<name>_loss)."""
        named = isinstance(eval_dataset, dict)
        evals = (dict(eval_dataset) if named else {"": eval_dataset}
                 if eval_dataset is not None else {})
        self._train_items = self._items(train_dataset, "train_dataset")
        self._eval_items = {name: self._items(data,
                                              f"eval_dataset[{name!r}]" if name else "eval_dataset")
                            for name, data in evals.items()}

    def _set_up_template(self, model: Any) -> list[int]:
        """chat_template_path, eos_token and pad_token, and ChatML where chats need a template the
        tokenizer lacks. Returns the ids of the tokens added to the vocabulary."""
        from chattune.templates.setup import setup_template

        new_tokens = self._set_chat_template(model, self.args.chat_template_path)
        self._set_special_tokens(model)
        items = [c for convs in (self._train_items, *self._eval_items.values()) for c in convs]
        if any(isinstance(c, Conversation) and c.text is None for c in items):
            new_tokens += setup_template(model, self.tokenizer, None)
        return new_tokens

    def _with_liger(self, model: Any) -> Any:
        """use_liger_kernel: Liger's fused kernels patched in, before LoRA wraps the layers Liger
        patches."""
        if self.args.use_liger_kernel:
            from chattune.model.device import resolve_device
            from chattune.train.speed import apply_liger, check_liger

            device = resolve_device(self.args.device)
            check_liger(device)
            model.chattune_speed = apply_liger(model, device)
        return model

    def _with_adapter(self, model: Any, peft_config: Any, new_tokens: list[int]) -> Any:
        """The model wrapped by peft_config (the added tokens' embeddings trained too); as it is
        without one."""
        if peft_config is None:
            return model
        import torch

        from chattune.model.lora import wrap_with_peft

        # LoRA's initial weights: the same script gives the same run
        torch.manual_seed(self.args.seed)
        # LoRA-style configs have it
        if new_tokens and hasattr(peft_config, "trainable_token_indices"):
            peft_config.trainable_token_indices = new_tokens
        with self._quiet():
            model = wrap_with_peft(model, peft_config)
        if (getattr(peft_config, "is_prompt_learning", False)
                and (self.args.packing or self.args.padding_free)):
            raise ValueError(f"{type(peft_config).__name__}: prompt learning puts virtual tokens "
                             "before each row, so packed or padding-free rows would share them and "
                             "see each other; set packing=False and padding_free=False")
        return model

    def _quiet(self) -> Any:
        """Library warnings and progress bars kept for the log (live with log_level info or
        debug)."""
        return kept_quiet(self._kept, verbose=self.args.log_level in ("info", "debug"))

    def _set_chat_template(self, model: Any, path: str | None) -> list[int]:
        """TRL's chat_template_path: a Jinja file (its `<|...|>` markers the tokenizer lacks are
        added as special tokens), or a tokenizer (hub id or directory) whose template, tokens and
        eos are cloned. Returns added token ids."""
        if not path:
            return []
        from chattune.templates.setup import clone_chat_template, set_template_file

        if Path(path).is_file():
            return set_template_file(model, self.tokenizer, Path(path).read_text(encoding="utf-8"))

        return clone_chat_template(model, self.tokenizer, path)[2]

    def _set_special_tokens(self, model: Any) -> None:
        """TRL's eos_token (the token that ends each turn or text) and pad_token: tokens of the
        vocabulary."""
        for role in ("eos", "pad"):
            token = getattr(self.args, f"{role}_token")
            if token is None or token == getattr(self.tokenizer, f"{role}_token"):
                continue
            if token not in self.tokenizer.get_vocab():
                raise ValueError(f"SFTConfig: {role}_token={token!r} is not in the tokenizer's "
                                 "vocabulary; add it first (tokenizer.add_special_tokens) or "
                                 "choose one of its tokens")
            setattr(self.tokenizer, f"{role}_token", token)
            config = getattr(model, "generation_config", None)
            for holder in (model.config, config):
                if holder is not None:
                    setattr(holder, f"{role}_token_id", getattr(self.tokenizer, f"{role}_token_id"))

    def _load_model(self, name: str, quantization_config: Any) -> tuple[Any, Any]:
        """A model named by a string, loaded as TRL does: args.model_init_kwargs (dtype fp32 unless
        they say otherwise), and a BitsAndBytesConfig (QLoRA) from the trainer or those kwargs,
        placed on the run's device."""
        from chattune.model.device import resolve_device
        from chattune.model.load import load_model, load_tokenizer, resolve_model_path

        kwargs = dict(self.args.model_init_kwargs or {})
        if quantization_config is not None:
            if "quantization_config" in kwargs:
                raise ConfigError(["quantization_config is set both on SFTTrainer and in "
                                   "args.model_init_kwargs; set it in one place"])
            kwargs["quantization_config"] = quantization_config
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        if isinstance(dtype, str) and dtype != "auto":
            import torch

            dtype = getattr(torch, dtype)
        if kwargs.get("quantization_config") is not None:
            kwargs.setdefault("device_map", {"": str(resolve_device(self.args.device))})
        path = resolve_model_path(name)
        trust = bool(kwargs.pop("trust_remote_code", False) or self.args.trust_remote_code)
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
        # args replaced after __init__: what prepares and trains follows them
        if hasattr(self, "cfg"):
            self.cfg = self._train_args()

    @property
    def processing_class(self) -> Any:
        """The tokenizer (transformers' and TRL's name for it)."""
        return self.tokenizer

    def _train_args(self, total_steps: int | None = None) -> Any:
        return self.args.train_args(bool(self._eval_items), total_steps)

    @property
    def _finetuning(self) -> str:
        return "lora" if hasattr(self.model, "peft_config") else "full"

    def _device_and_dtype(self) -> tuple[Any, Any]:
        """The device (use_cpu / use_mps_device, else the first GPU) and the compute dtype (None for
        fp32)."""
        from chattune.model.device import resolve_device, resolve_precision

        device = resolve_device(self.args.device)
        precision = resolve_precision(device, finetuning=self._finetuning, bf16=self.args.bf16,
                                      fp16=bool(self.args.fp16))
        return device, precision.compute

    def _to_device(self, device: Any) -> None:
        from chattune.model.load import is_quantized

        if not is_quantized(self.model):  # bitsandbytes placed its weights when the model loaded
            self.model.to(device)

    def train(self, resume_from_checkpoint: bool | str | None = None) -> Any:
        """Train (again, with the current args, when called again); returns transformers'
        TrainOutput.

        resume_from_checkpoint: True for the newest checkpoint in output_dir, or a checkpoint
        directory."""
        from chattune.compat.trl.callbacks import CallbackBridge
        from chattune.engine.setup import open_run

        examples, eval_sets = self._prepare()
        settings = self._run_settings()
        resume = "latest" if resume_from_checkpoint is True else resume_from_checkpoint or None
        with self._quiet(), open_run(settings, resume) as run:
            hparams, total = self._set_up_run(run, examples)
            bridge = CallbackBridge(self.callbacks, self.args, self.state, self)
            run.begin()  # from here the run's folder is kept whatever happens
            bridge.event("on_train_begin")
            bridge.event("on_step_begin")
            start = time.perf_counter()
            self.records = self._run_engine(run, examples, eval_sets, hparams, bridge, total)
            resumed = run.resumed
            if run.dist.is_main:
                self._report(run, examples, eval_sets, time.perf_counter() - start, hparams)
        runtime = time.perf_counter() - start
        bridge.event("on_train_end")
        output = self._train_output(runtime, resumed.step if resumed else 0)
        if self.args.push_to_hub:
            self.push_to_hub()
        return output

    def _run_settings(self) -> Any:
        """The engine's RunSettings for this trainer: it warns where `chattune train` refuses
        (strict=False)."""
        from chattune.engine.setup import RunSettings

        attention = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        return RunSettings(self.args.output_dir, self.args.device, self._finetuning, self.args.bf16,
                           bool(self.args.fp16), report_to=tuple(self._train_args().report_to),
                           attn_implementation=attention if isinstance(attention, str) else None,
                           strict=False)

    def _set_up_run(self, run: Any, examples: list[Example]) -> tuple[dict[str, Any], int]:
        """The step plan, the model on the run's device (resumed weights loaded) and a fresh
        trainer.state; returns the hyperparameters each checkpoint records, which a resume is
        compared with."""
        from transformers import TrainerState

        from chattune.model.load import load_trained_weights
        from chattune.train.loop import count_steps

        total = count_steps(examples, self._train_args(), run.dist.world)
        # a warmup_steps count or a share of the steps needs the total
        self.cfg = self._train_args(total)
        self._to_device(run.device)
        # TensorFloat-32 matmuls on Ampere+
        if self.args.tf32 is not None and run.device.type == "cuda":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(
                self.args.tf32)
        # written into each checkpoint, which a resume is compared with
        hparams = self.cfg.model_dump()
        run.check_folder(hparams)  # warned about, as TRL's Trainer writes beside an earlier run
        if run.resumed:
            load_trained_weights(self.model, run.resumed.path)
        # trainer.state as transformers.Trainer keeps it, current while training (callbacks read it)
        self.state = TrainerState(global_step=run.resumed.step if run.resumed else 0,
                                  max_steps=total, logging_steps=self.cfg.logging_steps,
                                  save_steps=self.cfg.save_steps or 0,
                                  eval_steps=self.cfg.eval_steps or 0,
                                  train_batch_size=self.cfg.per_device_train_batch_size,
                                  is_world_process_zero=run.dist.is_main)
        return hparams, total

    def _run_engine(self, run: Any, examples: list[Example], eval_sets: dict[str, list[Example]],
                    hparams: dict[str, Any], bridge: Any, total_steps: int) -> list[dict[str, Any]]:
        """The engine's training with its outputs (checkpoints, metrics, the last step saved); the
        records logged."""
        from chattune.engine.training import train_with_outputs
        from chattune.templates.setup import stop_token_ids

        dtype = run.precision.compute
        return train_with_outputs(self.model, self.tokenizer, examples, self.cfg,
                                  total_steps=total_steps, device=run.device, dtype=dtype,
                                  stops=stop_token_ids(self.tokenizer), console=run.console,
                                  eval_examples=(eval_sets.get("") if list(eval_sets) == [""]
                                                 else eval_sets) or None,
                                  resumed=run.resumed, dist=run.dist, save_last=True,
                                  evaluate=self._eval_fn(run.device, dtype), on_step=bridge.on_step,
                                  on_record=bridge.on_record, hparams=hparams)

    def _train_output(self, runtime: float, first_step: int) -> Any:
        """transformers' TrainOutput of the run just ended; its summary is appended to
        state.log_history."""
        from transformers.trainer_utils import TrainOutput

        logged = self._training_records()
        step = self.state.global_step
        done = step - first_step
        samples = done * self.cfg.per_device_train_batch_size * self.cfg.gradient_accumulation_steps
        metrics = {"train_runtime": round(runtime, 4),
                   "train_samples_per_second": round(samples / runtime, 3),
                   "train_steps_per_second": round(done / runtime, 3),
                   "train_loss": sum(r["loss"] for r in logged) / max(len(logged), 1),
                   "epoch": self.state.epoch or 0.0}
        # TRL's last record carries the run's summary, with the last logged accuracy and token count
        last = next((r for r in reversed(self.state.log_history) if "mean_token_accuracy" in r), {})
        extra = {k: last[k] for k in ("mean_token_accuracy", "num_tokens") if k in last}
        self.state.log_history.append({**extra, **metrics, "step": step})
        return TrainOutput(step, metrics["train_loss"], metrics)

    def _training_records(self) -> list[dict[str, Any]]:
        """The last train()'s logged training records (eval records carry eval_loss instead of
        loss)."""
        return [r for r in self.records if "loss" in r]

    def add_callback(self, callback: Any) -> None:
        """Add a TrainerCallback (an instance or a class), as transformers.Trainer.add_callback."""
        self.callbacks.append(callback)

    def pop_callback(self, callback: Any) -> Any:
        """Remove and return a callback (an instance, or the first of a class); None when absent."""
        for i, cb in enumerate(self.callbacks):
            if cb is callback or (isinstance(callback, type)
                                  and (cb is callback or isinstance(cb, callback))):
                return self.callbacks.pop(i)
        return None

    def remove_callback(self, callback: Any) -> None:
        self.pop_callback(callback)

    def save_model(self, output_dir: str | None = None) -> Path:
        """The adapter (with peft) or the model, with tokenizer, template and stop tokens. A failed
        save names the last checkpoint (train() always checkpoints its last step)."""
        from chattune.engine.training import last_good_copy
        from chattune.errors import ChattuneError
        from chattune.outputs.save import save_pretrained_atomic
        from chattune.templates.setup import stop_token_ids

        path = Path(output_dir or self.cfg.output_dir)
        # never replace output_dir itself: it holds the checkpoints and metrics
        if output_dir is None:
            path = path / ("adapter" if hasattr(self.model, "peft_config") else "model")
        try:
            with self._quiet():  # transformers' "Writing model shards" bar
                return save_pretrained_atomic(self.model, self.tokenizer, path,
                                              stop_token_ids(self.tokenizer), card=self._card())
        except ChattuneError as e:
            raise last_good_copy(Path(self.cfg.output_dir), e) from None
