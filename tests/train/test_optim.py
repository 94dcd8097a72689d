"""AdamW runs fused on CPUs as on GPUs: the same updates as torch's for-loop AdamW."""

import torch

from chattune.config import build_config
from chattune.train.optim import build_optimizer, fused_adamw


def test_fused_on_cpu_with_the_for_loops_updates():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.LayerNorm(64),
                                torch.nn.Linear(64, 8))
    reference = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    cfg = build_config({"data": {"train": "x"}, "finetuning": "full", "weight_decay": 0.1,
                        "learning_rate": 1e-2}).train_args()
    optimizer = build_optimizer(model, cfg)
    assert fused_adamw(list(model.parameters())) and optimizer.param_groups[0]["fused"]
    # the for-loop AdamW with chattune's groups: decay on matrices, none on biases and norms
    groups = [{"params": [r for r, p in zip(reference, model.parameters()) if p.ndim >= 2],
               "weight_decay": 0.1},
              {"params": [r for r, p in zip(reference, model.parameters()) if p.ndim < 2],
               "weight_decay": 0.0}]
    loop = torch.optim.AdamW(groups, lr=1e-2, foreach=False)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in reference]
        for p, r, g in zip(model.parameters(), reference, grads):
            p.grad, r.grad = g.clone(), g.clone()
        optimizer.step()
        loop.step()
    for p, r in zip(model.parameters(), reference):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-5, atol=1e-6)


def test_nothing_to_train_is_not_fused():
    assert not fused_adamw([])
