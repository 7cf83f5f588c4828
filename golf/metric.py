"""Validation metric (SPEC §2): byte lookup tables, bits per byte, plain and sliding-window eval.

Shipped inside the generated ``train_gpt.py``: stdlib, numpy, torch and sentencepiece only.

Every evaluation scores a contiguous range of targets: target ``j`` is token ``j + 1`` of the
validation stream, predicted from the input token ``j`` (and earlier context inside its
window).  Sums are float64; when ``torch.distributed`` is initialized the loss sum, token
count and byte count are all-reduced (SUM), so every rank returns the global metric.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist

from golf import TOOLKIT
from golf.data.loader import load_val_bytes
from golf.progress import maybe_tqdm

# (inputs (B,T) int64, targets (B,T) int64) -> (B,T) fp32 NLL in nats
NllFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ByteLUTs:
    """Per-token byte tables, size max(tokenizer vocab, model vocab)."""

    base_bytes: np.ndarray         # int64: UTF-8 bytes of the piece without its leading "▁"
    has_leading_space: np.ndarray  # bool: piece starts with "▁" (one space byte unless after a boundary)
    is_boundary: np.ndarray        # bool: control / unknown / unused / beyond the tokenizer vocab


def build_byte_luts(sp: spm.SentencePieceProcessor | str, vocab_size: int) -> ByteLUTs:
    """SPEC §2.1 tables from a SentencePiece model (path or loaded processor)."""
    if isinstance(sp, spm.SentencePieceProcessor):
        name = "the SentencePiece tokenizer"
    else:
        name, sp = str(sp), spm.SentencePieceProcessor(model_file=str(sp))
    if TOOLKIT and sp.id_to_piece(sp.piece_to_id("\u2581")) != "\u2581":  # golf's own tokenizer checks
        raise ValueError(f"{name}: tokenizer has no standalone '\u2581' (U+2581) piece, so spaces would be "
                         "counted as byte-fallback bytes (parameter-golf issue #897); retrain it on text with spaces")
    n_sp = sp.vocab_size()
    size = max(n_sp, vocab_size)
    base = np.zeros(size, dtype=np.int64)
    space = np.zeros(size, dtype=bool)
    boundary = np.ones(size, dtype=bool)
    for i in range(n_sp):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return ByteLUTs(base, space, boundary)


def token_bytes(luts: ByteLUTs, prev_ids, target_ids):
    """Bytes credited to each target: base + leading space unless the previous token is a boundary.

    Accepts numpy arrays (returns int64 numpy) or torch tensors (returns int64 on their device).
    """
    if TOOLKIT and isinstance(target_ids, torch.Tensor):  # the shipped evaluation counts on numpy
        dev = target_ids.device
        base, space, boundary = (torch.as_tensor(a, device=dev) for a in
                                 (luts.base_bytes, luts.has_leading_space, luts.is_boundary))
        prev_ids = torch.as_tensor(prev_ids, device=dev).long()
        target_ids = target_ids.long()
        return base[target_ids] + (space[target_ids] & ~boundary[prev_ids]).long()
    prev_ids, target_ids = np.asarray(prev_ids), np.asarray(target_ids)
    return luts.base_bytes[target_ids] + (luts.has_leading_space[target_ids] & ~luts.is_boundary[prev_ids])


@dataclass
class EvalResult:
    val_loss: float    # Σ NLL / tokens (nats)
    val_bpb: float     # Σ NLL / (ln 2 · bytes)
    tokens: int        # scored targets (all ranks)
    bytes: int         # UTF-8 bytes of the scored targets (all ranks)
    nll_sum: float     # Σ NLL in nats, float64 (all ranks)
    elapsed_ms: float
    nll: np.ndarray | None = None  # float32 NLL per target of THIS rank's range, in target order


def model_nll_fn(model: torch.nn.Module, dtype: torch.dtype | None = torch.bfloat16) -> NllFn:
    """An NllFn from a model with ``per_token_nll(idx, targets)``, under autocast to ``dtype``
    (None: no autocast).  The caller puts the model in eval mode."""
    def nll_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if dtype is None:
            return model.per_token_nll(x, y).float()
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            return model.per_token_nll(x, y).float()
    return nll_fn


# A byte source: ByteLUTs (bytes from the tokenizer's pieces, SPEC §2.1) or a byte sidecar (np.ndarray:
# per token of the validation stream, the bytes of the original text it stands for; CaseOps, SPEC §1.6)
BYTE_BASES = ("lut", "sidecar")


def byte_basis(src) -> str:
    """``"sidecar"`` or ``"lut"``: what a byte source counts (the verifier's report states it)."""
    return BYTE_BASES[isinstance(src, np.ndarray)]


def byte_source(dataset_dir, tokenizer, vocab_size: int, n_tokens: int):
    """The one choice of how validation bytes are counted, for the first ``n_tokens`` tokens of the stream:
    the dataset's byte sidecar (``fineweb_val_bytes_*.bin``) when it has one, else the tokenizer's LUTs.
    The toolkit also checks the choice against the dataset's manifest and the tokenizer
    (golf.data.manifest.check_byte_basis): a CaseOps tokenizer is never scored in LUT bytes."""
    side = load_val_bytes(dataset_dir, n_tokens)
    if TOOLKIT:
        from golf.data.manifest import check_byte_basis
        check_byte_basis(dataset_dir, tokenizer, side is not None)
    return build_byte_luts(tokenizer, vocab_size) if side is None else side


def byte_count(luts, tokens: np.ndarray, t0: int, t1: int, chunk: int = 1 << 22) -> int:
    """Bytes of targets [t0, t1) of the stream from a byte source (``luts``): a sidecar's counts of tokens
    t0+1 .. t1, or the LUT rule of SPEC §2.1, computed in chunks to bound memory."""
    if isinstance(luts, np.ndarray):
        return int(luts[t0 + 1:t1 + 1].sum(dtype=np.int64))
    return sum(int(token_bytes(luts, tokens[i:min(i + chunk, t1)], tokens[i + 1:min(i + chunk, t1) + 1]).sum())
               for i in range(t0, t1, chunk))


def bits_per_byte(nll_sum: float, n_bytes: float) -> float:
    """The score: summed NLL in nats over the targets / (ln 2 · their UTF-8 bytes); NaN without bytes."""
    return nll_sum / (math.log(2) * n_bytes) if n_bytes else math.nan


def _run(nll_fn: NllFn, batches: Iterable, n_batches: int, luts: ByteLUTs, tokens: np.ndarray, t0: int, t1: int,
         device, return_nll: bool, progress: bool, desc: str) -> EvalResult:
    """Score ``(inputs, targets, mask or None)`` batches covering targets [t0, t1) in order; reduce."""
    start = time.perf_counter()
    if TOOLKIT:
        batches = maybe_tqdm(batches, progress, total=n_batches, desc=desc, unit="batch")
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    parts = []
    with torch.no_grad():
        for x, y, mask in batches:
            nll = nll_fn(x, y)
            if TOOLKIT and nll.shape != x.shape:  # caller checks: toolkit only
                raise ValueError(f"nll_fn returned shape {tuple(nll.shape)} for inputs of shape {tuple(x.shape)}")
            nll = nll.float()
            nll_sum += (nll if mask is None else torch.where(mask, nll, 0.0)).sum(dtype=torch.float64)
            if TOOLKIT and return_nll:  # per-target NLLs: tests and the verifier only
                parts.append((nll.flatten() if mask is None else nll[mask]).cpu())
    sums = torch.cat([nll_sum.view(1), nll_sum.new_tensor([t1 - t0, byte_count(luts, tokens, t0, t1)])])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    loss_sum, n_tokens, n_bytes = sums.tolist()
    nll = None
    if TOOLKIT and return_nll:
        nll = torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)
        assert len(nll) == t1 - t0, "every target in range must be scored exactly once"
    return EvalResult(
        val_loss=loss_sum / n_tokens if n_tokens else math.nan,
        val_bpb=bits_per_byte(loss_sum, n_bytes),
        tokens=round(n_tokens), bytes=round(n_bytes), nll_sum=loss_sum,
        elapsed_ms=1000 * (time.perf_counter() - start), nll=nll)


def _stream(val_tokens, device) -> tuple[np.ndarray, torch.Tensor]:
    tokens = np.ascontiguousarray(val_tokens, dtype=np.int64)
    if TOOLKIT and (tokens.ndim != 1 or len(tokens) < 2):
        raise ValueError(f"val_tokens must be a 1-D stream of at least 2 tokens, got shape {tokens.shape}")
    return tokens, torch.from_numpy(tokens).to(device)


def _rank_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    if TOOLKIT and (world_size < 1 or not 0 <= rank < world_size):
        raise ValueError(f"bad rank/world_size {rank}/{world_size}")
    return n * rank // world_size, n * (rank + 1) // world_size


def eval_plain(nll_fn: NllFn, val_tokens, luts: ByteLUTs, seq_len: int, batch_seqs: int, device="cpu",
               rank: int = 0, world_size: int = 1, return_nll: bool = False, progress: bool = False) -> EvalResult:
    """SPEC §2.3: non-overlapping windows of ``seq_len``; this rank's contiguous share of sequences."""
    tokens, val = _stream(val_tokens, device)
    L = seq_len
    if len(tokens) - 1 < L:
        raise ValueError(f"validation stream of {len(tokens)} tokens is shorter than one sequence of {L}+1")
    a, b = _rank_range((len(tokens) - 1) // L, rank, world_size)

    def batches():
        for i in range(a, b, batch_seqs):
            j = min(i + batch_seqs, b)
            yield val[i * L:j * L].view(-1, L), val[i * L + 1:j * L + 1].view(-1, L), None

    return _run(nll_fn, batches(), -(-(b - a) // batch_seqs), luts, tokens, a * L, b * L, device,
                return_nll, progress, "eval")


def eval_plain_ragged(nll_fn: NllFn, val_tokens, luts: ByteLUTs, seq_len: int, batch_seqs: int, device="cpu",
                      return_nll: bool = False) -> EvalResult:
    """Plain eval of the untruncated stream (the verifier's coverage): the non-overlapping windows of
    ``seq_len``, then one shorter window over the targets left after the last whole one."""
    tokens, val = _stream(val_tokens, device)
    L, T = seq_len, len(tokens) - 1
    k = T // L
    whole = ((val[i * L:j * L].view(-1, L), val[i * L + 1:j * L + 1].view(-1, L), None)
             for i in range(0, k, batch_seqs) for j in [min(i + batch_seqs, k)])
    tail = [(val[k * L:T].view(1, -1), val[k * L + 1:T + 1].view(1, -1), None)] if T % L else []
    return _run(nll_fn, itertools.chain(whole, tail), -(-k // batch_seqs) + len(tail), luts, tokens, 0, T, device,
                return_nll, False, "eval")


def eval_sliding(nll_fn: NllFn, val_tokens, luts: ByteLUTs, seq_len: int = 2048, stride: int = 64,
                 batch_seqs: int = 32, device="cpu", rank: int = 0, world_size: int = 1,
                 return_nll: bool = False, progress: bool = False) -> EvalResult:
    """SPEC §2.4: windows of ``seq_len`` every ``stride`` tokens; each scores only its last ``stride``
    targets (the first window scores all), so every target after the first window sees
    ``seq_len - stride`` or more tokens of context.  Short tail windows are zero-padded to
    ``seq_len``; padding is never scored.  If the stream is shorter than the context, the
    single window at 0 scores everything."""
    if not 0 < stride <= seq_len:
        raise ValueError(f"eval stride must be in [1, seq_len={seq_len}], got {stride}")
    tokens, val = _stream(val_tokens, device)
    L, T, ctx = seq_len, len(tokens) - 1, seq_len - stride
    starts = np.arange(0, max(T - ctx, 1), stride)           # keep ws with ws + ctx < T (always 0)
    lo = np.where(starts == 0, 0, starts + ctx)               # scored targets of each window: [lo, hi)
    hi = np.minimum(starts + L, T)
    assert lo[0] == 0 and hi[-1] == T and (hi > lo).all() and (lo[1:] == hi[:-1]).all(), "targets not tiled"
    a, b = _rank_range(len(starts), rank, world_size)
    t0, t1 = (int(lo[a]), int(hi[b - 1])) if b > a else (0, 0)
    starts_dev = torch.from_numpy(starts).to(device)
    pos = torch.arange(L, device=device)

    def batches():
        for i in range(a, b, batch_seqs):
            ws = starts_dev[i:min(i + batch_seqs, b), None]
            idx = ws + pos
            valid = idx < T
            idx = idx.clamp(max=T - 1)
            x = torch.where(valid, val[idx], 0)
            y = torch.where(valid, val[idx + 1], 0)
            yield x, y, valid & (pos >= torch.where(ws == 0, 0, ctx))

    return _run(nll_fn, batches(), -(-(b - a) // batch_seqs), luts, tokens, t0, t1, device,
                return_nll, progress, "sliding eval")
