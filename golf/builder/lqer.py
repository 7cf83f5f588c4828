"""LQER (SPEC §5.4): a low-rank, low-bit correction of the quantization error of the worst tensors.

For every quantized tensor E = W - Q·s is measured (Frobenius norm); on the ``quant.lqer_top_k``
tensors with the largest one, E ≈ A·B from its rank-``quant.lqer_rank`` SVD (A = U_r·S_r, B = V_rᵀ),
and the factors are stored as asymmetric integers: A with ``quant.lqer_a_bits`` bits and one fp16
scale for the whole matrix, B (flattened, row-major) with ``quant.lqer_factor_bits`` bits and one fp16
scale per ``quant.lqer_group`` values (the last group padded).  Asymmetric b-bit integers span
[-2^(b-1), 2^(b-1)-1] at scale max|x| / (2^(b-1) - 0.5), as the record's int2/int4 packing.

Storage (the container's kind ``ql``): ``name.q``/``name.s`` as kind ``q``, plus ``name.lqa`` (int8,
rows x r), ``name.lqas`` (fp16, 1), ``name.lqb`` (int8, r x cols) and ``name.lqbs`` (fp16, one per group);
``golf.builder.container.dequantize`` adds (qA·sA)(qB·sB).  Which tensors are candidates is the last
column of ``golf.builder.grouped.TENSOR_ROLES``, the one table of tensor roles the packer reads too.
"""
from __future__ import annotations

import torch

from golf.builder.grouped import tensor_role


def asym_quantize(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` (one scale per row) as asymmetric ``bits``-bit integers -> (int8 values, fp16 scales)."""
    half = 2 ** (int(bits) - 1)
    s = (x.abs().amax(dim=1).clamp_min(1e-10) / (half - 0.5)).half()
    q = torch.clamp(torch.round(x / s.float()[:, None]), -half, half - 1).to(torch.int8)
    return q, s


def lqer_factors(E: torch.Tensor, qcfg) -> dict:
    """Quantized rank-r factors of the error matrix ``E`` (rows x cols): ``{suffix: tensor}``."""
    U, S, Vh = torch.linalg.svd(E.float(), full_matrices=False)
    r = min(int(qcfg.lqer_rank), S.numel())
    A, B = U[:, :r] * S[:r], Vh[:r]
    qa, sa = asym_quantize(A.reshape(1, -1), qcfg.lqer_a_bits)
    g = int(qcfg.lqer_group)
    flat = torch.cat([B.reshape(-1), B.new_zeros(-B.numel() % g)]).reshape(-1, g)
    qb, sb = asym_quantize(flat, qcfg.lqer_factor_bits)
    return {".lqa": qa.reshape(A.shape), ".lqas": sa, ".lqb": qb.reshape(-1)[:B.numel()].reshape(B.shape),
            ".lqbs": sb}


def lqer_correction(qa: torch.Tensor, sa: torch.Tensor, qb: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """(qA·sA)(qB·sB) from the stored factors (B's groups run over its flattened values)."""
    g = -(-qb.numel() // sb.numel())
    b = qb.reshape(-1).float()
    b = torch.cat([b, b.new_zeros(sb.numel() * g - b.numel())]).reshape(-1, g) * sb.float()[:, None]
    return (qa.float() * sa.float()) @ b.reshape(-1)[:qb.numel()].reshape(qb.shape)


def apply_lqer(state: dict, arrays: dict, qmeta: dict, info: dict, qcfg) -> list[str]:
    """Add LQER factors to ``arrays`` (in place) for the top-k tensors by ‖W - Q·s‖_F among the quantized
    tensors whose ``TENSOR_ROLES`` row makes them candidates; their kind becomes ``ql``.  Returns the names
    corrected."""
    errs = {}
    for name, (kind, _) in qmeta.items():
        if kind != "q" or not tensor_role(name)[4]:
            continue
        q, s = arrays[name + ".q"], arrays[name + ".s"]
        w = state[name].float().reshape(q.shape[0], -1)
        errs[name] = w - q.float().reshape(w.shape) * s.float()[:, None]
    top = sorted(errs, key=lambda n: -float(errs[n].norm()))[:max(0, int(qcfg.lqer_top_k))]
    for name in top:
        f = lqer_factors(errs[name], qcfg)
        for suffix, t in f.items():
            arrays[name + suffix] = t
        qmeta[name] = ["ql", qmeta[name][1]]
        E2 = errs[name] - lqer_correction(*f.values())
        info[name].update(lqer_rank=int(f[".lqa"].shape[1]), lqer_error_before=float(errs[name].norm()),
                          lqer_error_after=float(E2.norm()), method=info[name]["method"] + "+lqer")
    return top
