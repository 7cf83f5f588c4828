"""The CUDA speed paths (golf.model.fused) against their eager references, run on CPU.

On CPU the fused functions run their eager bodies (torch.compile is used on CUDA only), so the tests
check the math and the autograd wiring: the custom forward/backward against PyTorch's own autograd of
the reference formulas, and a frontier-shaped model whose training loss and gradients are the same
through either path.  The model takes the fused paths only on ``FUSED_DEVICES`` (CUDA by default).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golf.config import apply_overrides
from golf.model import fused
from golf.model.gpt import GPT
from golf.presets import preset_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_softcap_ce_matches_the_eager_formula(dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = (20 * torch.randn(64, 300, generator=g)).to(dtype).requires_grad_()  # |x| up to ~80: deep in the cap
    t = torch.randint(0, 300, (64,), generator=g)
    want = F.cross_entropy((30.0 * torch.tanh(x.float() / 30.0)), t)
    (gw,) = torch.autograd.grad(want, x)
    got = fused.softcap_cross_entropy(x, t, 30.0)
    (gg,) = torch.autograd.grad(got * 1.0, x)
    assert got.dtype == torch.float32 and abs(got.item() - want.item()) < 1e-5
    assert gg.dtype == dtype and (gg.float() - gw.float()).abs().max().item() < tol * gw.abs().max().item()


@pytest.mark.parametrize("slope", [0.5, 0.1])
def test_fused_mlp_matches_eager_autograd(slope):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 17, 32, generator=g, requires_grad=True)
    w1 = torch.randn(128, 32, generator=g, requires_grad=True)
    w2 = torch.randn(32, 128, generator=g, requires_grad=True)
    ref = F.linear(F.leaky_relu(F.linear(x, w1), slope).square(), w2)
    got = fused.fused_mlp(x, w1, w2, slope)
    assert (got - ref).abs().max().item() < 1e-4
    up = torch.randn(ref.shape, generator=g)
    want = torch.autograd.grad((ref * up).sum(), (x, w1, w2))
    have = torch.autograd.grad((got * up).sum(), (x, w1, w2))
    for a, b in zip(have, want):
        assert (a - b).abs().max().item() < 1e-4 * b.abs().max().item()


def test_model_dispatch(monkeypatch):
    """The frontier model takes the fused paths only while training on a FUSED_DEVICES device; where it
    does (cpu added here) its loss and gradients are those of the eager model."""
    cfg = preset_config("frontier")
    apply_overrides(cfg, {"model.vocab_size": 256, "model.model_dim": 64, "model.num_heads": 2,
                          "model.num_kv_heads": 1, "model.num_layers": 11})
    assert cfg.model.fused_kernels
    torch.manual_seed(0)
    model = GPT(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randint(0, 256, (2, 48))
    calls = []
    real = fused.softcap_cross_entropy

    def spy(*a):
        calls.append(1)
        return real(*a)

    monkeypatch.setattr("golf.model.gpt.softcap_cross_entropy", spy)

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(x, x)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager, eager_g = loss_and_grads()
    assert not calls  # CPU is not a fused device by default
    monkeypatch.setattr(fused, "FUSED_DEVICES", ["cuda", "cpu"])
    monkeypatch.setattr("golf.model.gpt.FUSED_DEVICES", fused.FUSED_DEVICES)
    fast, fast_g = loss_and_grads()
    assert calls
    assert abs(fast.item() - eager.item()) < 1e-5
    assert fast_g.keys() == eager_g.keys()
    for n in eager_g:
        assert (fast_g[n] - eager_g[n]).abs().max().item() < 1e-4 * (eager_g[n].abs().max().item() + 1e-6), n
    model.eval()
    calls.clear()
    with torch.no_grad():
        model(x, x)
    assert not calls  # evaluation always takes the eager path
