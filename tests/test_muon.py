"""Muon: Newton-Schulz orthogonalisation, Nesterov momentum, row norm, shape scaling, decoupled WD."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from golf.trainer.muon import Muon, zeropower_ns5


def _rand(rows, cols, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g)


def _spectrum_matrix(rows, cols, cond, seed):
    """rows x cols with singular values log-spaced from 1 down to 1/cond (a gradient-like spread)."""
    g = torch.Generator().manual_seed(seed)
    k = min(rows, cols)
    U, _ = torch.linalg.qr(torch.randn(rows, k, generator=g))
    V, _ = torch.linalg.qr(torch.randn(cols, k, generator=g))
    s = torch.logspace(0, -math.log10(cond), k)
    return (U * s) @ V.T


@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (96, 96), (256, 32)])
def test_ns5_orthogonalises(shape):
    G = _spectrum_matrix(*shape, cond=50.0, seed=sum(shape))
    X = zeropower_ns5(G, steps=5)
    assert X.dtype == torch.float32 and X.shape == G.shape
    s = torch.linalg.svdvals(X)
    # the quintic lands singular values in roughly [0.68, 1.13], not exactly 1
    assert s.min() > 0.5 and s.max() < 1.5, (s.min(), s.max())
    # it keeps G's singular vectors: U^T X V is diagonal, i.e. X = U f(S) V^T like the exact U V^T
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    D = U.T @ X.double() @ Vh.T
    off = D - torch.diag(torch.diagonal(D))
    assert off.norm() / torch.diagonal(D).norm() < 1e-4
    # so it is close to the exact polar factor U V^T (the raw gradient, spread 50x, is not)
    polar = (U @ Vh).float()
    assert (X - polar).norm() / polar.norm() < 0.3
    raw = G / G.norm() * polar.norm()
    assert (raw - polar).norm() / polar.norm() > 0.5


def test_ns5_random_gaussian_bulk():
    """Plain Gaussian gradients: every singular value of the update is O(1)."""
    for shape in [(64, 128), (512, 128)]:
        s = torch.linalg.svdvals(zeropower_ns5(_rand(*shape, seed=3)))
        assert 0.5 < s.min() and s.max() < 1.5


def test_ns5_rejects_non_matrix():
    with pytest.raises(ValueError, match="matrix"):
        zeropower_ns5(torch.randn(3, 4, 5))


def _one_step(G, W0, **kw):
    p = torch.nn.Parameter(W0.clone())
    opt = Muon([p], **kw)
    p.grad = G.clone()
    opt.step()
    return p.detach(), opt


def test_muon_update_is_scaled_orthogonal_step():
    rows, cols, lr = 128, 32, 0.1
    G, W0 = _rand(rows, cols, 1), _rand(rows, cols, 2)
    W1, _ = _one_step(G, W0, lr=lr, momentum=0.0, weight_decay=0.0, row_norm=False)
    upd = (W0 - W1) / lr
    expect = zeropower_ns5(G) * math.sqrt(rows / cols)  # shape scaling sqrt(max(1, rows/cols)) = 2
    torch.testing.assert_close(upd, expect, rtol=1e-4, atol=1e-5)
    s = torch.linalg.svdvals(upd / 2.0)
    assert 0.5 < s.min() and s.max() < 1.5
    # wide matrices are not scaled up
    G2, W2 = _rand(32, 128, 3), _rand(32, 128, 4)
    W3, _ = _one_step(G2, W2, lr=lr, momentum=0.0, weight_decay=0.0, row_norm=False)
    torch.testing.assert_close((W2 - W3) / lr, zeropower_ns5(G2), rtol=1e-4, atol=1e-5)


def test_muon_nesterov_momentum_and_row_norm():
    mu, lr = 0.9, 0.05
    G1, G2, W0 = _rand(48, 64, 5), _rand(48, 64, 6), _rand(48, 64, 7)
    p = torch.nn.Parameter(W0.clone())
    opt = Muon([p], lr=lr, momentum=mu, weight_decay=0.0, row_norm=True)
    p.grad = G1.clone()
    opt.step()
    W1 = p.detach().clone()
    p.grad = G2.clone()
    opt.step()
    buf = mu * G1 + G2  # buf <- mu*buf + G
    torch.testing.assert_close(opt.state[p]["momentum_buffer"], buf)
    U = G2 + mu * buf  # Nesterov
    U = U / U.norm(dim=1, keepdim=True)  # MuonEq-R
    torch.testing.assert_close((W1 - p.detach()) / lr, zeropower_ns5(U), rtol=1e-4, atol=1e-5)


def test_muon_decoupled_weight_decay():
    W0 = _rand(32, 32, 8)
    lr, wd = 0.1, 0.5
    W1, _ = _one_step(torch.zeros(32, 32), W0, lr=lr, momentum=0.0, weight_decay=wd, row_norm=False)
    torch.testing.assert_close(W1, W0 * (1 - lr * wd))  # NS of a zero update is zero


def test_muon_rejects_vectors():
    with pytest.raises(ValueError, match="matrices"):
        Muon([torch.nn.Parameter(torch.zeros(5))])


def test_muon_state_dict_roundtrip():
    G, W0 = _rand(16, 24, 9), _rand(16, 24, 10)
    p = torch.nn.Parameter(W0.clone())
    opt = Muon([p], lr=0.02, momentum=0.95)
    p.grad = G.clone()
    opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    opt2 = Muon([q], lr=0.02, momentum=0.95)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as if read back from disk
    for o, prm in ((opt, p), (opt2, q)):
        prm.grad = G.clone() * 0.5
        o.step()
    assert torch.equal(p.detach(), q.detach())


def test_polar_express_bf16_momentum_resumes_exactly():
    """A checkpointed bf16 momentum buffer (torch's load_state_dict casts it to the fp32 parameter's
    dtype) is used in bf16 again after a resume: the resumed step equals the uninterrupted one."""
    G, W0 = _rand(16, 24, 11), _rand(16, 24, 12)
    frontier = dict(polar_express=True, bf16_momentum=True)
    p = torch.nn.Parameter(W0.clone())
    opt = Muon([p], lr=0.02, momentum=0.95)
    opt.param_groups[0].update(frontier)
    p.grad = G.clone()
    opt.step()
    assert opt.state[p]["momentum_buffer"].dtype == torch.bfloat16
    q = torch.nn.Parameter(p.detach().clone())
    opt2 = Muon([q], lr=0.02, momentum=0.95)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.state[q]["momentum_buffer"].dtype == torch.float32  # what torch hands back
    for o, prm in ((opt, p), (opt2, q)):
        prm.grad = G.clone() * 0.5
        o.step()
    assert torch.equal(p.detach(), q.detach()) and opt2.state[q]["momentum_buffer"].dtype == torch.bfloat16
    assert not torch.equal(p.detach(), W0)


def test_polar_express_steps_are_bounded_by_its_table():
    from golf.config import ConfigError, GolfConfig, apply_overrides
    from golf.trainer.muon import POLAR_EXPRESS_COEFFS

    cfg = GolfConfig()
    apply_overrides(cfg, {"train.muon_polar_express": True, "train.muon_backend_steps": len(POLAR_EXPRESS_COEFFS)})
    with pytest.raises(ConfigError, match="muon_backend_steps"):
        apply_overrides(GolfConfig(), {"train.muon_polar_express": True, "train.muon_backend_steps": 6})
