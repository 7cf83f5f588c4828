"""The golf GPT: one module family, every feature switchable from :class:`ModelConfig`.

Architecture (SPEC §3; defaults = the ``seed`` card, ``sp4096-record`` = the 2026-04-04
SP4096 record exactly):

* ``x0 = RMSNorm(tok_emb[ids])``; logits = ``softcap·tanh(h·Wᵀ/softcap)`` with ``h`` the
  final RMSNorm output and ``W`` the tied embedding (or an untied ``lm_head``).
* Block (physical layer ``i``): optional ``resid_mix`` ``x ← m0⊙x + m1⊙x0``;
  ``x ← x + attn_scale⊙Attn(RMSNorm(x)·f)``; ``x ← x + mlp_scale⊙MLP(RMSNorm(x)·f)`` with
  ``f = 1/√(i+1)`` when ``ln_scale`` (else 1).  RMSNorm is parameter-free.
* Attention: GQA, per-head RMSNorm on q and k, partial RoPE (first ``rope_dims`` dims,
  pairs (j, j+rope_dims/2), rotated by −θ as the record), learned per-head q gain, causal softmax at scale 1/√head_dim,
  optional value embeddings added to v, optional XSA (remove each output's component along
  its own token's value direction), zero-initialised output projection.
* MLP: ``fc → LeakyReLU(slope)² → proj`` (zero-initialised ``proj``).
* Layer schedule: a *virtual* list of physical layers; with recurrence active the layers
  ``[recur_start, recur_end]`` repeat ``recur_loops`` extra times.  The first half
  (⌊n/2⌋) is the encoder, whose outputs are pushed on a stack; decoder position ``j`` pops
  one (while ``j < n_skips``) and mixes it in: ``s = skip_weights[j]⊙pop``,
  ``x ← lerp(s, x, σ(skip_gates[j]))`` (or ``x + s`` without gates).
* Parallel lanes from the first decoder position whose physical layer is
  ``≥ parallel_start_layer``: attention runs on lane ``a`` (reading ``a`` mixed with x0),
  the MLP on lane ``m``.  ``merge`` mode (SP4K): lanes never interact, the output is
  ``λ·a + (1−λ)·m`` (scalar ``lane_merge``).  ``route`` mode (TOP): per block
  ``a ← r_a·a + p_aa·attn + p_ma·mlp``, ``m ← r_m·m + p_am·attn + p_mm·mlp``
  (``lane_route`` rows), output = mean of lanes.

The 2026-04-27 record's additions (preset ``frontier``; code under ``if TOP_CODE:``, dropped from a
``train_gpt.py`` that does not use them): ``parallel_mode=top`` (its lane-weight layout, the skip after
the split), SparseAttnGate, the BOS-masked SmearGate, document-bounded attention from ``docs =
(cu_seqlens, max_seqlen)`` (:func:`doc_spans`), and the fused CUDA training paths of
``golf.model.fused``.

Compute dtype follows autocast: bf16 keeps the residual stream in bf16 (as SP4K);
fp16 keeps it in fp32 and computes norms in fp32 (T4 overflow safety); the soft-cap and
the cross-entropy are always fp32.  Attention uses FlashAttention-3 when it is importable
on a Hopper GPU with bf16 tensors, PyTorch SDPA otherwise.

Shipped inside the generated ``train_gpt.py``: torch + standard library only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from golf import TOOLKIT, TOP_CODE
from golf.config import GATE_NAME_PATTERNS, ModelConfig, check_model, lane_start, layer_schedule, recurrence_enabled
from golf.model.fused import FUSED_DEVICES, fused_mlp, softcap_cross_entropy
from golf.protocol import BOS_ID

# Name substrings of control tensors (kept fp32/exact in artifacts, AdamW "scalar" group).
# SP4K's CONTROL_TENSOR_NAME_PATTERNS (SPEC §3.1) plus golf's TOP-style lane routing.
CONTROL_PATTERNS: tuple[str, ...] = (
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes",
    "q_gain", "skip_weight", "skip_weights", "skip_gates", "ve_layer_scales", "ve_shared.scale",
    "lane_merge", "lane_route", *GATE_NAME_PATTERNS,
)
# TOP's control tensors beyond those (the 2026-04-27 record's CONTROL_TENSOR_NAME_PATTERNS).
TOP_PATTERNS: tuple[str, ...] = ("parallel_post_lambdas", "parallel_resid_lambdas", "attn_gate_w", "smear_gate",
                                 "smear_lambda")
if TOP_CODE:
    CONTROL_PATTERNS += TOP_PATTERNS

# Parameters that go to the embedding optimizer group.
EMBED_PARAMS: tuple[str, ...] = ("tok_emb.weight", "ve_shared.embed.weight", "lm_head.weight")

# Set False to force the SDPA path even where FlashAttention-3 is available.
USE_FA3 = True
_FA3 = None  # flash_attn_interface.flash_attn_func once loaded
_FA3_TRIED = False
_FA3_VARLEN = None  # flash_attn_interface.flash_attn_varlen_func once loaded (False: unavailable)
_DOCS = None  # doc_spans(...) of the forward in progress (set by GPT.hidden; None: plain causal attention)
_SDPA_GQA = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit()) >= (2, 5)


def _autocast_dtype(device_type: str):
    """The active autocast dtype for ``device_type`` (None when autocast is off; torch >= 2.4)."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _load_fa3():
    """Import FlashAttention-3 once (Hopper GPUs only); None when unavailable."""
    global _FA3, _FA3_TRIED
    if not _FA3_TRIED:
        _FA3_TRIED = True
        try:
            if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9:
                from flash_attn_interface import flash_attn_func
                _FA3 = flash_attn_func
        except Exception:  # not installed / wrong GPU / broken build
            _FA3 = None
    return _FA3


def _load_fa3_varlen():
    """Import FlashAttention-3's varlen kernel once, where the dense one loaded; None when unavailable."""
    global _FA3_VARLEN
    if _FA3_VARLEN is None:
        _FA3_VARLEN = False
        try:
            if _load_fa3() is not None:
                from flash_attn_interface import flash_attn_varlen_func
                _FA3_VARLEN = flash_attn_varlen_func
        except Exception:  # an FA3 build without the varlen kernel
            pass
    return _FA3_VARLEN or None


# ---------------------------------------------------------------------------------------
# schedule helpers (pure functions of the config; also used by docs and tests)
# ---------------------------------------------------------------------------------------

def num_skips(cfg: ModelConfig) -> int:
    """Number of U-Net skip weight/gate rows."""
    if not cfg.skip_weights:
        return 0
    n = cfg.num_layers if cfg.skip_count_physical else len(layer_schedule(cfg, True))
    return n // 2  # = min(encoder, decoder) with encoder = floor(n/2)


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dim (fp16 inputs are normalised in fp32)."""
    if x.dtype == torch.float16:
        return F.rms_norm(x.float(), (x.size(-1),)).to(torch.float16)
    return F.rms_norm(x, (x.size(-1),))


class RMSNorm(nn.Module):
    """Parameter-free RMSNorm as a module (so hooks can see e.g. the final norm's output)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x)


class CastedLinear(nn.Linear):
    """Bias-free linear with an fp32 master weight cast to the activation dtype at use."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype))


def rope_tables(seq_len: int, rope_dims: int, base: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (1, T, 1, rope_dims/2): inv_freq_j = base^(-2j/rope_dims)."""
    half = rope_dims // 2
    inv_freq = base ** (-2.0 * torch.arange(half, device=device, dtype=torch.float32) / rope_dims)
    ang = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (j, j+h) of the first 2h dims of ``x`` (B, T, H, D) by -angle, as the SP4096
    record does (``x1·cos + x2·sin``, ``x2·cos − x1·sin``); the rest pass through."""
    h = cos.size(-1)
    if h == 0:
        return x
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., :h], x[..., h:2 * h]
    return torch.cat((x1 * c + x2 * s, x2 * c - x1 * s, x[..., 2 * h:]), dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal GQA attention, scale 1/sqrt(D). q (B,T,H,D), k/v (B,T,Hkv,D) -> (B,T,H,D)."""
    if USE_FA3 and _FA3 is not None and q.is_cuda and q.dtype == torch.bfloat16:
        out = _FA3(q, k, v, causal=True)
        return out[0] if isinstance(out, tuple) else out
    rep = q.size(2) // k.size(2)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if rep > 1 and _SDPA_GQA and not q.is_cuda:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        if rep > 1:  # CUDA: explicit repeat keeps the fast kernels available on every GPU
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return y.transpose(1, 2)


def doc_spans(cu_seqlens: torch.Tensor, max_seqlen: int, seq_len: int, device) -> tuple:
    """What document-bounded attention needs for one packed row of ``seq_len`` tokens: ``(cu_seqlens,
    max_seqlen, mask)``.  ``cu_seqlens`` (int32) lists segment starts then ``seq_len`` (padding repeats
    ``seq_len``); ``mask`` is the (T, T) causal same-segment mask for SDPA, None where varlen
    FlashAttention-3 will run (CUDA, bf16 autocast)."""
    cu = cu_seqlens.to(device=device, dtype=torch.int32)
    if USE_FA3 and _load_fa3_varlen() is not None and cu.is_cuda and _autocast_dtype("cuda") == torch.bfloat16:
        return cu, int(max_seqlen), None
    pos = torch.arange(seq_len, device=device)
    seg = torch.searchsorted(cu[1:].long(), pos, right=True)  # segment index of each position
    mask = (seg[:, None] == seg[None, :]) & (pos[:, None] >= pos[None, :])
    return cu, int(max_seqlen), mask


def attend_docs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, docs: tuple) -> torch.Tensor:
    """:func:`attend` inside documents for one packed row (B = 1; ``docs`` from :func:`doc_spans`):
    varlen FlashAttention-3, or SDPA with the segment mask; no query sees another segment."""
    cu, max_len, mask = docs
    if mask is None and q.dtype == torch.bfloat16:
        out = _load_fa3_varlen()(q[0], k[0], v[0], cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=max_len,
                                 max_seqlen_k=max_len, causal=True)
        return (out[0] if isinstance(out, tuple) else out)[None]
    if mask is None:
        mask = doc_spans(cu.cpu(), max_len, q.size(1), "cpu")[2].to(q.device)
    rep = q.size(2) // k.size(2)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if rep > 1:
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)


def exclusive_self_attention(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """XSA: y_h <- y_h - (y_h . v_hat) v_hat with v_hat the unit value of head h's KV group."""
    B, T, H, D = y.shape
    hkv = v.size(2)
    vn = F.normalize(v.float(), dim=-1).to(y.dtype).unsqueeze(3)  # (B,T,Hkv,1,D)
    yg = y.reshape(B, T, hkv, H // hkv, D)
    yg = yg - (yg * vn).sum(dim=-1, keepdim=True) * vn
    return yg.reshape(B, T, H, D)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        d, hd = cfg.model_dim, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, hd
        self.c_q = CastedLinear(d, cfg.num_heads * hd)
        self.c_k = CastedLinear(d, cfg.num_kv_heads * hd)
        self.c_v = CastedLinear(d, cfg.num_kv_heads * hd)
        self.proj = CastedLinear(cfg.num_heads * hd, d, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), float(cfg.qk_gain_init)))
        self.xsa = cfg.xsa_last_n > 0 and layer >= cfg.num_layers - cfg.xsa_last_n
        if TOP_CODE:  # SparseAttnGate weights (heads x gate_window), zero-init: sigmoid(0) = 0.5
            self.gate_window, self.gate_scale = cfg.gate_window, cfg.sparse_attn_gate
            gate = cfg.sparse_attn_gate > 0
            self.attn_gate_w = nn.Parameter(torch.zeros(cfg.num_heads, cfg.gate_window)) if gate else None

    def forward(self, x, cos, sin, ve=None):
        B, T, _ = x.shape
        q = self.c_q(x).view(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x)
        if ve is not None:
            v = v + ve
        v = v.view(B, T, self.num_kv_heads, self.head_dim)
        q = apply_rope(rms_norm(q), cos, sin)
        k = apply_rope(rms_norm(k), cos, sin)
        q = (q * self.q_gain.to(q.dtype)[:, None]).to(v.dtype)
        y = attend_docs(q, k.to(v.dtype), v, _DOCS) if TOP_CODE and _DOCS is not None else attend(q, k.to(v.dtype), v)
        if self.xsa:
            y = exclusive_self_attention(y, v)
        if TOP_CODE and self.attn_gate_w is not None:  # SparseAttnGate: a sigmoid gate per head from x[:gate_window]
            g = F.linear(x[..., :self.gate_window], self.attn_gate_w.to(x.dtype))
            y = y * torch.sigmoid(self.gate_scale * g)[..., None]
        return self.proj(y.reshape(B, T, self.num_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = int(cfg.mlp_mult * cfg.model_dim)
        self.fc = CastedLinear(cfg.model_dim, hidden)
        self.proj = CastedLinear(hidden, cfg.model_dim, zero_init=True)
        self.slope = cfg.leaky_slope
        if TOP_CODE:
            self.fused = cfg.fused_kernels

    def forward(self, x):
        if TOP_CODE and self.fused and self.training and x.device.type in FUSED_DEVICES:
            return fused_mlp(x, self.fc.weight.to(x.dtype), self.proj.weight.to(x.dtype), self.slope)
        return self.proj(F.leaky_relu(self.fc(x), self.slope).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        self.layer = layer
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d)))) if cfg.resid_mix else None
        route = cfg.parallel_mode == "route" and 0 <= cfg.parallel_start_layer <= layer
        # rows: lane a [r_a, p_aa, p_ma], lane m [r_m, p_am, p_mm]
        self.lane_route = nn.Parameter(torch.tensor([[1.1, 1.0, 1.0], [1.1, 1.0, 1.0]])) if route else None
        self.norm_factor = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0

    def _mix(self, x, x0):
        if self.resid_mix is None:
            return x
        m = self.resid_mix.to(x.dtype)
        return m[0] * x + m[1] * x0

    def _norm(self, x):
        y = rms_norm(x)
        return y * self.norm_factor if self.norm_factor != 1.0 else y

    def forward(self, x, x0, cos, sin, ve=None):
        x = self._mix(x, x0)
        x = x + self.attn_scale.to(x.dtype) * self.attn(self._norm(x), cos, sin, ve)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(self._norm(x))

    def forward_routed(self, a, m, x0, cos, sin, ve, r):
        """A routed parallel block whose lane weights ``r`` (2x3, rows as ``lane_route``) the model holds."""
        att = self.attn_scale.to(a.dtype) * self.attn(self._norm(self._mix(a, x0)), cos, sin, ve)
        mlp = self.mlp_scale.to(m.dtype) * self.mlp(self._norm(m))
        r = r.to(a.dtype)
        return r[0, 0] * a + r[0, 1] * att + r[0, 2] * mlp, r[1, 0] * m + r[1, 1] * att + r[1, 2] * mlp

    def forward_lanes(self, a, m, x0, cos, sin, ve=None):
        a_in = self._mix(a, x0)
        att = self.attn_scale.to(a.dtype) * self.attn(self._norm(a_in), cos, sin, ve)
        mlp = self.mlp_scale.to(m.dtype) * self.mlp(self._norm(m))
        if self.lane_route is None:  # merge mode: the lanes never interact
            return a_in + att, m + mlp
        r = self.lane_route.to(a.dtype)
        return r[0, 0] * a + r[0, 1] * att + r[0, 2] * mlp, r[1, 0] * m + r[1, 1] * att + r[1, 2] * mlp


class ValueEmbedding(nn.Module):
    """Shared value embedding: scale · proj(embed[ids]), added to v on the chosen layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.ve_dim)
        self.proj = CastedLinear(cfg.ve_dim, cfg.num_kv_heads * cfg.head_dim)
        self.scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, idx):
        e = self.proj(self.embed(idx))
        return e * self.scale.to(e.dtype)


# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------

class GPT(nn.Module):
    """GPT driven by :class:`ModelConfig`; see the module docstring for the architecture."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if TOOLKIT:  # the artifact's config was checked when it was trained
            check_model(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.final_norm = RMSNorm()
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, cfg.vocab_size, zero_init=True)
        n = num_skips(cfg)
        self.skip_weights = nn.Parameter(torch.ones(n, cfg.model_dim)) if n else None
        self.skip_gates = nn.Parameter(torch.zeros(n, cfg.model_dim)) if n and cfg.skip_gates else None
        lanes = cfg.parallel_start_layer >= 0
        self.lane_merge = nn.Parameter(torch.tensor(0.5)) if lanes and cfg.parallel_mode == "merge" else None
        self.ve_shared = ValueEmbedding(cfg) if cfg.ve_enabled else None
        self.ve_layer_scales = nn.Parameter(torch.ones(len(cfg.ve_layers))) if cfg.ve_enabled else None
        self._ve_index = {layer: k for k, layer in enumerate(cfg.ve_layers)} if cfg.ve_enabled else {}
        if TOP_CODE:
            self._init_top(cfg, lanes)
        self._recurrence = False
        self._set_schedule()
        self._init_weights()
        _load_fa3()

    def _init_top(self, cfg: ModelConfig, lanes: bool) -> None:
        """TOP's model-level tensors: lane weights for every layer (``parallel_mode=top``) and the SmearGate."""
        L, top = cfg.num_layers, lanes and cfg.parallel_mode == "top"
        self.parallel_post_lambdas = nn.Parameter(torch.ones(L, 2, 2)) if top else None  # [layer, attn|mlp, to a|m]
        self.parallel_resid_lambdas = nn.Parameter(torch.full((L, 2), 1.1)) if top else None  # [layer, lane a|m]
        self.smear_gate = CastedLinear(cfg.gate_window, 1, zero_init=True) if cfg.smear_gate else None
        self.smear_lambda = nn.Parameter(torch.zeros(1)) if cfg.smear_gate else None
        _load_fa3_varlen()

    # -- init -------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_weights(self) -> None:
        if self.tok_emb.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, CastedLinear):
                if m.zero_init:
                    nn.init.zeros_(m.weight)
                elif min(m.weight.shape) >= 64:
                    nn.init.orthogonal_(m.weight, gain=1.0)
        nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.cfg.tied_embed_init_std)
        if self.ve_shared is not None:
            nn.init.normal_(self.ve_shared.embed.weight, mean=0.0, std=0.01)

    # -- layer schedule -------------------------------------------------------------------
    def _set_schedule(self) -> None:
        sched = layer_schedule(self.cfg, self._recurrence)
        self._schedule = tuple(sched)
        self._n_enc = len(sched) // 2
        self._lane_start = lane_start(self.cfg, sched)

    @property
    def recurrence_active(self) -> bool:
        return self._recurrence

    @recurrence_active.setter
    def recurrence_active(self, value: bool) -> None:
        self.set_recurrence(value)

    def set_recurrence(self, active: bool) -> None:
        """Switch depth recurrence on/off (a no-op flag when the config has no recurrence)."""
        self._recurrence = bool(active) and recurrence_enabled(self.cfg)
        self._set_schedule()

    @property
    def virtual_layers(self) -> list[int]:
        return list(self._schedule)

    @property
    def encoder_layers(self) -> list[int]:
        return list(self._schedule[:self._n_enc])

    @property
    def decoder_layers(self) -> list[int]:
        return list(self._schedule[self._n_enc:])

    @property
    def lane_split(self) -> int:
        """Virtual position where the parallel lanes start (len(virtual_layers) = no lanes)."""
        return self._lane_start

    # -- forward --------------------------------------------------------------------------
    def _skip(self, j: int, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s = self.skip_weights[j].to(x.dtype) * s
        if self.skip_gates is None:
            return x + s
        return torch.lerp(s, x, torch.sigmoid(self.skip_gates[j]).to(x.dtype))

    def _smear(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """SmearGate: add a gated copy of the previous token's embedding, never onto a BOS position."""
        g = self.smear_lambda.to(x.dtype) * torch.sigmoid(self.smear_gate(x[:, 1:, :self.cfg.gate_window]))
        keep = (idx[:, 1:] != BOS_ID).to(x.dtype).unsqueeze(-1)
        return torch.cat((x[:, :1], x[:, 1:] + g * x[:, :-1] * keep), dim=1)

    def _route(self, layer: int) -> torch.Tensor:
        """The 2x3 lane weights of ``layer`` (rows as ``Block.lane_route``) from the model-level tensors."""
        res, post = self.parallel_resid_lambdas[layer], self.parallel_post_lambdas[layer]
        lane_a = torch.stack((res[0], post[0, 0], post[1, 0]))
        return torch.stack((lane_a, torch.stack((res[1], post[0, 1], post[1, 1]))))

    def hidden(self, idx: torch.Tensor, docs: tuple | None = None) -> torch.Tensor:
        """Final-normed hidden states (B, T, D).  ``docs`` = ``(cu_seqlens, max_seqlen)`` of one packed row
        (B = 1): attention stays inside each segment (:func:`doc_spans`)."""
        cfg = self.cfg
        if TOP_CODE:  # the attention layers of this forward read the segments from _DOCS
            global _DOCS
            _DOCS = None if docs is None else doc_spans(docs[0], docs[1], idx.size(1), idx.device)
        x = rms_norm(self._smear(self.tok_emb(idx), idx) if TOP_CODE and self.smear_gate is not None
                     else self.tok_emb(idx))
        if _autocast_dtype(x.device.type) == torch.bfloat16:
            x = x.to(torch.bfloat16)  # bf16 residual stream as SP4K (fp16 autocast keeps it fp32)
        x0 = x
        cos, sin = rope_tables(idx.size(1), cfg.rope_dims, cfg.rope_base, idx.device)
        ve = self.ve_shared(idx) if self.ve_shared is not None else None

        def ve_for(layer: int):
            k = self._ve_index.get(layer)
            return None if k is None else ve * self.ve_layer_scales[k].to(ve.dtype)

        stack = []
        for layer in self._schedule[:self._n_enc]:
            x = self.blocks[layer](x, x0, cos, sin, ve_for(layer))
            stack.append(x)
        a = m = None
        n_skip = 0 if self.skip_weights is None else self.skip_weights.size(0)
        for j, layer in enumerate(self._schedule[self._n_enc:]):
            if TOP_CODE and cfg.parallel_mode == "top" and a is None and self._n_enc + j >= self._lane_start:
                a = m = x  # TOP: split first, so this position's skip reaches the attention lane only
            if j < n_skip and stack:
                s = stack.pop()
                if a is None:
                    x = self._skip(j, x, s)
                elif not cfg.parallel_skip_quirk:  # SP4K quirk: the skip goes to the abandoned x
                    a = self._skip(j, a, s)
            if a is None and self._n_enc + j >= self._lane_start:
                a = m = x
            if a is None:
                x = self.blocks[layer](x, x0, cos, sin, ve_for(layer))
            elif TOP_CODE and self.parallel_post_lambdas is not None:
                a, m = self.blocks[layer].forward_routed(a, m, x0, cos, sin, ve_for(layer), self._route(layer))
            else:
                a, m = self.blocks[layer].forward_lanes(a, m, x0, cos, sin, ve_for(layer))
        if a is not None:
            if self.lane_merge is not None:
                lam = self.lane_merge.to(a.dtype)
                x = lam * a + (1 - lam) * m
            else:
                x = 0.5 * (a + m)
        return self.final_norm(x)

    def logits(self, idx: torch.Tensor, docs: tuple | None = None) -> torch.Tensor:
        """Soft-capped logits (B, T, V), fp32."""
        h = self.hidden(idx, docs)
        w = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        z = F.linear(h, w.to(h.dtype)).float()
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(z / cap) if cap > 0 else z

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                docs: tuple | None = None) -> torch.Tensor:
        """Mean cross-entropy (fp32 nats) when ``targets`` are given, else soft-capped logits.  With ``docs``
        = ``(cu_seqlens, max_seqlen)`` (document-packed training) attention does not cross a segment boundary."""
        if (TOP_CODE and targets is not None and self.cfg.fused_kernels and self.training and self.cfg.logit_softcap > 0
                and idx.device.type in FUSED_DEVICES):  # the soft-cap inside the loss (golf.model.fused)
            return self._fused_loss(idx, targets, docs)
        z = self.logits(idx, docs)
        if targets is None:
            return z
        return F.cross_entropy(z.reshape(-1, z.size(-1)), targets.reshape(-1))

    def _fused_loss(self, idx, targets, docs):
        h = self.hidden(idx, docs)
        z = F.linear(h, (self.tok_emb.weight if self.lm_head is None else self.lm_head.weight).to(h.dtype))
        return softcap_cross_entropy(z.reshape(-1, z.size(-1)), targets.reshape(-1), self.cfg.logit_softcap)

    def per_token_nll(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-target negative log-likelihood (B, T), fp32 nats."""
        z = self.logits(idx)
        nll = F.cross_entropy(z.reshape(-1, z.size(-1)), targets.reshape(-1), reduction="none")
        return nll.view(targets.shape)

    # -- optimizer groups -------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """{"matrix": Muon block matrices, "embed": embedding tables (+ untied head), "scalar": rest}."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"matrix": [], "embed": [], "scalar": []}
        for name, p in self.named_parameters():
            if name in EMBED_PARAMS:
                groups["embed"].append((name, p))
            elif (p.ndim == 2 and not any(c in name for c in CONTROL_PATTERNS)
                  and (name.startswith("blocks.") or name == "ve_shared.proj.weight")):
                groups["matrix"].append((name, p))
            else:
                groups["scalar"].append((name, p))
        return groups


def count_params(cfg: ModelConfig) -> int:
    """Number of parameters of ``GPT(cfg)`` (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = GPT(cfg)
    return sum(p.numel() for p in model.parameters())
