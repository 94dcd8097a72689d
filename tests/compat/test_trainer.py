"""`from chattune import SFTConfig, SFTTrainer`: a TRL script's arguments on chattune's engine."""

import json

import pytest
from conftest import make_tiny_model

from chattune import SFTConfig, SFTTrainer
from chattune.errors import ConfigError
from chattune.labels import IGNORE_INDEX

CHATS = [{"messages": [{"role": "user", "content": f"How do you say {w} in Spanish?"},
                       {"role": "assistant", "content": s}]}
         for w, s in [("dog", "perro"), ("cat", "gato"), ("house", "casa"), ("water", "agua"),
                      ("red", "rojo")]]


def test_course_style_lora_run(tmp_path, tokenizer):
    from peft import LoraConfig

    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=6, per_device_train_batch_size=2,
                     learning_rate=5e-3, logging_steps=1, save_steps=100, eval_strategy="steps",
                     eval_steps=3, warmup_steps=0.1)
    peft = LoraConfig(r=6, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         eval_dataset=CHATS[:2], processing_class=tokenizer, peft_config=peft)
    before = trainer.evaluate()["eval_loss"]
    out = trainer.train()
    assert out.global_step == 6 and trainer.evaluate()["eval_loss"] < before
    # 3 batches an epoch
    assert out.metrics["epoch"] == 2.0 and out.metrics["train_samples_per_second"] > 0
    # the prompt is masked, the answer and its end-of-turn token are trained
    first = trainer.train_examples[0]
    trained = tokenizer.decode([t for t in first.labels if t != IGNORE_INDEX])
    assert trained.startswith("perro") and trained.endswith("<|im_end|>")
    saved = trainer.save_model(str(tmp_path / "adapter"))
    assert ((saved / "adapter_model.safetensors").is_file()
            and (saved / "chat_template.jinja").is_file())
    own = (saved / "README.md").read_text()  # chattune's card, not peft's empty template
    assert "library_name: peft" in own and "  - r: 6" in own and "5 rows -> 5 examples" in own
    assert "## SFTConfig" in own and "| train loss |" in own and "max_steps: 6" in own
    card = trainer.create_model_card(tags="spanish", folder=saved).read_text()
    assert "- spanish" in card and "- sft" in card and "library_name: peft" in card


def test_saved_adapter_names_its_base_by_id_not_by_a_cache_folder(tmp_path, tokenizer):
    """A model loaded from a folder chattune converted (the built-in default's, a GGUF's) goes by
    the id that folder stands for, in adapter_config.json and the card: the adapter can be shared as
    it is."""
    import json

    from peft import LoraConfig

    from chattune.model.load import SOURCE_FILE

    folder = tmp_path / "cache" / "converted"
    make_tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / SOURCE_FILE).write_text("SomeOrg/tiny-chat\n")
    trainer = SFTTrainer(str(folder), args=SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1),
                         train_dataset=CHATS, peft_config=LoraConfig(r=4, task_type="CAUSAL_LM"))
    trainer.train()
    saved = trainer.save_model()
    assert (json.loads((saved / "adapter_config.json").read_text())["base_model_name_or_path"]
            == "SomeOrg/tiny-chat")
    assert "base_model: SomeOrg/tiny-chat" in (saved / "README.md").read_text()


def test_an_attention_kernel_that_cannot_train_here_is_refused_at_train(tmp_path, tokenizer):
    """A TRL script loading its model with attn_implementation="flex_attention" on a CPU gets
    chattune's message, not PyTorch's NotImplementedError from the first backward pass."""
    model = make_tiny_model(tokenizer)
    model.set_attn_implementation("flex_attention")
    trainer = SFTTrainer(model,
                         args=SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1,
                                        use_cpu=True),
                         train_dataset=CHATS, processing_class=tokenizer)
    with pytest.raises(ConfigError, match="flex_attention trains on CUDA GPUs only"):
        trainer.train()
    assert not (tmp_path / "out").exists()


def test_formatting_func_and_datasets_dataset(tmp_path, tokenizer):
    import datasets

    rows = datasets.Dataset.from_list([{"question": "2+2?", "answer": "4"},
                                       {"question": "3+3?", "answer": "6"}])
    trainer = SFTTrainer(make_tiny_model(tokenizer),
                         args=SFTConfig(output_dir=str(tmp_path), max_steps=1,
                                        packing=True, report_to="none"),
                         train_dataset=rows, tokenizer=tokenizer,
                         formatting_func=lambda r: f"### Question: {r['question']}\n ### Answer: "
                                                   f"{r['answer']}")
    ex = trainer.train_examples[0]
    assert ex.labels == ex.input_ids  # formatted text is plain language modelling, as in TRL
    assert trainer.train().global_step == 1


def test_unsupported_arguments_are_named(tokenizer):
    with pytest.raises(ValueError,
                       match="neftune_noise_alpha=5 is not supported by chattune: NEFTune"):
        SFTConfig(output_dir="x", neftune_noise_alpha=5)
    with pytest.raises(TypeError, match="'max_sequence_len' is not an argument of TRL's SFTConfig"):
        SFTConfig(output_dir="x", max_sequence_len=5)
    # TRL's or no effect
    SFTConfig(output_dir="x", neftune_noise_alpha=None, dataloader_num_workers=4, run_name="r")
    with pytest.raises(TypeError, match="SFTTrainer: chattune does not support optimizers"):
        SFTTrainer(make_tiny_model(tokenizer), train_dataset=CHATS, tokenizer=tokenizer,
                   optimizers=(object(), None))
    with pytest.raises(ConfigError, match="eval_strategy"):
        SFTTrainer(make_tiny_model(tokenizer), args=SFTConfig(eval_strategy="epoch"),
                   train_dataset=CHATS, tokenizer=tokenizer)


def test_push_to_hub_offline_says_where_the_model_is(tmp_path, tokenizer, monkeypatch):
    import huggingface_hub.constants

    from chattune.errors import HubError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, hub_model_id="me/tuned",
                     report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    trainer.train()
    with pytest.raises(HubError, match="could not upload to 'me/tuned'.*offline") as err:
        trainer.push_to_hub(tags=["course"])
    folder = tmp_path / "sft" / "hub"
    assert str(folder) in str(err.value) and (folder / "model.safetensors").is_file()
    card = (folder / "README.md").read_text()
    assert (card.startswith("---\nlibrary_name: transformers") and "- course" in card
            and "final loss" in card)


def test_trl_defaults_and_changed_args(tmp_path):
    args = SFTConfig(output_dir=str(tmp_path))
    # TRL 1.16's
    assert (args.learning_rate, args.num_train_epochs, args.logging_steps) == (2e-5, 3.0, 10)
    cfg = args.train_args(has_eval=False)
    assert ((cfg.lr_scheduler_type, cfg.warmup_ratio, cfg.save_steps, cfg.eval_steps)
            == ("linear", 0.0, 500, None))
    args.eval_strategy, args.eval_steps = "steps", None
    # transformers: eval_steps = logging_steps
    assert args.train_args(has_eval=True).eval_steps == 10
    with pytest.raises(ValueError, match="neftune_noise_alpha=5 is not supported"):
        args.neftune_noise_alpha = 5


def test_report_to_tensorboard(tmp_path, tokenizer):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, logging_steps=1,
                     report_to="tensorboard", gradient_checkpointing=False)
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    trainer.train()
    events = EventAccumulator(str(tmp_path / "sft" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]


def test_a_trl_sftconfig_converts(tmp_path):
    """A script that still builds TRL's own SFTConfig: its values are taken (TRL is installed by
    `make bench-train`, not by the tests' set-up, so this runs only where it is)."""
    trl = pytest.importorskip("trl")
    args = SFTConfig.from_training_arguments(trl.SFTConfig(output_dir=str(tmp_path), bf16=False,
                                                           max_steps=3, learning_rate=1e-4,
                                                           eval_strategy="no"))
    cfg = args.train_args(has_eval=False)
    assert ((cfg.max_steps, cfg.learning_rate, cfg.lr_scheduler_type, cfg.save_steps)
            == (3, 1e-4, "linear", 500))
    with pytest.raises(ValueError, match="neftune_noise_alpha=5 is not supported"):
        SFTConfig.from_training_arguments(trl.SFTConfig(output_dir=str(tmp_path), bf16=False,
                                                        neftune_noise_alpha=5))


def test_warmup_steps_count_is_a_share_of_the_runs_steps(tmp_path, tokenizer):
    """warmup_steps=3 over a 3-epoch run of 5 rows in batches of 2 (3 steps an epoch, 9 in all) is
    3/9 of it; with max_steps it is a share of those; below 1 it is a share already."""
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, warmup_steps=3,
                     report_to="none", save_strategy="no")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    trainer.args.logging_steps = 1
    trainer.train()
    lrs = [r["learning_rate"] for r in trainer.records if "loss" in r]
    assert trainer.cfg.warmup_ratio == pytest.approx(3 / 9) and len(lrs) == 9
    # warm for 3 steps, then decay
    assert lrs[0] == 0 and lrs[1] < lrs[2] < lrs[3] and lrs[3] == max(lrs)
    assert SFTConfig(warmup_steps=5, max_steps=20).train_args(has_eval=False).warmup_ratio == 0.25
    assert SFTConfig(warmup_steps=0.1).train_args(has_eval=False).warmup_ratio == 0.1


def test_qlora_as_trl_users_write_it(tmp_path, tiny_model_dir):
    """A model named by path with a BitsAndBytesConfig (on the trainer, or in model_init_kwargs) and
    a LoRA peft_config: a 4-bit base, fp32 adapters, trained and saved as a PEFT adapter."""
    pytest.importorskip("bitsandbytes", reason="the qlora extra is not installed")
    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    peft = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    in_args = {"model_init_kwargs": {"quantization_config": quant, "dtype": "bfloat16"}}
    for i, (on_trainer, on_args) in enumerate([({"quantization_config": quant}, {}),
                                               ({}, in_args)]):
        args = SFTConfig(output_dir=str(tmp_path / f"run{i}"), max_steps=2,
                         per_device_train_batch_size=2, bf16=True, learning_rate=1e-2, use_cpu=True,
                         report_to="none", **on_args)
        trainer = SFTTrainer(str(tiny_model_dir), args=args, train_dataset=CHATS, peft_config=peft,
                             **on_trainer)
        assert any(isinstance(m, bnb.nn.Linear4bit) for m in trainer.model.modules())
        assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
        assert trainer.train().global_step == 2
        assert (trainer.save_model() / "adapter_model.safetensors").is_file()
    with pytest.raises(ConfigError, match="both on SFTTrainer and in args.model_init_kwargs"):
        SFTTrainer(str(tiny_model_dir), args=SFTConfig(output_dir=str(tmp_path), model_init_kwargs={
            "quantization_config": quant}), train_dataset=CHATS, quantization_config=quant)


def test_trainer_surface_as_transformers_trainer(tmp_path, tokenizer):
    """state.log_history (TRL's keys and the final summary), train/eval datasets, processing_class,
    several named eval sets logged and evaluated under their names, evaluate(eval_dataset=...)."""
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=4, per_device_train_batch_size=2,
                     logging_steps=2, save_strategy="no", eval_strategy="steps", eval_steps=2,
                     report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         eval_dataset={"dogs": CHATS[:1], "cats": CHATS[1:3]},
                         processing_class=tokenizer)
    assert trainer.state.global_step == 0 and trainer.processing_class is tokenizer
    trainer.train()
    history = trainer.state.log_history
    assert (trainer.state.global_step == 4 and history[-1]["train_loss"] > 0
            and "train_runtime" in history[-1])
    logged = [r for r in history if "loss" in r]
    assert [r["step"] for r in logged] == [2,
                                           4] and all(r["num_tokens"] > 0 and "grad_norm" in r
                                                      for r in logged)
    assert all(0 <= r["mean_token_accuracy"] <= 1 for r in logged)
    # a record per set, as Trainer logs
    assert [r["step"] for r in history if "eval_dogs_loss" in r] == [2, 4]
    assert all("eval_dogs_mean_token_accuracy" in r for r in history if "eval_dogs_loss" in r)
    assert "eval_dogs_loss" in history[-3] and "eval_cats_loss" in history[-2]
    assert (len(trainer.train_dataset) == 5 and set(trainer.train_dataset.column_names)
            == {"input_ids", "labels"})
    assert set(trainer.eval_dataset) == {"dogs", "cats"} and len(trainer.eval_dataset["cats"]) == 2
    both = trainer.evaluate()
    assert set(both) >= {"eval_dogs_loss", "eval_cats_loss", "eval_cats_mean_token_accuracy"}
    assert trainer.evaluate("cats")["eval_cats_loss"] == both["eval_cats_loss"]
    other = trainer.evaluate(eval_dataset=CHATS[3:], metric_key_prefix="test")
    assert set(other) == {"test_loss", "test_perplexity", "test_mean_token_accuracy"}
    assert history[-1] == {**other, "step": 4}


def test_trl_loss_checkpointing_and_packing_arguments(tmp_path, tokenizer):
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                     loss_type="dft", gradient_checkpointing=True,
                     gradient_checkpointing_kwargs={"use_reentrant": False},
                     packing=True, packing_strategy="bfd", save_strategy="no", report_to="none")
    cfg = args.train_args(False)
    assert (cfg.loss_type == "dft" and cfg.gradient_checkpointing_kwargs
            == {"use_reentrant": False} and cfg.packing)
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    assert trainer.train().global_step == 2
    with pytest.raises(ConfigError,
                       match="packing_strategy must be 'bfd', 'bfd_split' or 'wrapped'"):
        SFTConfig(output_dir=str(tmp_path), packing_strategy="ffd").train_args(False)
    with pytest.warns(FutureWarning, match="chunked_nll"):  # TRL 1.16: a deprecated alias of nll
        assert SFTConfig(output_dir=str(tmp_path),
                         loss_type="chunked_nll").train_args(False).loss_type == "nll"
    with pytest.raises(ConfigError, match="loss_type"):
        SFTConfig(output_dir=str(tmp_path), loss_type="kto").train_args(False)


def test_trl_chat_format_helpers(tmp_path, tokenizer):
    import copy

    from datasets import Dataset

    from chattune import clone_chat_template, get_formatting_func_from_dataset, setup_chat_format

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    model, tok = setup_chat_format(make_tiny_model(tokenizer), tok, format="chatml",
                                   resize_to_multiple_of=123)
    assert (model.get_input_embeddings().num_embeddings % 123 == 0
            and tok.eos_token == tok.pad_token == "<|im_end|>")

    # a tokenizer directory with another template and a new special token
    source = copy.deepcopy(tokenizer)
    setup_chat_format(None, source, "gemma")
    source.save_pretrained(tmp_path / "source")
    target = copy.deepcopy(tokenizer)
    target.chat_template = None
    model, target, added = clone_chat_template(make_tiny_model(tokenizer), target,
                                               str(tmp_path / "source"))
    assert target.chat_template == source.chat_template and target.eos_token == "<end_of_turn>"
    assert target.convert_tokens_to_ids("<start_of_turn>") in added
    assert model.get_input_embeddings().num_embeddings % 64 == 0
    # filled with <extra_id_N>
    assert model.get_input_embeddings().num_embeddings == len(target.get_vocab())

    chats = Dataset.from_dict({"messages": [[{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello"}]]})
    fmt = get_formatting_func_from_dataset(chats, tokenizer)
    text = tokenizer.apply_chat_template(chats[0]["messages"], tokenize=False)
    assert fmt(chats[0]) == text and fmt(chats[0:1]) == [text]
    pairs = Dataset.from_list([{"prompt": "2+2?", "completion": "4"}])
    assert get_formatting_func_from_dataset(pairs,
                                            tokenizer)(pairs[0:1])[0].endswith("4<|im_end|>\n")
    assert get_formatting_func_from_dataset(Dataset.from_dict({"text": ["x"]}), tokenizer) is None


def test_chat_template_path_tags_and_transformed_datasets(tmp_path, tokenizer):
    import copy

    import datasets

    from chattune.templates import BUILTIN_TEMPLATES

    jinja = tmp_path / "template.jinja"
    jinja.write_text(BUILTIN_TEMPLATES["chatml"].jinja)
    args = SFTConfig(output_dir=str(tmp_path / "a"), max_steps=1, chat_template_path=str(jinja),
                     report_to="none")
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=bare)
    assert trainer.processing_class.chat_template == jinja.read_text()
    assert {"sft", "trl"} <= set(trainer.model.model_tags)
    trainer.train()
    # the last record carries the metrics
    assert 0 <= trainer.state.log_history[-1]["mean_token_accuracy"] <= 1

    source = copy.deepcopy(tokenizer)
    from chattune import setup_chat_format

    setup_chat_format(None, source, "phi3")
    source.save_pretrained(tmp_path / "phi3-tokenizer")
    args = SFTConfig(output_dir=str(tmp_path / "b"),
                     chat_template_path=str(tmp_path / "phi3-tokenizer"))
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=copy.deepcopy(tokenizer))
    assert trainer.processing_class.chat_template == source.chat_template
    assert "<|assistant|>" in trainer.processing_class.decode(trainer.train_examples[0].input_ids)

    transformed = datasets.Dataset.from_dict({"text": ["hello"]}).with_transform(lambda b: b)
    with pytest.raises(ValueError, match=r"Dataset\.with_transform\(\).*dataset\.map\(\)"):
        SFTTrainer(make_tiny_model(tokenizer), args=SFTConfig(output_dir=str(tmp_path / "c")),
                   train_dataset=transformed, processing_class=tokenizer)


def test_wrapped_packing_cuts_the_stream_into_max_length_rows(tmp_path, tokenizer):
    rows = [{"text": "one two three four five six seven"}, {"text": "eight nine ten"}]
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, packing=True,
                     packing_strategy="wrapped", max_length=4, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=rows,
                         processing_class=tokenizer)
    plain = SFTTrainer(make_tiny_model(tokenizer),
                       args=SFTConfig(output_dir=str(tmp_path), max_length=4096),
                       train_dataset=rows, processing_class=tokenizer)
    stream = [t for ex in plain.train_examples for t in ex.input_ids]
    assert len(stream) > 8
    assert [t for ex in trainer.train_examples for t in ex.input_ids] == stream
    assert all(len(ex.input_ids) == 4 for ex in trainer.train_examples[:-1])
    assert trainer.train().global_step == 1


def test_packed_datasets_show_seq_lengths_and_eval_packing(tmp_path, tokenizer):
    args = SFTConfig(output_dir=str(tmp_path), packing=True, max_length=64, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         eval_dataset=CHATS[:2], processing_class=tokenizer)
    packed = trainer.train_dataset
    assert sum(len(s) for s in packed["seq_lengths"]) == len(CHATS)
    assert all(sum(s) == len(ids) <= 64
               for s, ids in zip(packed["seq_lengths"], packed["input_ids"]))
    assert "seq_lengths" in trainer.eval_dataset.column_names
    trainer.args.eval_packing = False
    assert "seq_lengths" not in trainer.eval_dataset.column_names and len(trainer.eval_dataset) == 2


def test_pretokenized_rows_as_trl_takes_them(tmp_path, tokenizer):
    rows = [{"input_ids": [5, 6, 7, 8], "labels": [5, 6, -100, 8], "assistant_masks": [1] * 4},
            {"input_ids": [9, 10, 11], "completion_mask": [0, 1, 1]},
            {"input_ids": [12, 13, 14, 15]},
            {"input_ids": [16, 17, 18], "assistant_masks": [0, 0, 1]}]
    args = SFTConfig(output_dir=str(tmp_path), max_length=2, max_steps=1, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=rows,
                         processing_class=tokenizer)
    # labels as given, else from the mask, else every token; cut to max_length; a row left with
    # nothing trained (the last: its trained token is past max_length) is dropped
    assert trainer.train_dataset[:]["labels"] == [[5, 6], [-100, 10], [12, 13]]
    assert trainer.train().global_step == 1
    skip = SFTConfig(output_dir=str(tmp_path), dataset_kwargs={"skip_prepare_dataset": True},
                     report_to="none")
    with pytest.raises(ValueError, match="row 1: .*Add a 'labels' column"):
        SFTTrainer(make_tiny_model(tokenizer), args=skip,
                   train_dataset=[{"input_ids": [1, 2], "completion_mask":
                                    [0, 1]}], processing_class=tokenizer)


def test_compute_metrics_and_callbacks_with_early_stopping(tmp_path, tokenizer):
    from transformers import EarlyStoppingCallback, TrainerCallback

    seen: dict[str, list] = {"log": [], "evaluate": [], "steps": []}

    class Recorder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen["log"].append(dict(logs))

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            seen["evaluate"].append(dict(metrics))

        def on_step_end(self, args, state, control, **kwargs):
            seen["steps"].append(state.global_step)

    def metrics(pred):  # transformers' EvalPrediction: logits and labels of every eval row
        assert pred.predictions.shape[:2] == pred.label_ids.shape and pred.predictions.ndim == 3
        return {"rows": float(pred.label_ids.shape[0])}

    # learning_rate 0: eval loss never improves, so early stopping (patience 2) ends the run at the
    # third eval
    args = SFTConfig(output_dir=str(tmp_path), max_steps=20, learning_rate=1e-12,
                     per_device_train_batch_size=2, eval_strategy="steps", eval_steps=1,
                     save_steps=1, logging_steps=1, load_best_model_at_end=True,
                     metric_for_best_model="eval_loss", report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         eval_dataset=CHATS[:2],
                         processing_class=tokenizer, compute_metrics=metrics,
                         callbacks=[Recorder, EarlyStoppingCallback(early_stopping_patience=2)])
    out = trainer.train()
    assert out.global_step == 3 and seen["steps"] == [1, 2, 3]
    assert [m["eval_rows"] for m in seen["evaluate"]] == [2.0, 2.0, 2.0]
    assert all("loss" in m and "mean_token_accuracy" in m for m in seen["log"])
    assert trainer.state.best_metric == seen["evaluate"][0]["eval_loss"]
    assert (trainer.state.log_history[-2]["eval_rows"] == 2.0
            and "train_loss" in trainer.state.log_history[-1])
    prediction = trainer.predict(CHATS[:3])
    assert prediction.predictions.shape[0] == 3 and prediction.metrics["test_rows"] == 3.0


@pytest.mark.parametrize("kind", ["prompt_tuning", "prefix_tuning"])
def test_prompt_learning_peft_methods_train(tmp_path, tokenizer, kind):
    import torch
    from peft import PrefixTuningConfig, PromptTuningConfig, TaskType

    config = (PromptTuningConfig if kind == "prompt_tuning" else PrefixTuningConfig)(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, learning_rate=1e-2,
                     gradient_checkpointing=False, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer, peft_config=config)
    before = {n: p.clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("prompt_encoder" in n for n in changed)
    with pytest.raises(ValueError, match="packing=False"):
        SFTTrainer(make_tiny_model(tokenizer),
                   args=SFTConfig(output_dir=str(tmp_path), packing=True),
                   train_dataset=CHATS, processing_class=tokenizer, peft_config=config)


def test_chattune_train_and_sfttrainer_give_the_same_losses(tmp_path, tiny_model_dir, tokenizer):
    """One engine: the same rows, model and arguments through `chattune train` and through
    SFTTrainer."""
    from conftest import write_jsonl

    from chattune.config import build_config
    from chattune.model.load import load_model
    from chattune.pipeline import run_training

    data = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    same = {"max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
            "lr_scheduler_type": "linear", "warmup_ratio": 0.0, "logging_steps": 1, "seed": 7,
            "max_length": 128, "bf16": False, "gradient_checkpointing": False}
    cfg = build_config({"model": str(tiny_model_dir), "data": {"train": str(data)},
                        "finetuning": "full", "output_dir": str(tmp_path / "cli"), "device": "cpu",
                        "merge": False, **same})
    cli = [r["loss"] for r in run_training(cfg).records if "loss" in r]
    trainer = SFTTrainer(load_model(tiny_model_dir),
                         args=SFTConfig(output_dir=str(tmp_path / "api"), use_cpu=True,
                                        report_to="none", save_strategy="no", **same),
                         train_dataset=CHATS, processing_class=tokenizer)
    trainer.train()
    api = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(cli) == 3 and api == cli


# TRL 1.16's own SFTConfig fields (trl/trainer/sft_config.py and base_config.py), beside
# TrainingArguments'
TRL_SFT_FIELDS = ["model_init_kwargs", "trust_remote_code", "router_aux_loss_coef",
                  "chat_template_path", "dataset_text_field", "dataset_kwargs", "dataset_num_proc",
                  "eos_token", "max_length", "truncation_mode", "shuffle_dataset", "packing",
                  "packing_strategy", "padding_free", "pad_to_multiple_of", "eval_packing",
                  "completion_only_loss", "assistant_only_loss", "loss_type",
                  "activation_offloading", "pad_token", "lr_scheduler_kwargs", "use_liger_kernel",
                  "torch_empty_cache_steps"]


def test_every_trl_argument_is_implemented_accepted_or_refused_with_a_reason():
    import dataclasses

    from transformers import TrainingArguments

    from chattune.compat.trl.trl_arguments import ALL, IMPLEMENTED, NO_EFFECT, REFUSED

    names = {f.name for f in dataclasses.fields(TrainingArguments)} | set(TRL_SFT_FIELDS)
    assert names <= ALL, sorted(names - ALL)
    groups = [IMPLEMENTED, set(NO_EFFECT), set(REFUSED)]
    assert sum(len(g) for g in groups) == len(ALL)  # each name in exactly one group
    defaults = TrainingArguments(output_dir="x")
    # each refusal leaves TRL's default alone, and says why
    for name, (default, why) in REFUSED.items():
        if hasattr(defaults, name):
            assert getattr(defaults, name) in (default, "", [], {}), name
        SFTConfig(**{name: default})
        assert why


def test_trl_arguments_take_effect(tmp_path, tokenizer):
    args = SFTConfig(output_dir=str(tmp_path), adam_epsilon=1e-6, optim="adamw_torch",
                     logging_steps=0.5, max_steps=4, lr_scheduler_type="constant_with_warmup",
                     torch_compile=False, activation_checkpointing=True, activation_offloading=True,
                     logging_first_step=True, report_to="none", save_strategy="no")
    cfg = args.train_args(False)
    assert (cfg.adam_epsilon, cfg.logging_steps, cfg.lr_scheduler_type) == (1e-6, 2, "constant")
    assert cfg.gradient_checkpointing and cfg.activation_offloading
    with pytest.raises(ConfigError, match="optim='adafactor'"):
        SFTConfig(optim="adafactor").train_args(False)
    import copy

    # the trainer sets eos on the tokenizer, as TRL does
    eos, tokenizer = "<|im_start|>", copy.deepcopy(tokenizer)
    trainer = SFTTrainer(make_tiny_model(tokenizer),
                         args=SFTConfig(output_dir=str(tmp_path), eos_token=eos,
                         max_steps=1, report_to="none", logging_first_step=True,
                                                                    activation_offloading=True),
                         train_dataset=[{"text": "a b c"}], processing_class=tokenizer)
    assert trainer.train_examples[0].input_ids[-1] == tokenizer.convert_tokens_to_ids(eos)
    assert trainer.train().global_step == 1
    with pytest.raises(ValueError, match="eos_token='<nope>' is not in the tokenizer's vocabulary"):
        SFTTrainer(make_tiny_model(tokenizer), args=SFTConfig(eos_token="<nope>"),
                   train_dataset=[{"text": "a"}], processing_class=tokenizer)


@pytest.mark.parametrize("kind", ["ia3", "dora", "rslora"])
def test_other_peft_methods_train_through_peft_config(tmp_path, tokenizer, kind):
    import torch
    from peft import IA3Config, LoraConfig

    config = IA3Config(task_type="CAUSAL_LM") if kind == "ia3" else LoraConfig(
        r=4, target_modules="all-linear", task_type="CAUSAL_LM", use_dora=kind == "dora",
        use_rslora=kind == "rslora")
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, learning_rate=1e-2, report_to="none",
                     save_strategy="no")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer, peft_config=config)
    before = {n: p.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert before and any(not torch.equal(p, after[n]) for n, p in before.items())


def test_sfttrainer_says_what_would_mix_runs_and_a_failed_save_names_the_checkpoint(
        tmp_path, tokenizer, capsys, monkeypatch):
    """TRL's Trainer writes beside an earlier run and resumes under changed arguments, and
    chattune's SFTTrainer does too (a notebook cell run twice must work), but it says so; a failed
    save_model names the checkpoint that holds the weights."""
    import errno

    out = tmp_path / "sft"
    args = SFTConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=2,
                     learning_rate=1e-3, logging_steps=1, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    trainer.train()
    assert (out / "checkpoint-2" / "train_config.yaml").is_file()
    capsys.readouterr()
    trainer.train()  # the same cell again
    said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert f"warning: {out} holds checkpoints of an earlier run (checkpoint-2 the newest)" in said

    trainer.args = SFTConfig(output_dir=str(out), max_steps=3, per_device_train_batch_size=2,
                             learning_rate=5e-3, logging_steps=1, report_to="none")
    assert trainer.train(resume_from_checkpoint=True).global_step == 3
    said = " ".join(capsys.readouterr().out.split())
    assert f"warning: resuming {out / 'checkpoint-2'} with arguments that differ" in said
    assert "learning_rate: checkpoint 0.001, now 0.005" in said and "max_steps" not in said

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("chattune.outputs.save.write_pretrained", full_disk)
    from chattune.errors import TrainingError

    with pytest.raises(TrainingError,
                       match=f"No space left on device.*the last checkpoint of the weights is "
                                            f"{out / 'checkpoint-3'}"):
        trainer.save_model()
    assert not (out / "model").exists()


def test_predict_is_one_forward_pass_and_its_metrics_are_evaluates(tmp_path, tokenizer):
    args = SFTConfig(output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         eval_dataset=CHATS, processing_class=tokenizer)
    calls = []
    hook = trainer.model.register_forward_hook(lambda *a: calls.append(1))
    prediction = trainer.predict(CHATS)
    hook.remove()
    assert len(calls) == 1 and prediction.predictions.shape[0] == 5  # 5 rows, one batch of 8
    evaluated = trainer.evaluate()  # the loss in chunks, from the hidden states
    assert prediction.metrics["test_loss"] == pytest.approx(evaluated["eval_loss"], rel=1e-4)
    assert (prediction.metrics["test_mean_token_accuracy"]
            == pytest.approx(evaluated["eval_mean_token_accuracy"]))
    # predict logs nothing, as in transformers
    assert not any("test_loss" in r for r in trainer.state.log_history)


def test_changed_args_between_train_calls_prepare_the_data_again(tmp_path, tokenizer):
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to="none")
    trainer = SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
                         processing_class=tokenizer)
    trained = [ex.num_trained for ex in trainer.train_examples]
    trainer.args = SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to="none",
                             assistant_only_loss=False, completion_only_loss=False)
    assert [ex.num_trained for ex in trainer.train_examples] != trained  # the prompt is trained now
    trainer.args = SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", packing=True,
                             packing_strategy="wrapped", max_length=8)
    assert all(len(ex.input_ids) <= 8 for ex in trainer.train_examples)


def test_train_writes_the_report_and_curves_as_chattune_train_does(tmp_path, tokenizer):
    """report.html (the same page `chattune train` writes) and loss.png beside metrics.jsonl after
    train()."""
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
                     logging_steps=1, report_to="none")
    SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=CHATS,
               processing_class=tokenizer).train()
    out = tmp_path / "sft"
    page = (out / "report.html").read_text()
    for section in ("Run", "Summary", "Curves", "Data", "Timings", "Resolved config"):
        assert f"<h2>{section}</h2>" in page, section
    assert "train examples" in page and "per_device_train_batch_size: 2" in page
    # the run names itself as `chattune train`'s does
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "full" and "train_dataset given to SFTTrainer" in info["data"][0]
    for png in ("loss.png", "learning_rate.png", "grad_norm.png"):
        assert (out / png).stat().st_size > 1000
