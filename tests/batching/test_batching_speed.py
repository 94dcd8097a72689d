"""Speed features of batching are exact: padding-free micro-batches train what padded ones do, and a
token budget covers the epoch once with every micro-batch inside it."""

import copy

import pytest
import torch
from conftest import make_tiny_model
from test_train import cfg, examples

from chattune.batching import Example
from chattune.batching.collate import collate, collate_padding_free, plan_batches
from chattune.labels import IGNORE_INDEX
from chattune.train.loop import train
from chattune.train.loss import summed_loss

CPU = torch.device("cpu")


def test_padding_free_batch_has_no_padding_and_the_same_loss(tokenizer, tiny_model):
    exs = examples(tokenizer, 6)
    rows = [[e] for e in exs]
    padded, flat = (collate(rows, tokenizer.pad_token_id),
                    collate_padding_free(rows, tokenizer.pad_token_id))
    assert flat.input_ids.shape == (1, sum(len(e.input_ids) for e in exs)) < padded.input_ids.shape
    assert flat.num_trained == padded.num_trained
    with torch.no_grad():
        torch.testing.assert_close(summed_loss(tiny_model, flat), summed_loss(tiny_model, padded),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_the_trained_index_selects_what_the_label_mask_does(tokenizer, tiny_model, packed):
    """The loss gathers trained positions by an index laid out on the CPU (no host sync on a GPU):
    the same positions, in the same order, as the boolean mask of trained labels, and as many as
    num_trained."""
    exs = examples(tokenizer, 7)
    rows = [exs[:3], exs[3:5], exs[5:]] if packed else [[e] for e in exs]
    batch = collate(rows, tokenizer.pad_token_id)
    mask = batch.labels[:, 1:] != IGNORE_INDEX
    assert batch.trained_index.numel() == batch.num_trained == int(mask.sum())
    hidden = torch.randn(*batch.labels.shape, 5)
    torch.testing.assert_close(hidden.reshape(-1, 5)[batch.trained_index], hidden[:, :-1][mask],
                               rtol=0, atol=0)
    torch.testing.assert_close(batch.labels.reshape(-1)[batch.trained_index + 1],
                               batch.labels[:, 1:][mask])
    # without the index (a batch made elsewhere) the loss finds the positions itself
    with torch.no_grad():
        unindexed = copy.copy(batch)
        unindexed.trained_index = None
        torch.testing.assert_close(summed_loss(tiny_model, unindexed),
                                   summed_loss(tiny_model, batch))


def test_padding_free_training_follows_the_padded_loss_curve(tokenizer):
    exs = examples(tokenizer, 16)
    run = {"finetuning": "full", "max_steps": 4, "per_device_train_batch_size": 4,
           "learning_rate": 3e-3}
    base = make_tiny_model(tokenizer)
    padded = train(copy.deepcopy(base), exs, cfg(**run), pad_id=tokenizer.pad_token_id, device=CPU)
    flat = train(copy.deepcopy(base), exs, cfg(**run, padding_free=True),
                 pad_id=tokenizer.pad_token_id, device=CPU)
    assert [r["loss"] for r in flat] == pytest.approx([r["loss"] for r in padded], rel=1e-4)
    # the same rows in every step
    assert [r["tokens"] for r in flat] == [r["tokens"] for r in padded]


@pytest.mark.parametrize("padding_free", [False, True])
def test_token_budget_batches_cover_the_epoch_within_the_budget(padding_free):
    lengths = [5, 90, 33, 12, 64, 7, 250, 40, 18, 120, 3, 77] * 3
    exs = [Example([1] * n, [1] * n) for n in lengths]
    plan = plan_batches(exs, 8, packing=False, max_length=512, seed=3, max_tokens=200,
                        padding_free=padding_free)
    assert sorted(i for batch in plan for row in batch for i in row) == list(range(len(exs)))
    for batch in plan:
        sizes = [len(exs[row[0]].input_ids) for row in batch]
        cost = sum(sizes) if padding_free else len(sizes) * max(sizes)
        # only a lone example longer than the budget goes over
        assert cost <= 200 or len(batch) == 1
    assert any(len(batch) > 8 for batch in plan)  # short examples fill a batch past the row count


def test_token_budget_with_packing_takes_whole_rows():
    exs = [Example([1] * n, [1] * n) for n in [100, 80, 60, 40, 20] * 4]
    plan = plan_batches(exs, 8, packing=True, max_length=128, seed=0, max_tokens=300)
    assert all(len(batch) <= 2 for batch in plan)  # 300 // 128 rows of 128 tokens


def test_flex_attention_keeps_padding_free_documents_apart(tokenizer, tiny_model):
    """FlexAttention (the variable-length kernel padding-free batches want on a GPU) builds its
    document mask from the position ids as SDPA does: the padding-free loss is the padded one.
    Forward only: on a CPU FlexAttention has no backward pass (training with it there is refused,
    below)."""
    rows = [[e] for e in examples(tokenizer, 6)]
    with torch.no_grad():
        padded = summed_loss(tiny_model, collate(rows, tokenizer.pad_token_id))
        tiny_model.set_attn_implementation("flex_attention")
        flat = summed_loss(tiny_model, collate_padding_free(rows, tokenizer.pad_token_id))
    torch.testing.assert_close(flat, padded, atol=1e-4, rtol=1e-5)


def test_padding_free_on_a_gpu_loads_a_variable_length_attention_kernel(monkeypatch):
    import importlib.util

    from chattune.train.speed import attention_kernel

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    find_spec = importlib.util.find_spec
    for installed, kernel in ((False, "flex_attention"), (True, "flash_attention_2")):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, installed=installed: object()
                            if installed and name == "flash_attn" else find_spec(name))
        assert attention_kernel(None, True, cuda) == kernel
        # FlexAttention trains on CUDA only: SDPA there
        assert attention_kernel(None, True, cpu) is None
    assert attention_kernel(None, False, cuda) is None  # padded rows: SDPA
    assert attention_kernel("eager", True, cuda) == "eager"  # what the config asks for


@pytest.mark.parametrize("kernel", ["flex_attention", "flash_attention_2"])
def test_attention_kernels_that_cannot_train_here_are_refused_before_any_work(
        kernel, tmp_path, tiny_model_dir, gsm8k_small):
    from chattune.config import build_config
    from chattune.errors import ConfigError
    from chattune.pipeline import run_training

    cfg = build_config({"model": str(tiny_model_dir), "data": {"train": str(gsm8k_small)},
                        "device": "cpu", "attn_implementation": kernel,
                        "output_dir": str(tmp_path / "run")})
    with pytest.raises(ConfigError,
                       match=f"attn_implementation: {kernel} trains on CUDA GPUs only .* use sdpa"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.cuda
@pytest.mark.parametrize("kernel", ["flex_attention", "flash_attention_2"])
def test_padding_free_with_a_variable_length_kernel_follows_the_padded_loss_curve_on_the_gpu(
        kernel, tmp_path, tiny_model_dir, gsm8k_small):
    if kernel == "flash_attention_2":
        pytest.importorskip("flash_attn", reason="flash-attn is not installed")
    from chattune.config import build_config
    from chattune.pipeline import run_training

    losses = {}
    for name, extra in (("padded", {}),
                        ("padding-free", {"attn_implementation": kernel, "padding_free": True})):
        cfg = build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / name),
                            "data": {"train": str(gsm8k_small),
                                     "columns": {"question": "user", "answer": "assistant"}},
                            "max_steps": 4, "per_device_train_batch_size": 4, "merge": False,
                            "lora": {"dropout": 0.0}, **extra})
        losses[name] = [r["loss"] for r in run_training(cfg).records if "loss" in r]
    assert losses["padding-free"] == pytest.approx(losses["padded"], rel=2e-2)  # bf16 noise


@pytest.mark.slow
def test_compiled_layers_follow_the_eager_loss_curve_and_generation_runs_eager(tokenizer):
    import torch._dynamo
    from torch._dynamo.utils import counters

    from chattune.data.schema import Conversation, Message
    from chattune.prepare.examples import prepare_examples

    # lengths vary from batch to batch (41 to 64 tokens)
    convs = [Conversation([Message("user", "What is " + "very " * (i % 13) + f"{i}?"),
                           Message("assistant", "It is " + "so " * (i * 7 % 11) + "fine.")])
             for i in range(32)]
    exs, _ = prepare_examples(convs, tokenizer, template=None, train_on="all_assistant",
                              max_length=256)
    run = {"finetuning": "full", "max_steps": 6, "per_device_train_batch_size": 4,
           "learning_rate": 3e-3}
    base = make_tiny_model(tokenizer)
    eager = train(copy.deepcopy(base), exs, cfg(**run), pad_id=tokenizer.pad_token_id, device=CPU)
    model = copy.deepcopy(base)
    torch._dynamo.reset()
    counters.clear()
    compiled = train(model, exs, cfg(**run, compile=True), pad_id=tokenizer.pad_token_id,
                     device=CPU)
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=1e-4)
    # eager again afterwards
    assert all(layer._compiled_call_impl is None for layer in model.model.layers)
    # dynamic shapes: a new length compiles nothing new; at most a second graph for a batch without
    # padding (transformers then passes no attention mask)
    assert counters["stats"]["unique_graphs"] <= 2


def test_liger_where_it_cannot_run_is_refused_before_any_work(tmp_path, tiny_model_dir,
                                                              gsm8k_small):
    from chattune.config import build_config
    from chattune.errors import ConfigError
    from chattune.pipeline import run_training

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: liger may run here")
    cfg = build_config({"model": str(tiny_model_dir), "data": {"train": str(gsm8k_small)},
                        "liger": True, "output_dir": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="Liger Kernel runs on CUDA GPUs"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.cuda
def test_liger_follows_the_unfused_loss_curve_on_the_gpu(tmp_path, tiny_model_dir, gsm8k_small):
    pytest.importorskip("liger_kernel", reason="the liger extra is not installed")
    from chattune.config import build_config
    from chattune.pipeline import run_training

    losses = {}
    for liger in (False, True):
        cfg = build_config({"model": str(tiny_model_dir),
                            "output_dir": str(tmp_path / f"liger-{liger}"),
                            "data": {"train": str(gsm8k_small),
                                     "columns": {"question": "user", "answer": "assistant"}},
                            "liger": liger, "max_steps": 4, "per_device_train_batch_size": 4,
                            "merge": False, "lora": {"dropout": 0.0}})
        losses[liger] = [r["loss"] for r in run_training(cfg).records if "loss" in r]
    assert losses[True] == pytest.approx(losses[False], rel=2e-2)  # bf16 kernels: bf16 noise


def test_attention_kernel_and_padding_free_from_config_train_the_same(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    from chattune.config import build_config
    from chattune.pipeline import run_training

    losses = {}
    for name, extra in (("sdpa-padded", {}), ("eager-padding-free", {"attn_implementation": "eager",
                                                                       "padding_free": True})):
        cfg = build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / name),
                            "device": "cpu", "data": {"train": str(gsm8k_small),
                                                      "columns": {
                                                          "question": "user",
                                                          "answer": "assistant"}},
                            "max_steps": 3, "per_device_train_batch_size": 4, "merge": False,
                            "bf16": False, "lora": {"dropout": 0.0}, **extra})
        losses[name] = [r["loss"] for r in run_training(cfg).records if "loss" in r]
    assert losses["eager-padding-free"] == pytest.approx(losses["sdpa-padded"], rel=1e-4)
    said = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "padding-free (one sequence per micro-batch), attention: eager" in said


def test_padding_continues_the_row_so_attention_stays_causal_and_exact(tokenizer, tiny_model):
    from transformers.masking_utils import find_packed_sequence_indices

    exs = [Example(e.input_ids[:n], e.labels[:n])
           for e, n in zip(examples(tokenizer, 4), (None, -3, -7, -12))]
    batch = collate([[e] for e in exs], tokenizer.pad_token_id)
    width = batch.input_ids.shape[1]
    assert any(len(e.input_ids) < width for e in exs)  # some rows are padded
    # one document per row reads as one sequence: no packed (whole micro-batch) mask
    assert batch.position_ids.tolist() == [list(range(width))] * len(exs)
    assert find_packed_sequence_indices(batch.position_ids) is None
    # each row's loss and gradients are the row's alone, padding or not
    padded = summed_loss(tiny_model, batch)
    padded.backward()
    grads = [p.grad.clone() for p in tiny_model.parameters()]
    tiny_model.zero_grad()
    alone = sum(summed_loss(tiny_model, collate([[e]], tokenizer.pad_token_id)) for e in exs)
    alone.backward()
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)
    # rounding differs with the batch's shapes (kernels block the sums differently): tolerances
    # relative to each gradient's size (attention across rows or into padding differs by far more)
    for got, want in zip(grads, (p.grad for p in tiny_model.parameters())):
        torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=1e-4)
    tiny_model.zero_grad()
    # a packed row's padding continues its last document; the documents still restart
    packed = collate([exs[:2], exs[2:3]], tokenizer.pad_token_id)
    first, second = (len(e.input_ids) for e in exs[:2])
    assert packed.position_ids[0].tolist() == list(range(first)) + list(range(second))
    third = len(exs[2].input_ids)
    assert packed.position_ids[1].tolist() == list(range(packed.input_ids.shape[1]))[:third] + \
        list(range(third, third + packed.input_ids.shape[1] - third))
