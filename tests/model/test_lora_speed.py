"""chattune's faster LoRA layers compute what peft's do; their cheap CPU dropout keeps nn.Dropout's
semantics (drop rate, independence, scale, gradient, eval mode, seeds)."""

import copy

import pytest
import torch
from test_train import cfg, examples

from chattune.batching import collate
from chattune.config import build_config
from chattune.model.lora import apply_lora
from chattune.model.lora_speed import MaskDropout, dropped_positions
from chattune.train.loop import train
from chattune.train.loss import summed_loss

CPU = torch.device("cpu")


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_elements_are_dropped_at_rate_p_and_the_rest_scaled(p):
    torch.manual_seed(0)
    x = torch.randn(300, 1000, requires_grad=True)
    y = MaskDropout(p).train()(x)
    kept = y != 0
    n = x.numel()
    assert abs((1 - kept.float().mean().item()) - p) < 5 * (p * (1 - p) / n) ** 0.5
    # every column and row drops at the same rate
    assert (1 - kept.float().mean(0)).sub(p).abs().max() < 5 * (p * (1 - p) / 300) ** 0.5
    assert (1 - kept.float().mean(1)).sub(p).abs().max() < 5 * (p * (1 - p) / 1000) ** 0.5
    # so the expectation is exactly x
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_drops_are_independent_bernoulli_trials(p):
    """Runs of kept elements between drops are geometric (the law of independent trials), and
    neighbours are uncorrelated."""
    torch.manual_seed(2)
    n = 2_000_000
    dropped = torch.zeros(n, dtype=torch.bool)
    dropped[dropped_positions(n, p, CPU)] = True
    positions = dropped.nonzero().squeeze(1)
    gaps = (positions[1:] - positions[:-1] - 1).float()
    # geometric: mean (1 - p) / p, P(gap == 0) = p
    assert abs(gaps.mean().item() - (1 - p) / p) < 5 * ((1 - p) / p**2 / gaps.numel()) ** 0.5
    assert abs((gaps == 0).float().mean().item() - p) < 5 * (p * (1 - p) / gaps.numel()) ** 0.5
    d = dropped.float()
    both = (d[1:] * d[:-1]).mean().item()  # P(two neighbours dropped) = p^2
    assert abs(both - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5


def test_positions_are_sorted_distinct_and_in_range():
    torch.manual_seed(0)
    for n, p in [(1, 0.5), (7, 0.9), (1000, 0.05), (100_000, 0.999)]:
        positions = dropped_positions(n, p, CPU)
        assert positions.dtype == torch.int64
        assert bool((positions[1:] > positions[:-1]).all())
        assert positions.numel() == 0 or (int(positions[0]) >= 0 and int(positions[-1]) < n)
    assert dropped_positions(0, 0.5, CPU).numel() == 0
    assert dropped_positions(10, 0.0, CPU).numel() == 0


def test_independent_draws_reproduced_by_the_seed():
    torch.manual_seed(1)
    a, b = dropped_positions(64 * 512, 0.5, CPU), dropped_positions(64 * 512, 0.5, CPU)
    torch.manual_seed(1)
    assert torch.equal(dropped_positions(64 * 512, 0.5, CPU), a) and not torch.equal(a, b)
    masks = [torch.zeros(64 * 512, dtype=torch.bool).index_fill_(0, m, True) for m in (a, b)]
    # unrelated masks agree half the time
    assert 0.45 < (masks[0] == masks[1]).float().mean() < 0.55


def test_a_non_contiguous_input_is_dropped_by_its_logical_positions():
    torch.manual_seed(0)
    x = torch.randn(50, 40).t()  # transposed: not contiguous
    y = MaskDropout(0.3).train()(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)


def test_identity_in_eval_mode_and_bf16_kept():
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    assert MaskDropout(0.5).eval()(x) is x
    assert MaskDropout(0.5).train()(x).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        MaskDropout(1.0)


def test_apply_lora_uses_it_unless_asked_not_to(tiny_model):
    settings = build_config({"data": {"train": "x"}, "lora": {"dropout": 0.1}}).lora
    model = apply_lora(copy.deepcopy(tiny_model), settings)
    kinds = {type(m) for m in model.modules()}
    assert MaskDropout in kinds and torch.nn.Dropout not in kinds
    model = apply_lora(copy.deepcopy(tiny_model), settings, fast=False)
    assert MaskDropout not in {type(m) for m in model.modules()}


def lora_grads(model, batch, dtype=None):
    model.zero_grad()
    torch.manual_seed(3)  # the same dropout masks for both models
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        loss = summed_loss(model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_fast_forward_gives_peft_forwards_loss_and_gradients(tokenizer, tiny_model, dropout):
    """Same masks (same seed, same draws), the scales folded into the small matmuls: the same loss
    and gradients."""
    settings = build_config({"data": {"train": "x"},
                             "lora": {"r": 4, "alpha": 16, "dropout": dropout}}).lora
    torch.manual_seed(0)
    fast = apply_lora(copy.deepcopy(tiny_model), settings).train()
    for module in fast.modules():  # B starts at zero: make the update count
        if hasattr(module, "lora_B"):
            module.lora_B["default"].weight.data.normal_(0, 0.1)
    peft_layers = copy.deepcopy(fast)
    for module in peft_layers.modules():
        module.__dict__.pop("forward", None)  # peft's own forward, still with MaskDropout's masks
    batch = collate([[e] for e in examples(tokenizer, 6)], tokenizer.pad_token_id)
    (loss, grads), (ref_loss, ref_grads) = lora_grads(fast, batch), lora_grads(peft_layers, batch)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    # A and B of 7 layers x 2 blocks
    assert grads.keys() == ref_grads.keys() and len(grads) == 2 * 7 * 2
    # rounding differs: tolerances relative to each gradient's size
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4,
                                   atol=1e-4 * float(grad.abs().max()))


def test_fast_forward_under_bf16_autocast_on_a_bf16_base(tokenizer, tiny_model):
    settings = build_config({"data": {"train": "x"},
                             "lora": {"r": 4, "alpha": 16, "dropout": 0.0}}).lora
    torch.manual_seed(0)
    fast = apply_lora(copy.deepcopy(tiny_model).to(torch.bfloat16), settings).train()
    for p in fast.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    for module in fast.modules():
        if hasattr(module, "lora_B"):
            module.lora_B["default"].weight.data.normal_(0, 0.1)
    peft_layers = copy.deepcopy(fast)
    for module in peft_layers.modules():
        module.__dict__.pop("forward", None)
    batch = collate([[e] for e in examples(tokenizer, 6)], tokenizer.pad_token_id)
    (loss, grads), (ref_loss,
                    ref_grads) = (lora_grads(m, batch, torch.bfloat16) for m in (fast, peft_layers))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-2, atol=0)
    for name in grads:
        assert grads[name].dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(grads[name].flatten(),
                                                    ref_grads[name].flatten(), dim=0)
        assert cos > 0.99, name


def test_training_curve_equals_peft_layers_drawing_the_same_masks(tokenizer, tiny_model):
    """Ten steps with the fast layers and with peft's own forward (given MaskDropout, so the same
    random draws): the same losses, step after step. (Against nn.Dropout's masks the curves of a
    tiny random model differ as two seeds' do; the drop rate and scale are checked above, and `make
    bench-train` compares a real model's losses.)"""
    settings = build_config({"data": {"train": "x"},
                             "lora": {"r": 8, "alpha": 128, "dropout": 0.1}}).lora
    curves = []
    for peft_forward in (False, True):
        torch.manual_seed(0)  # the same initial adapter
        model = apply_lora(copy.deepcopy(tiny_model), settings)
        if peft_forward:
            for module in model.modules():
                module.__dict__.pop("forward", None)
        records = train(model, examples(tokenizer), cfg(max_steps=10, per_device_train_batch_size=8,
                                                        learning_rate=1e-2),
                        pad_id=tokenizer.pad_token_id, device=CPU)
        curves.append([r["loss"] for r in records])
    fast, peft = curves
    assert fast == pytest.approx(peft, abs=2e-3)
    assert min(fast[-3:]) < fast[0] - 0.2  # and it learns
