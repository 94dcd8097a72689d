"""Training engine on tiny random models: loss falls, accumulation and packing are invisible,
adapters round-trip."""

import copy

import pytest
import torch
from conftest import make_tiny_model

from chattune.batching import Example, collate, pack
from chattune.config import build_config
from chattune.data.schema import Conversation, Message
from chattune.eval.loss import evaluate_loss
from chattune.model.lora import apply_lora, load_adapter, merge_adapter
from chattune.prepare import prepare_examples
from chattune.train.loop import train
from chattune.train.loss import summed_loss

CPU = torch.device("cpu")


def examples(tokenizer, n=16):
    convs = [Conversation([Message("user", f"What is {i} plus {i}?"),
                           Message("assistant", f"{i} plus {i} is {2 * i}.")]) for i in range(n)]
    exs, _ = prepare_examples(convs, tokenizer, template=None, train_on="all_assistant",
                              max_length=128)
    return exs


def cfg(**kw):
    base = {"data": {"train": "unused"}, "logging_steps": 1, "warmup_ratio": 0.0, "seed": 0}
    return build_config({**base, **kw}).train_args()


def grads_after(model, batches):
    model.zero_grad()
    trained = sum(b.num_trained for b in batches)
    for b in batches:
        (summed_loss(model, b) / trained).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_loss_falls_full_finetuning(tokenizer, tiny_model):
    exs = examples(tokenizer)
    records = train(tiny_model, exs,
                    cfg(finetuning="full", max_steps=30, per_device_train_batch_size=8,
                        learning_rate=3e-3), pad_id=tokenizer.pad_token_id, device=CPU)
    losses = [r["loss"] for r in records]
    assert len(losses) == 30 and losses[-1] < losses[0] * 0.6
    for key in ("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens", "trained_tokens",
                "step_time_s", "tokens_per_s"):
        assert key in records[-1]


def test_loss_falls_lora_and_base_stays_frozen(tokenizer, tiny_model):
    frozen = {n: p.clone() for n, p in tiny_model.named_parameters()}
    # a high alpha/r scale: a random base gives LoRA little to build on, so it needs larger updates
    model = apply_lora(tiny_model,
                       build_config({"data": {"train": "x"}, "lora": {"r": 8, "alpha": 128}}).lora)
    exs = examples(tokenizer)
    before = evaluate_loss(model, exs, 8, tokenizer.pad_token_id, CPU)["eval_loss"]
    train(model, exs, cfg(max_steps=30, per_device_train_batch_size=8, learning_rate=1e-2),
          pad_id=tokenizer.pad_token_id, device=CPU)
    after = evaluate_loss(model, exs, 8, tokenizer.pad_token_id, CPU)["eval_loss"]
    # from ~10.8 (uniform over 49k tokens); an untrained adapter changes nothing
    assert after < before - 0.25
    base = model.get_base_model()
    for n, p in base.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen[n.replace(".base_layer", "")]), n


def test_accumulation_is_invisible(tokenizer, tiny_model):
    """One batch of 8 gives the same gradients as 4 micro-batches of 2 (loss normalised per
    step)."""
    exs = examples(tokenizer, 8)
    pad = tokenizer.pad_token_id
    whole = grads_after(tiny_model, [collate([[e] for e in exs], pad)])
    split = grads_after(tiny_model,
                        [collate([[e] for e in exs[i:i + 2]], pad) for i in range(0, 8, 2)])
    for n in whole:
        torch.testing.assert_close(whole[n], split[n], atol=1e-5, rtol=1e-4)


def test_packed_loss_equals_unpacked(tokenizer, tiny_model):
    exs = examples(tokenizer, 6)
    pad = tokenizer.pad_token_id
    rows = pack(exs, max_length=128)
    assert len(rows) < len(exs)  # several documents share a row
    with torch.no_grad():
        packed = summed_loss(tiny_model, collate([[exs[i] for i in row] for row in rows], pad))
        unpacked = sum(summed_loss(tiny_model, collate([[e]], pad)) for e in exs)
    torch.testing.assert_close(packed, unpacked, atol=1e-5, rtol=1e-5)


def test_pack_best_fit_respects_max_length():
    exs = [Example([1] * n, [1] * n) for n in (60, 50, 40, 30, 20, 10)]
    rows = pack(exs, max_length=70)
    assert sorted(i for r in rows for i in r) == list(range(6))
    assert all(sum(len(exs[i].input_ids) for i in r) <= 70 for r in rows)
    assert len(rows) == 3  # 60+10, 50+20, 40+30


def test_adapter_save_reload_identical_logits(tokenizer, tmp_path):
    model = apply_lora(make_tiny_model(tokenizer), build_config({"data": {"train": "x"}}).lora)
    train(model, examples(tokenizer), cfg(max_steps=3, learning_rate=1e-2),
          pad_id=tokenizer.pad_token_id, device=CPU)
    model.eval()
    model.save_pretrained(tmp_path / "adapter")
    reloaded = load_adapter(make_tiny_model(tokenizer), tmp_path / "adapter").eval()
    ids = torch.tensor([tokenizer.encode("Hello there, how are you?")])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_merge_matches_adapter_and_refuses_divergence(tokenizer):
    model = apply_lora(make_tiny_model(tokenizer), build_config({"data": {"train": "x"}}).lora)
    train(model, examples(tokenizer), cfg(max_steps=3, learning_rate=1e-2),
          pad_id=tokenizer.pad_token_id, device=CPU)
    twin = copy.deepcopy(model)
    merged, diff = merge_adapter(model, tokenizer)
    assert diff < 1e-4 and not hasattr(merged, "peft_config")
    ids = torch.tensor([tokenizer.encode("2 plus 2 is")])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, twin.eval()(ids).logits, atol=1e-4,
                                   rtol=1e-4)
    from chattune.errors import ModelError
    with pytest.raises(ModelError, match="refusing to write"):
        merge_adapter(twin, tokenizer, tolerance=-1.0)


def test_adapter_with_added_chat_tokens_reloads_identically(tokenizer, tmp_path):
    """Tokens added by setup_chat_format are trained with the adapter and come back with it."""
    from chattune.templates import setup_chat_format

    tok = copy.deepcopy(tokenizer)
    base = make_tiny_model(tok)
    before = len(tok)
    setup_chat_format(base, tok, "llama3")
    new_ids = list(range(before, len(tok)))
    model = apply_lora(base, build_config({"data": {"train": "x"}}).lora, new_ids)
    train(model, examples(tok, 8), cfg(max_steps=3, learning_rate=1e-2), pad_id=tok.pad_token_id,
          device=CPU)
    model.eval()
    model.save_pretrained(tmp_path / "adapter")
    reloaded = load_adapter(make_tiny_model(tokenizer), tmp_path / "adapter",
                            vocab_size=len(tok)).eval()
    ids = torch.tensor([tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
                                   add_special_tokens=False)])
    assert any(i in new_ids for i in ids[0].tolist())
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reloaded(ids).logits, atol=1e-5, rtol=1e-5)


def test_logged_loss_is_the_mean_over_the_logging_window(tokenizer):
    exs = examples(tokenizer, 8)
    run = {"finetuning": "full", "max_steps": 4, "per_device_train_batch_size": 2,
           "learning_rate": 1e-3}
    every = train(make_tiny_model(tokenizer), exs, cfg(**run), pad_id=tokenizer.pad_token_id,
                  device=CPU)
    paired = train(make_tiny_model(tokenizer), exs, cfg(**run, logging_steps=2),
                   pad_id=tokenizer.pad_token_id, device=CPU)
    assert [r["step"] for r in paired] == [2, 4]
    for rec, (a, b) in zip(paired, [(every[0], every[1]), (every[2], every[3])]):
        assert abs(rec["loss"] - (a["loss"] + b["loss"]) / 2) < 1e-6
        assert rec["tokens"] == b["tokens"]


def test_dft_loss_weights_each_token_by_its_detached_probability(tokenizer, tiny_model):
    from chattune.train.loss import summed_loss_and_correct

    batch = collate([[e] for e in examples(tokenizer, 3)], tokenizer.pad_token_id)
    logits = tiny_model(input_ids=batch.input_ids,
                        position_ids=batch.position_ids).logits[:, :-1].float()
    targets = batch.labels[:, 1:]
    keep = targets != -100
    ce = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="none")
    dft = summed_loss_and_correct(tiny_model, batch, "dft")
    torch.testing.assert_close(dft[0], (ce * torch.exp(-ce)).sum(), atol=1e-4, rtol=1e-4)
    assert dft[1] == (logits[keep].argmax(-1) == targets[keep]).sum()
    # the weight carries no gradient: d(dft)/d(logits) is p * d(ce), not d(p * ce)
    tiny_model.zero_grad()
    summed_loss_and_correct(tiny_model, batch, "dft")[0].backward()
    got = next(p.grad for p in tiny_model.parameters() if p.grad is not None).clone()
    tiny_model.zero_grad()
    logits = tiny_model(input_ids=batch.input_ids,
                        position_ids=batch.position_ids).logits[:, :-1].float()
    ce = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="none")
    (ce * torch.exp(-ce).detach()).sum().backward()
    want = next(p.grad for p in tiny_model.parameters() if p.grad is not None)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)
    assert cfg(loss_type="dft").loss_type == "dft"


def test_micro_batches_of_unlike_lengths_split_on_a_cpu_and_train_the_same(tokenizer, tiny_model,
                                                                           monkeypatch):
    """A padded micro-batch of rows of unlike lengths runs in parts on a CPU: the same losses as
    the whole micro-batch (the loss is normalised by the step's trained tokens)."""
    import chattune.train.loop as loop

    convs = [Conversation([Message("user", f"Count to {n}."),
                           Message("assistant", " ".join(["one"] * n))])
             for n in (3, 4, 5, 6, 7, 8, 9, 300) * 2]
    exs, _ = prepare_examples(convs, tokenizer, template=None, train_on="all_assistant",
                              max_length=512)
    parts = []
    split = loop.split_by_length
    monkeypatch.setattr(loop, "split_by_length", lambda *a: parts.append(split(*a)) or parts[-1])
    curves = []
    for whole in (False, True):
        if whole:
            monkeypatch.setattr(loop, "_split_micro_batches", lambda cfg, device: False)
        records = train(copy.deepcopy(tiny_model), exs,
                        cfg(max_steps=2, per_device_train_batch_size=8, learning_rate=1e-3),
                        pad_id=tokenizer.pad_token_id, device=CPU)
        curves.append([r["loss"] for r in records])
    # the step holding the two long rows (rows are grouped by length) runs them on their own
    assert sorted(len(p) for p in parts) == [1, 2]
    long_part = max(parts, key=len)[1]
    assert [len(exs[i].input_ids) > 300 for row in long_part for i in row] == [True, True]
    assert curves[0] == pytest.approx(curves[1], abs=1e-5)
