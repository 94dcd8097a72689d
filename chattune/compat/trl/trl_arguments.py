"""Every argument of TRL 1.16's SFTConfig (transformers 5's TrainingArguments and TRL's own) and
what chattune does with it: implemented with TRL's meaning, accepted without effect on training
(with why), or refused unless left at TRL's default (with why). A name outside this table is not an
SFTConfig argument at all.
"""

from __future__ import annotations

from typing import Any

# Implemented with TRL's meaning: args.py (SFTConfig.train_args) or the trainer reads them.
IMPLEMENTED = {
    # steps, batches, optimizer, schedule
    "num_train_epochs", "max_steps", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_ratio",
    "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "optim", "seed",
    # logging, evaluation, checkpoints
    "logging_strategy", "logging_steps", "logging_first_step", "eval_strategy",
    "evaluation_strategy", "eval_steps", "save_strategy", "save_steps", "save_total_limit",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "report_to",
    "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
    # precision, memory, speed, device
    "bf16", "fp16", "tf32", "gradient_checkpointing", "gradient_checkpointing_kwargs",
    "activation_checkpointing", "activation_checkpointing_kwargs", "activation_offloading",
    "torch_compile", "use_liger_kernel", "use_cpu", "use_mps_device",
    # model and data
    "model_init_kwargs", "trust_remote_code", "chat_template_path", "dataset_text_field",
    "dataset_kwargs", "eos_token", "pad_token", "max_length", "max_seq_length", "truncation_mode",
    "packing", "packing_strategy", "padding_free", "eval_packing", "completion_only_loss",
    "assistant_only_loss", "loss_type",
}

# Accepted, and without effect on what is trained (the reason, for the README and for anyone
# asking).
NO_EFFECT = {
    "output_dir": "read by the trainer",
    "run_name": "trackers name runs themselves", "project": "trackers name runs themselves",
    "trackio_space_id": "trackio reads its own settings",
    "trackio_bucket_id": "trackio reads its own settings",
    "trackio_static_space_id": "trackio reads its own settings", "log_level": "logging verbosity",
    "log_level_replica": "logging verbosity", "log_on_each_node": "logging",
    "logging_nan_inf_filter": "chattune stops on a NaN/inf loss instead of hiding it",
    "include_num_input_tokens_seen": "num_tokens is always logged",
    "disable_tqdm": "progress display", "skip_memory_metrics": "peak memory is logged on GPUs",
    "debug": "transformers' debug modes",
    "dataset_num_proc": "rows in memory are prepared in one process, tokenised in batches",
    "shuffle_dataset": "every epoch is shuffled from the seed",
    "dataloader_drop_last": "no DataLoader: batches are planned from the prepared examples",
    "dataloader_num_workers": "no DataLoader", "dataloader_pin_memory": "no DataLoader",
    "dataloader_persistent_workers": "no DataLoader", "dataloader_prefetch_factor": "no DataLoader",
    "dataloader_multiprocessing_context": "no DataLoader", "dataloader_in_order": "no DataLoader",
    "remove_unused_columns": "rows become conversations or examples; other columns are not kept",
    "label_names": "labels are built by chattune",
    "length_column_name": "lengths come from the examples",
    "train_sampling_strategy": "batches are planned by length inside shuffled windows",
    "prediction_loss_only": "evaluation computes the loss; compute_metrics gets logits when given",
    "eval_do_concat_batches": "evaluation concatenates",
    "eval_use_gather_object": "evaluation sums over processes",
    "eval_accumulation_steps": "logits for compute_metrics are moved to the CPU per batch",
    "include_for_metrics": "compute_metrics gets logits and labels",
    "save_only_model": "checkpoints always carry what an exact resume needs",
    "save_on_each_node": "the main process writes",
    "enable_jit_checkpoint": "Ctrl-C always checkpoints",
    "hub_strategy": "push_to_hub() uploads the saved model",
    "hub_always_push": "push_to_hub() uploads",
    "hub_revision": "push_to_hub(revision=...) takes it",
    "ignore_data_skip": "resume continues at the exact data position",
    "restore_callback_states_from_checkpoint": "callbacks are given anew",
    "full_determinism": "runs are seeded (data order, init, dropout)",
    "data_seed": "the data order follows seed",
    "use_cache": "the KV cache is never used in training",
    "torch_empty_cache_steps": "memory is not returned to the allocator mid-run",
    "ddp_find_unused_parameters": "DDP is set up by chattune",
    "ddp_bucket_cap_mb": "DDP is set up by chattune",
    "ddp_broadcast_buffers": "DDP is set up by chattune",
    "ddp_static_graph": "DDP is set up by chattune",
    "ddp_backend": "the launcher's backend (nccl on GPUs, gloo on CPUs)",
    "ddp_timeout": "torch's default", "local_rank": "read from the launcher's environment",
    "accelerator_config": "chattune's loop, not accelerate's", "do_train": "script flag",
    "do_eval": "script flag", "do_predict": "script flag",
    "resume_from_checkpoint": "script value; pass it to train()",
    "average_tokens_across_devices": "the loss is always normalised by the trained tokens of all "
                                     "processes",
    "pad_to_multiple_of": "batches are padded to their longest row or not padded at all (the loss "
                          "is the same)",
}

# Refused unless at TRL's default: (TRL's default, why).
REFUSED: dict[str, tuple[Any, str]] = {
    "lr_scheduler_kwargs": (None, "chattune's schedules (linear, cosine, constant) take no extra "
                                  "arguments"),
    "optim_args": (None, "chattune trains with torch's AdamW"),
    "optim_target_modules": (None, "chattune trains with torch's AdamW"),
    "label_smoothing_factor": (0.0, "the loss is plain token cross-entropy (or dft)"),
    "neftune_noise_alpha": (None, "NEFTune embedding noise is not implemented"),
    "router_aux_loss_coef": (None, "chattune trains on the token loss alone (no MoE load-balancing "
                                   "loss)"),
    "bf16_full_eval": (False, "evaluation runs in the training precision"),
    "fp16_full_eval": (False, "evaluation runs in the training precision"),
    "torch_compile_backend": (None, "torch_compile uses inductor on each decoder layer"),
    "torch_compile_mode": (None, "torch_compile uses inductor's default mode"),
    "liger_kernel_config": (None, "use_liger_kernel applies Liger's default kernels"),
    "auto_find_batch_size": (False, "set per_device_train_batch_size, or max_tokens_per_batch in "
                                    "chattune train"),
    "eval_delay": (0, "evaluation runs every eval_steps from the first"),
    "eval_on_start": (False, "call trainer.evaluate() before trainer.train()"),
    "batch_eval_metrics": (False, "compute_metrics is called once per evaluation"),
    "parallelism_config": (None, "several processes run DDP through torchrun or accelerate launch"),
    "fsdp": (None,
             "the TRL-style trainer runs DDP; sharded training is chattune train's strategy: fsdp"),
    "fsdp_config": (None, "the TRL-style trainer runs DDP; sharded training is chattune train's "
                          "strategy: fsdp"),
    "deepspeed": (None, "DeepSpeed is not supported; sharded training is chattune train's "
                        "strategy: fsdp"),
}

ALL = IMPLEMENTED | set(NO_EFFECT) | set(REFUSED)


def check_argument(name: str, value: Any) -> None:
    """TypeError for a name that is not TRL's, ValueError for a refused argument set away from TRL's
    default."""
    if name not in ALL:
        raise TypeError(f"SFTConfig: {name!r} is not an argument of TRL's SFTConfig (or "
                        "transformers' TrainingArguments)")
    if name in REFUSED:
        default, why = REFUSED[name]
        if value != default and not (default is None and value in ({}, [], "")):
            raise ValueError(f"SFTConfig: {name}={value!r} is not supported by chattune: {why} "
                             f"(leave it at {default!r})")
