"""The LM head and loss with gradients taken in the forward pass equal the recomputing reference
path."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_train import examples

from chattune.batching import collate
from chattune.config import build_config
from chattune.model.lora import apply_lora
from chattune.train import linear_ce
from chattune.train.linear_ce import _buffer, kept_logits_buffers, linear_cross_entropy
from chattune.train.loss import RECOMPUTE_LOSS, summed_loss_and_correct


def reference(hidden, targets, head, dft=False):
    logits = head(hidden).float()
    ce = F.cross_entropy(logits, targets, reduction="none")
    loss = (ce * torch.exp(-ce).detach()).sum() if dft else ce.sum()
    return loss, (logits.argmax(-1) == targets).sum().float()


def grads(fn, hidden, targets, head, dft, scale=0.37):
    hidden = hidden.detach().clone().requires_grad_(True)
    head.zero_grad()
    loss, correct = fn(hidden, targets, head, dft)
    (loss * scale).backward()
    return loss.detach(), correct, hidden.grad, head.weight.grad.clone(), head.bias.grad.clone()


@pytest.mark.parametrize("dft", [False, True])
def test_loss_and_gradients_match_cross_entropy(dft):
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 500)
    hidden, targets = torch.randn(40, 32) * 3, torch.randint(0, 500, (40,))
    targets[:5] = head(hidden[:5]).argmax(-1)  # some correct predictions to count
    ours = grads(lambda h, t, m, d: linear_cross_entropy(h, t, m, d).unbind(), hidden, targets,
                 head, dft)
    ref = grads(reference, hidden, targets, head, dft)
    assert ours[1] == ref[1] >= 5
    for a, b in zip(ours[:1] + ours[2:], ref[:1] + ref[2:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bf16", [False, True])
def test_kept_buffers_give_each_chunk_its_own_result(bf16):
    """Chunks of different sizes through the same kept buffers, fp32 and under bf16 autocast, equal
    fresh buffers' results."""
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 400)
    chunks = [(torch.randn(n, 32), torch.randint(0, 400, (n,))) for n in (30, 50, 20)]

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return [grads(lambda h, t, m, d: linear_cross_entropy(h, t, m, d).unbind(), h, t,
                          head, False) for h, t in chunks]

    fresh = run()
    with kept_logits_buffers():
        kept = run()
    for a, b in zip(fresh, kept):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_buffers_are_kept_inside_the_block_only():
    cpu = torch.device("cpu")
    with kept_logits_buffers():
        first = _buffer(100, 50, torch.float32, cpu)
        smaller = _buffer(60, 50, torch.float32, cpu)
        grown = _buffer(150, 50, torch.float32, cpu)
        assert smaller.data_ptr() == first.data_ptr() and smaller.shape == (60, 50)
        assert grown.shape == (150, 50) and grown.is_contiguous()
        assert _buffer(190, 50, torch.float32, cpu).data_ptr() == grown.data_ptr()  # doubled
    assert linear_ce._kept is None  # freed with the block


def test_bf16_autocast_matches_within_bf16_rounding():
    torch.manual_seed(0)
    head = torch.nn.Linear(64, 300, bias=False)
    hidden, targets = torch.randn(50, 64), torch.randint(0, 300, (50,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(hidden, targets, head)[0]
        ref = reference(hidden, targets, head)[0]
    loss.backward()
    assert head.weight.grad.dtype == torch.float32  # the fp32 master weight's gradient
    torch.testing.assert_close(loss, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("lora", [False, True])
def test_model_loss_and_gradients_equal_the_recomputing_path(tokenizer, tiny_model, lora):
    model = copy.deepcopy(tiny_model).train()
    if lora:
        model = apply_lora(model,
                           build_config({"data": {"train": "x"}, "lora": {"dropout": 0.0}}).lora)
    batch = collate([[e] for e in examples(tokenizer, 6)], tokenizer.pad_token_id)
    results = []
    for recompute in (False, True):
        setattr(model.get_base_model() if lora else model, RECOMPUTE_LOSS, recompute)
        model.zero_grad()
        out = summed_loss_and_correct(model, batch)
        out[0].backward()
        results.append((out.detach(),
                        {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.grad is not None}))
    (fused, fused_grads), (ref, ref_grads) = results
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    assert fused_grads.keys() == ref_grads.keys() and fused_grads
    for name in ref_grads:
        torch.testing.assert_close(fused_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6,
                                   msg=name)
