"""The 2026-04-27 record's ``train_gpt.py`` (``../shared/reference/frontier_1.0611/``, MIT) as a test oracle.

:func:`load_frontier_reference` executes the script as a module (``main()`` is not run) on CPU with
stand-ins for what it imports but CPU cannot run:

* ``triton`` / ``triton.language`` / ``triton.tools.tensor_descriptor``: passthrough placeholders
  (``triton.jit`` returns the function; every other attribute is an inert placeholder), so the
  module imports; the fused Triton kernels themselves are never called on this path;
* ``flash_attn_interface``: ``flash_attn_func`` by SDPA on [B, T, H, D] with GQA, and
  ``flash_attn_varlen_func`` by SDPA with a causal mask restricted to each ``cu_seqlens`` document.

The reference is found at ``$GOLF_FRONTIER_REFERENCE`` or ``<repo>/../shared/reference/frontier_1.0611``;
tests that need it carry :data:`needs_reference` (skipped with a reason when the folder is missing).
"""
from __future__ import annotations

import functools
import os
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR: Path = Path(os.environ.get("GOLF_FRONTIER_REFERENCE")
                           or REPO.parent / "shared" / "reference" / "frontier_1.0611")
SCRIPT = REFERENCE_DIR / "train_gpt.py"

needs_reference = pytest.mark.skipif(not SCRIPT.is_file(),
                                     reason=f"frontier record script not found: {SCRIPT} "
                                            "(set GOLF_FRONTIER_REFERENCE)")


class _Placeholder:
    """Any attribute, call, subscript or annotation use of a Triton name: inert."""

    def __getattr__(self, name):
        return _Placeholder()

    def __call__(self, *args, **kwargs):
        return _Placeholder()

    def __getitem__(self, key):
        return _Placeholder()


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder()


def _triton_modules() -> dict[str, types.ModuleType]:
    triton = _PlaceholderModule("triton")
    triton.jit = lambda fn=None, **kw: fn if fn is not None else (lambda f: f)
    triton.cdiv = lambda a, b: (a + b - 1) // b
    lang = _PlaceholderModule("triton.language")
    tools = _PlaceholderModule("triton.tools")
    desc = _PlaceholderModule("triton.tools.tensor_descriptor")
    desc.TensorDescriptor = _Placeholder()
    triton.language, triton.tools, tools.tensor_descriptor = lang, tools, desc
    return {"triton": triton, "triton.language": lang, "triton.tools": tools,
            "triton.tools.tensor_descriptor": desc}


def sdpa_flash_attn(q, k, v, causal=True, **_):
    """FlashAttention-3's dense call on [B, T, H, D] tensors with GQA, computed by SDPA."""
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=causal, enable_gqa=True)
    return y.transpose(1, 2)


def sdpa_flash_attn_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, causal=True, **_):
    """FA3's varlen call on packed [T, H, D] tensors: causal attention inside each cu_seqlens document
    (boundary lists padded with the total length, as the record pads them; max_seqlen is not needed)."""
    assert torch.equal(cu_seqlens_q, cu_seqlens_k), "self-attention only: the record passes one boundary list"
    T = q.shape[0]
    pos = torch.arange(T, device=q.device)
    doc = torch.searchsorted(cu_seqlens_q.to(pos.dtype).contiguous(), pos, right=True)
    mask = doc[:, None] == doc[None, :]
    if causal:
        mask &= pos[None, :] <= pos[:, None]
    y = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                       attn_mask=mask, enable_gqa=True)
    return y[0].transpose(0, 1)


@functools.cache
def load_frontier_reference() -> types.ModuleType:
    """The record's script as a module (stand-ins above; ``main()`` not run), loaded once per process."""
    torch.compile(lambda x: x)  # torch probes for the real triton while it sets compile up: before the stand-ins
    fa = types.ModuleType("flash_attn_interface")
    fa.flash_attn_func = sdpa_flash_attn
    fa.flash_attn_varlen_func = sdpa_flash_attn_varlen
    stand_ins = {"flash_attn_interface": fa, **_triton_modules()}
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
    return mod
