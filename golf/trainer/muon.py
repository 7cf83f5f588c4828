"""Muon: momentum + Newton-Schulz orthogonalised updates for 2-D weight matrices (SPEC §4.2).

Per matrix W with (DDP-averaged) gradient G:

1. buf <- mu*buf + G; U <- G + mu*buf (Nesterov; plain momentum uses U <- buf);
2. MuonEq-R (optional): each row of U divided by max(||row||, 1e-7);
3. five quintic Newton-Schulz iterations with (3.4445, -4.7750, 2.0315) on U/||U||_F,
   in bf16 on CUDA and fp32 elsewhere, each ``X <- a*X + (b*A + (c*A)@A)@X`` with ``A = X@Xᵀ``
   (the SP4096 record's operation order, which matters in bf16);
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

from golf import TOOLKIT

NS_COEFFS = (3.4445, -4.7750, 2.0315)


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


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters; per-group options ``lr, momentum, nesterov, backend_steps, weight_decay, row_norm``.

    ``momentum`` may be changed between steps (warm-up ramp, see ``golf.trainer.schedule``).
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
            u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-7)
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
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p, dtype=torch.float32)
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
