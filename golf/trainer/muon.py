"""Muon: momentum + Newton-Schulz orthogonalised updates for 2-D weight matrices (SPEC §4.2).

Per matrix W with (DDP-averaged) gradient G:

1. buf <- mu*buf + G; U <- G + mu*buf (Nesterov; plain momentum uses U <- buf);
2. MuonEq-R (optional): each row of U divided by max(||row||, 1e-7);
3. five Newton-Schulz iterations on U/||U||_F, in bf16 on CUDA and fp32 elsewhere, each
   ``X <- a*X + B@X`` with ``A = X@Xᵀ``: the quintic (3.4445, -4.7750, 2.0315) every iteration with
   ``B = b*A + (c*A)@A`` (the SP4096 record's operation order, which matters in bf16), or with
   ``train.muon_polar_express`` one (a, b, c) per iteration from :data:`POLAR_EXPRESS_COEFFS` with
   ``B = b*A + c*(A@A)`` (the final record's);
4. O <- O * sqrt(max(1, rows/cols)), in the Newton-Schulz dtype (the update is rounded
   through it, as the record's bf16 update buffer does);
5. W <- W*(1 - lr*wd) - lr*O (decoupled weight decay).

Under torch.distributed every rank keeps the full momentum state (cheap, element-wise) but
orthogonalises only the matrices k with k % world_size == rank; the updates are summed
across ranks in one flat buffer, so all ranks apply identical updates and any rank's
state is a complete checkpoint.

Shipped inside the generated ``train_gpt.py``: torch + standard library only.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

from golf import POLAR_EXPRESS, TOOLKIT

NS_COEFFS = (3.4445, -4.7750, 2.0315)

# Polar-Express Newton-Schulz (the 2026-04-27 record, SPEC §4.2): one (a, b, c) per iteration, in
# order; a run asks for at most this many iterations (more run the table once, as the record does).
POLAR_EXPRESS_COEFFS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def zeropower_ns5(G: torch.Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Approximate U·Vᵀ of ``G = U·S·Vᵀ`` by ``steps`` quintic Newton-Schulz iterations.

    The result's singular values land in roughly [0.7, 1.2] (the quintic trades exactness
    for speed).  ``dtype`` defaults to bf16 on CUDA and fp32 elsewhere.
    """
    if TOOLKIT and G.ndim != 2:  # caller checks: toolkit only
        raise ValueError(f"zeropower_ns5 expects a matrix, got shape {tuple(G.shape)}")
    a, b, c = NS_COEFFS
    if dtype is None:
        dtype = torch.bfloat16 if G.is_cuda else torch.float32
    X = G.to(dtype)
    X = X / (X.norm() + eps)
    transposed = X.size(0) > X.size(1)
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + (c * A) @ A
        X = a * X + B @ X
    if transposed:
        X = X.T
    return X


def zeropower_polar_express(G: torch.Tensor, steps: int = 5, eps: float = 1e-7,
                            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Polar-Express orthogonalisation of a matrix (or a stack of matrices, each normalised alone).

    Iteration i uses ``POLAR_EXPRESS_COEFFS[i]`` (``steps`` > the table runs the table once); the
    input is transposed to wide before it is divided by its Frobenius norm, and each step computes
    ``B = b*A + c*(A@A)``: the final record's order (the SP4096 record's quintic associates
    ``(c*A)@A``), so bf16 results agree bit for bit.  ``dtype`` defaults to bf16 on CUDA, fp32 elsewhere.
    """
    if dtype is None:
        dtype = torch.bfloat16 if G.is_cuda else torch.float32
    X = G.to(dtype)
    transposed = X.size(-2) > X.size(-1)
    if transposed:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    for a, b, c in POLAR_EXPRESS_COEFFS[:steps]:
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if transposed:
        X = X.mT
    return X


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters; per-group options ``lr, momentum, nesterov, backend_steps, weight_decay, row_norm``
    (+ ``polar_express, bf16_momentum``).

    ``momentum`` may be changed between steps (warm-up ramp, see ``golf.trainer.schedule``).
    The final record's group options (absent = off; ``Optimizers`` sets them from the config, e.g.
    ``opt.param_groups[0].update(polar_express=True, bf16_momentum=True)``): ``polar_express``
    orthogonalises by :func:`zeropower_polar_express` (``train.muon_polar_express``); ``bf16_momentum``
    keeps the momentum buffer, the Nesterov update and its row normalisation in bf16, else fp32.
    ``ns_dtype`` (set on the instance) forces the Newton-Schulz dtype; None = bf16 on CUDA, fp32 elsewhere.
    """

    ns_dtype = None

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 backend_steps: int = 5, weight_decay: float = 0.0, row_norm: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, backend_steps=backend_steps,
                        weight_decay=weight_decay, row_norm=row_norm)
        super().__init__(params, defaults)
        if TOOLKIT:  # caller checks: toolkit only
            for group in self.param_groups:
                for p in group["params"]:
                    if p.ndim < 2:
                        raise ValueError(f"Muon needs matrices; got a parameter of shape {tuple(p.shape)}")
        self.world_size, self.rank = world_size, rank  # train_gpt.py: always given (by Optimizers)
        if TOOLKIT:  # other callers may leave them to torch.distributed
            distributed = dist.is_available() and dist.is_initialized()
            if world_size is None:
                self.world_size = dist.get_world_size() if distributed else 1
            if rank is None:
                self.rank = dist.get_rank() if distributed else 0

    def _update(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """Momentum already applied: orthogonalised, shape-scaled update for ``p`` (2-D view, Newton-Schulz dtype)."""
        u = self.state[p]["update_in"]
        if group["row_norm"]:
            if POLAR_EXPRESS and group.get("bf16_momentum"):  # the record: the norm in fp32, the division in bf16
                u = u / u.float().norm(dim=1, keepdim=True).clamp_min(1e-7).to(u.dtype)
            else:
                u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-7)
        if POLAR_EXPRESS and group.get("polar_express"):  # POLAR_EXPRESS: a build flag (golf/__init__.py)
            o = zeropower_polar_express(u, group["backend_steps"], dtype=self.ns_dtype)
        else:
            o = zeropower_ns5(u, steps=group["backend_steps"], dtype=self.ns_dtype)
        rows, cols = u.shape
        return o * math.sqrt(max(1.0, rows / cols))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if TOOLKIT and closure is not None:  # torch's Optimizer API; train_gpt.py never passes one
            with torch.enable_grad():
                loss = closure()
        params = [(p, g) for g in self.param_groups for p in g["params"]]
        # 1. momentum for every matrix (on every rank: keeps the state complete everywhere)
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if POLAR_EXPRESS and group.get("bf16_momentum"):
                    grad = grad.bfloat16()
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(
                        p, dtype=torch.bfloat16 if POLAR_EXPRESS and group.get("bf16_momentum") else torch.float32)
                elif POLAR_EXPRESS and st["momentum_buffer"].dtype != grad.dtype:  # load_state_dict made it fp32
                    st["momentum_buffer"] = st["momentum_buffer"].to(grad.dtype)
                buf = st["momentum_buffer"]
                buf.mul_(mu).add_(grad)
                u = grad.add(buf, alpha=mu) if group["nesterov"] else buf.clone()
                st["update_in"] = u.reshape(u.size(0), -1)
        # 2. orthogonalise this rank's share, share results through one flat buffer
        W = self.world_size
        if W > 1:
            dev = params[0][0].device if params else torch.device("cpu")
            flat_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
            sizes = [p.numel() for p, _ in params]
            flat = torch.zeros(sum(sizes), dtype=flat_dtype, device=dev)
            offs = 0
            for k, ((p, group), n) in enumerate(zip(params, sizes)):
                if k % W == self.rank and p.grad is not None:
                    flat[offs:offs + n] = self._update(p, group).reshape(-1).to(flat_dtype)
                offs += n
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            updates, offs = [], 0
            for n in sizes:
                updates.append(flat[offs:offs + n])
                offs += n
        else:
            updates = [self._update(p, group) if p.grad is not None else None for p, group in params]
        # 3. decoupled weight decay + update
        for (p, group), upd in zip(params, updates):
            if p.grad is None:
                continue
            self.state[p].pop("update_in", None)
            lr, wd = group["lr"], group["weight_decay"]
            if wd:
                p.mul_(1.0 - lr * wd)
            p.add_(upd.view_as(p).to(p.dtype), alpha=-lr)
        return loss
