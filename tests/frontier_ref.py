"""The 2026-04-27 record's train_gpt.py (../shared/reference/frontier_1.0611/, MIT) as a CPU test oracle.

:func:`load_frontier_reference` executes the script as a module (``main()`` is not run) with
stand-ins for what a CPU machine lacks:

* ``flash_attn_interface``: ``flash_attn_func`` ([B, T, H, D], GQA, causal) and
  ``flash_attn_varlen_func`` (packed [N, H, D] with ``cu_seqlens``: causal attention inside each
  segment) computed by PyTorch SDPA, the varlen one segment by segment, so it shares no code with
  golf's document mask;
* ``triton``: ``triton.jit`` returns the function unchanged, ``triton.language`` and
  ``triton.tools.tensor_descriptor.TensorDescriptor`` are placeholders.  The kernels are never
  launched: the record has eager paths for both (``MLP.use_fused = False`` or ``model.eval()``;
  ``h.fused_ce_enabled = False``), which the tests select.

The module is loaded once per process (its ``torch.library`` custom ops register on load).
"""
from __future__ import annotations

import functools
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REFERENCE_DIR: Path = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "frontier_1.0611"
SCRIPT = REFERENCE_DIR / "train_gpt.py"

needs_reference = pytest.mark.skipif(not SCRIPT.is_file(), reason=f"record script not found: {SCRIPT}")


def sdpa_flash_attn_func(q, k, v, causal=True, **_):
    """FlashAttention-3's dense call on [B, T, H, D] (GQA) by SDPA."""
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=causal, enable_gqa=True)
    return y.transpose(1, 2)


def sdpa_flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=0, max_seqlen_k=0,
                                causal=True, window_size=(-1, -1), **_):
    """FlashAttention-3's varlen call on packed [N, H, D]: each segment [cu[i], cu[i+1]) attends causally
    to itself only (padding entries of ``cu`` repeat the total and give empty segments)."""
    assert torch.equal(cu_seqlens_q, cu_seqlens_k) and max_seqlen_q == max_seqlen_k and tuple(window_size) == (-1, -1)
    out = torch.zeros_like(q)
    cu = cu_seqlens_q.tolist()
    for s, e in zip(cu[:-1], cu[1:]):
        if e > s:
            assert e - s <= max_seqlen_q, (s, e, max_seqlen_q)
            out[s:e] = sdpa_flash_attn_func(q[None, s:e], k[None, s:e], v[None, s:e], causal=causal)[0]
    return out


def _stand_ins() -> dict[str, types.ModuleType]:
    fa = types.ModuleType("flash_attn_interface")
    fa.flash_attn_func = sdpa_flash_attn_func
    fa.flash_attn_varlen_func = sdpa_flash_attn_varlen_func
    triton = types.ModuleType("triton")
    triton.jit = lambda fn=None, **_: fn if fn is not None else (lambda f: f)
    triton.cdiv = lambda a, b: (a + b - 1) // b
    tl = types.ModuleType("triton.language")
    tl.constexpr = object
    triton.language = tl
    tools = types.ModuleType("triton.tools")
    td = types.ModuleType("triton.tools.tensor_descriptor")

    class TensorDescriptor:  # placeholder: the Triton kernels are never launched on CPU
        @staticmethod
        def from_tensor(*_a, **_k):
            raise RuntimeError("Triton is not available in the CPU parity tests")

    td.TensorDescriptor = TensorDescriptor
    tools.tensor_descriptor = td
    triton.tools = tools
    return {"flash_attn_interface": fa, "triton": triton, "triton.language": tl, "triton.tools": tools,
            "triton.tools.tensor_descriptor": td}


@functools.lru_cache(maxsize=1)
def load_frontier_reference() -> types.ModuleType:
    """The record's script as a module (stand-ins above; ``main()`` not run), cached per process."""
    import torch._dynamo
    import torch._inductor.compile_fx  # noqa: F401

    torch._dynamo.eval_frame.get_compiler_fn("inductor")  # torch's compile stack loads before the triton stand-in

    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        mod = types.ModuleType("frontier_record")
        mod.__file__ = str(SCRIPT)
        exec(compile(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT), "exec"), mod.__dict__)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    mod.BOS_ID = 1  # the record sets it when its loader first reads a shard
    return mod
