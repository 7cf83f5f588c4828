"""CUDA speed paths of the training forward (``model.fused_kernels``): the LeakyReLU(s)² MLP and the
soft-capped cross-entropy as custom autograd functions, as the 2026-04-27 record's Triton kernels do.

* :func:`fused_mlp` keeps only the MLP input and its pre-activation for the backward (eager autograd
  also keeps the activation output) and recomputes ``LeakyReLU(pre)²`` there; the derivative is
  ``2·pre`` where ``pre > 0`` and ``2·s²·pre`` elsewhere.
* :func:`softcap_cross_entropy` reads the pre-cap logits once: with ``z = 2c·σ(2x/c)``, which is
  ``c·tanh(x/c) + c`` (a per-row shift, so the same loss), the loss is ``logsumexp(z) − z_target`` and
  only the per-row log-sum-exp is kept; the backward is ``(softmax(z) − onehot)·4σ(1−σ)``.

The elementwise bodies are ``torch.compile``'d once on CUDA (inductor generates the fused kernels) and
run eagerly elsewhere; the model uses these paths only while training on a device in
:data:`FUSED_DEVICES` (tests add ``"cpu"`` to compare them with the eager model).  The eager
references are the model's own ``MLP.forward`` and ``F.cross_entropy(c·tanh(x/c))``.

Shipped inside the generated ``train_gpt.py`` when the config asks for them: torch only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FUSED_DEVICES = ["cuda"]  # device types on which the model takes these paths
_COMPILED: dict = {}


def _kernel(fn, x: torch.Tensor):
    """``fn`` compiled by torch.compile on CUDA (once; eager if compiling fails), ``fn`` elsewhere."""
    if not x.is_cuda:
        return fn
    if fn not in _COMPILED:
        try:
            _COMPILED[fn] = torch.compile(fn, dynamic=False)
        except Exception:  # no inductor/triton on this install: the eager body
            _COMPILED[fn] = fn
    return _COMPILED[fn]


def _act(pre: torch.Tensor, slope: float) -> torch.Tensor:
    return F.leaky_relu(pre, slope).square()


def _act_grad(dpost: torch.Tensor, pre: torch.Tensor, slope: float) -> torch.Tensor:
    return dpost * torch.where(pre > 0, 2.0 * pre, (2.0 * slope * slope) * pre)


class _FusedMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w1, w2, slope):
        x2 = x.reshape(-1, x.size(-1))
        pre = x2 @ w1.t()
        out = _kernel(_act, pre)(pre, slope) @ w2.t()
        ctx.save_for_backward(x2, w1, w2, pre)
        ctx.slope, ctx.shape = slope, x.shape
        return out.view(*x.shape[:-1], w2.size(0))

    @staticmethod
    def backward(ctx, g):
        x2, w1, w2, pre = ctx.saved_tensors
        g2 = g.reshape(-1, g.size(-1))
        post = _kernel(_act, pre)(pre, ctx.slope)
        dpre = _kernel(_act_grad, pre)(g2 @ w2, pre, ctx.slope)
        return (dpre @ w1).view(ctx.shape), dpre.t() @ x2, g2.t() @ post, None


def fused_mlp(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, slope: float) -> torch.Tensor:
    """``LeakyReLU(x·w1ᵀ, slope)²·w2ᵀ`` keeping only ``x`` and the pre-activation for the backward."""
    return _FusedMLP.apply(x, w1, w2, slope)


def _ce_fwd(x: torch.Tensor, targets: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    z = (2.0 * cap) * torch.sigmoid(x.float() * (2.0 / cap))
    lse = torch.logsumexp(z, dim=-1)
    return lse - z.gather(1, targets[:, None])[:, 0], lse


def _ce_bwd(x: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, scale: torch.Tensor, cap: float):
    s = torch.sigmoid(x.float() * (2.0 / cap))
    p = torch.exp((2.0 * cap) * s - lse[:, None])
    p = p - F.one_hot(targets, x.size(-1)).to(p.dtype)
    return (p * (4.0 * s * (1.0 - s)) * scale).to(x.dtype)


class _SoftcapCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, targets, cap):
        losses, lse = _kernel(_ce_fwd, x)(x, targets, cap)
        ctx.save_for_backward(x, targets, lse)
        ctx.cap = cap
        return losses.mean()

    @staticmethod
    def backward(ctx, g):
        x, targets, lse = ctx.saved_tensors
        scale = g.float() / x.size(0)
        return _kernel(_ce_bwd, x)(x, targets, lse, scale, ctx.cap), None, None


def softcap_cross_entropy(x: torch.Tensor, targets: torch.Tensor, cap: float) -> torch.Tensor:
    """Mean of ``cross_entropy(cap·tanh(x/cap), targets)`` (fp32) from pre-cap logits ``x`` (N, V), keeping
    only ``x`` and the per-row log-sum-exp for the backward."""
    return _SoftcapCE.apply(x, targets, float(cap))
