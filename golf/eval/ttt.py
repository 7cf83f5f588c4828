"""Score-first test-time training for golf's GPT: per-document LoRA TTT and phased TTT (SPEC §2.5 (b), (c)).

The rule (SPEC §2.5): every token is scored before any update that used it.  How this module keeps it:

* **Documents.**  A document runs from its BOS through the next document's BOS inclusive (the end of a document
  is predicted and scored; the last one runs to the end of the stream).  The stream must start with BOS, so the
  documents' predicted tokens tile all N-1 targets, each scored exactly once (checked).
* **Processing order** (what "earlier" and "later" mean here, not the stream's order): documents sorted by
  length (stable), cut into batches of ``ttt_batch_size``, the batch holding the longest document first (ties
  keep their order); inside a batch, rows in ascending length (:func:`processing_order`).
* **Per batch** (:meth:`PhasedTTT.score_batch`): one adapter row per document (:class:`LoRABank`: batched
  matmuls, A (rows, in, r), B (rows, r, out)), reset at the batch start (B zeroed; A kept when
  ``ttt_warm_start_a``, else redrawn) with a fresh AdamW (zeroed state).  Each document is cut into chunks of
  ``ttt_chunk_size`` predicted tokens; chunk k is predicted from a window of at most ``ttt_eval_seq_len`` tokens
  of the same document ending at the chunk end (:func:`chunk_window`).  For every chunk: one forward with the
  current adapters, its NLLs recorded, then, if the document has a later chunk, one AdamW step on the mean NLL
  of exactly those targets (:meth:`PhasedTTT.chunk_step`).
* **Phases** (:meth:`PhasedTTT.maybe_phase`): the first ``phased_ttt_prefix_docs`` documents of the processing
  order are split at ``phased_ttt_num_phases`` cumulative boundaries; after a batch, for each boundary the count
  of scored documents has reached, the base model gets full-weight SGD (:func:`global_sgd`) on the tokens of the
  first ``boundary`` scored documents, then the adapters are rebuilt (fresh A).

What a document's NLLs depend on, hence the legality property the tests check: the base weights when its batch
starts (the artifact, then SGD on documents scored before), its row's A at that point (drawn from the seeded
generator; with warm A also trained on the documents of the same row in the batches since the last rebuild,
all scored before), and its own tokens before each target.  Rows never mix: every op of the forward is per row,
each row's loss reaches only its own adapters, AdamW is elementwise.  Never on later documents, nor on its own
tokens at or after a target.

The adapters hook into the model with forward hooks (:func:`adapted`), so golf.model.gpt is unchanged and a
model without hooks is the plain model; with every B = 0 the adapted logits equal ``GPT.logits`` exactly.

Single process.  The seams for ranks (torchrun) are :meth:`PhasedTTT.claim` (the batches this process scores;
the record claims them from a file-locked counter), :meth:`PhasedTTT.scored_docs` (every rank's scored documents
in processing order, for a phase: an all-gather, then the global SGD step's gradient all-reduce in
:func:`global_sgd`) and the per-target NLL tensor (each target written by one rank: an all-reduce SUM before
:meth:`PhasedTTT.result`).  Not yet wired into train_gpt.py, golf train or golf verify.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from golf.config import EvalConfig, ttt_problems
from golf.data.packing import doc_segments
from golf.errors import GolfError
from golf.metric import EvalResult, bits_per_byte, byte_count
from golf.model.gpt import GPT
from golf.protocol import BOS_ID


class TTTError(ValueError, GolfError):
    """Bad input to test-time training; the message names it."""


# ---------------------------------------------------------------------------------------
# documents, order, chunks (pure functions)
# ---------------------------------------------------------------------------------------

def document_spans(tokens: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` of every document of the stream: its BOS through the next document's BOS inclusive,
    the last to the end of the stream.  Their predicted tokens (``length - 1`` each) tile all targets."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or len(tokens) < 2:
        raise TTTError(f"the validation stream must be 1-D with at least 2 tokens, got shape {tokens.shape}")
    bos = np.flatnonzero(tokens == BOS_ID)
    if not len(bos) or bos[0] != 0:
        raise TTTError(f"the validation stream must start with BOS ({BOS_ID}), its first token is {int(tokens[0])}: "
                       "test-time training scores whole documents")
    ends = np.append(bos[1:] + 1, len(tokens))
    return [(int(s), int(e - s)) for s, e in zip(bos, ends) if e - s >= 2]  # a final lone BOS predicts nothing


def processing_order(lengths: list[int], batch_docs: int) -> list[list[int]]:
    """Document indices per batch, in the order they are scored: sorted by length (stable), batches of
    ``batch_docs``, the batch with the longest document first (ties keep their order)."""
    by_len = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [by_len[i:i + batch_docs] for i in range(0, len(by_len), batch_docs)]
    return sorted(batches, key=lambda b: -lengths[b[-1]])


def phase_boundaries(n_docs: int, prefix_docs: int, num_phases: int) -> list[int]:
    """The cumulative scored-document counts at which a global SGD phase runs (empty ones dropped)."""
    prefix = max(0, min(n_docs, prefix_docs))
    return sorted({prefix * (k + 1) // num_phases for k in range(num_phases)} - {0})


def chunk_window(ci: int, pred_len: int, chunk: int, ctx: int) -> tuple[int, int, int]:
    """``(window start, chunk start, chunk end)`` as target offsets in a document of ``pred_len`` targets:
    chunk ``ci`` holds targets [ci·chunk, min((ci+1)·chunk, pred_len)), predicted from the inputs at offsets
    [max(0, end - ctx), end).  Offset o is input token start+o, target token start+o+1, stream target start+o."""
    lo, hi = ci * chunk, min((ci + 1) * chunk, pred_len)
    return max(0, hi - ctx), lo, hi


# ---------------------------------------------------------------------------------------
# adapters
# ---------------------------------------------------------------------------------------

class BatchedLoRA(nn.Module):
    """``rows`` independent rank-r adapters d_in -> d_out: x (rows, T, d_in) -> (x A) B · scale with
    A (rows, d_in, r) ~ U(±1/sqrt(d_in)) and B (rows, r, d_out) = 0, so a fresh adapter adds exact zeros."""

    def __init__(self, rows: int, d_in: int, d_out: int, rank: int, scale: float, gen: torch.Generator, device):
        super().__init__()
        self.bound, self.scale, self.gen = 1.0 / math.sqrt(d_in), scale, gen
        self.A = nn.Parameter(torch.empty(rows, d_in, rank, device=device))
        self.B = nn.Parameter(torch.zeros(rows, rank, d_out, device=device))
        self.draw_a()

    @torch.no_grad()
    def draw_a(self) -> None:
        """Redraw A from the generator (on the CPU, so every device draws the same values)."""
        self.A.copy_(torch.empty(self.A.shape).uniform_(-self.bound, self.bound, generator=self.gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.to(x.dtype)) @ self.B.to(x.dtype) * self.scale


class LoRABank(nn.Module):
    """The adapters of one batch of documents (row b = document b): for every virtual layer slot of ``model``
    (its current layer schedule) Q, K, V, the attention output and the MLP-parallel adapter (d -> d), and one
    lm_head adapter (d -> vocab); outputs scaled by alpha / rank."""

    SITES = ("q", "k", "v", "o", "mlp")

    def __init__(self, model: GPT, rows: int, rank: int, alpha: float, gen: torch.Generator):
        super().__init__()
        attn, d, dev = model.blocks[0].attn, model.cfg.model_dim, model.tok_emb.weight.device
        outs = {"q": attn.c_q.out_features, "k": attn.c_k.out_features, "v": attn.c_v.out_features, "o": d, "mlp": d}

        def make(d_out: int) -> BatchedLoRA:
            return BatchedLoRA(rows, d, d_out, rank, alpha / rank, gen, dev)

        slots = len(model.virtual_layers)
        self.sites = nn.ModuleDict({s: nn.ModuleList(make(outs[s]) for _ in range(slots)) for s in self.SITES})
        self.head = make(model.cfg.vocab_size)
        self.rows, self.slots, self.slot = rows, slots, -1

    @torch.no_grad()
    def reset(self, warm_a: bool) -> None:
        """A new batch: every B zeroed; A redrawn unless ``warm_a``."""
        for m in self.modules():
            if isinstance(m, BatchedLoRA):
                m.B.zero_()
                if not warm_a:
                    m.draw_a()


@contextlib.contextmanager
def adapted(model: GPT, bank: LoRABank):
    """``model`` with ``bank``'s adapters hooked in (forward hooks, removed on exit).  Each Attention call opens
    the next virtual layer slot; the c_q / c_k / c_v outputs get their adapter of the same input; the Attention
    output gets ``o`` of the attention input (the normed block input, as the record feeds its output adapter);
    the MLP output gets ``mlp`` of the MLP input.  Both act before attn_scale / mlp_scale, in every lane mode."""
    def open_slot(_module, _args):
        bank.slot += 1

    def add(site: str):
        loras = bank.sites[site]

        def hook(_module, args, out):
            return out + loras[bank.slot](args[0])
        return hook

    handles = []
    for block in model.blocks:
        a = block.attn
        handles += [a.register_forward_pre_hook(open_slot), a.c_q.register_forward_hook(add("q")),
                    a.c_k.register_forward_hook(add("k")), a.c_v.register_forward_hook(add("v")),
                    a.register_forward_hook(add("o")), block.mlp.register_forward_hook(add("mlp"))]
    try:
        yield bank
    finally:
        for h in handles:
            h.remove()


def adapted_logits(model: GPT, bank: LoRABank, x: torch.Tensor) -> torch.Tensor:
    """Soft-capped logits (rows, T, V) fp32 of ``model`` under :func:`adapted` (the caller holds it), the lm_head
    adapter added before the soft cap.  With every B = 0 this is ``model.logits(x)`` exactly."""
    bank.slot = -1
    h = model.hidden(x)
    if bank.slot != bank.slots - 1:
        raise TTTError(f"the adapters have {bank.slots} layer slots but the forward ran {bank.slot + 1} attention "
                       "layers: build them after setting the model's recurrence (set_recurrence)")
    w = model.tok_emb.weight if model.lm_head is None else model.lm_head.weight
    z = F.linear(h, w.to(h.dtype)).float() + bank.head(h).float()
    cap = model.cfg.logit_softcap
    return cap * torch.tanh(z / cap) if cap > 0 else z


def adapted_nll(model: GPT, bank: LoRABank, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-target NLL (rows, T) fp32 nats of :func:`adapted_logits`."""
    z = adapted_logits(model, bank, x)
    return F.cross_entropy(z.reshape(-1, z.size(-1)), y.reshape(-1), reduction="none").view(y.shape)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------
# global SGD phase
# ---------------------------------------------------------------------------------------

def global_sgd(model: GPT, tokens: np.ndarray, cfg: EvalConfig, device="cpu", dtype: torch.dtype | None = None) -> int:
    """Full-weight SGD of ``model`` on ``tokens`` (already-scored documents, concatenated); returns the steps.

    Chunks of ``global_ttt_chunk_tokens`` targets, the last chunk not trained on (as the record); chunk ci at lr
    ``global_ttt_lr·½(1 + cos(π·ci/(n-1)))``, ``global_ttt_epochs`` passes of steps of ``global_ttt_batch_seqs``
    sequences of ``eval_seq_len`` tokens packed in one row, attention bounded by documents (BOS; segments cut
    at ``eval_seq_len``), momentum ``global_ttt_momentum``, gradient norm clipped at ``global_ttt_grad_clip``.
    Several ranks: all-reduce (AVG) the gradients before the clip."""
    device = torch.device(device)
    L, chunk, per = cfg.eval_seq_len, cfg.global_ttt_chunk_tokens, cfg.global_ttt_batch_seqs
    n_chunks = -(-(len(tokens) - 1) // chunk)
    if cfg.global_ttt_epochs <= 0 or n_chunks < 2:
        return 0
    params = list(model.parameters())
    flags, was_training = [p.requires_grad for p in params], model.training
    opt = torch.optim.SGD(params, lr=cfg.global_ttt_lr, momentum=cfg.global_ttt_momentum)
    val = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
    steps = 0
    model.requires_grad_(True)
    model.train()
    try:
        for ci in range(n_chunks - 1):  # every trained chunk is whole: chunk // L sequences
            for g in opt.param_groups:
                g["lr"] = cfg.global_ttt_lr * 0.5 * (1 + math.cos(math.pi * ci / (n_chunks - 1)))
            seqs = chunk // L
            for _ in range(cfg.global_ttt_epochs):
                for s in range(0, seqs, per):
                    a, b = ci * chunk + s * L, ci * chunk + min(s + per, seqs) * L
                    _sgd_step(model, opt, val[a:b + 1], L, cfg.global_ttt_grad_clip, device, dtype)
                    steps += 1
    finally:
        model.train(was_training)
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return steps


def _sgd_step(model: GPT, opt: torch.optim.Optimizer, span: torch.Tensor, seq_len: int, clip: float,
              device: torch.device, dtype: torch.dtype | None) -> None:
    """One document-bounded SGD step on the packed row ``span`` (inputs span[:-1], targets span[1:])."""
    x = span[:-1]
    cu, max_len = doc_segments(torch.nonzero(x == BOS_ID).flatten().tolist(), len(x), seq_len)
    x, y = x.to(device), span[1:].to(device)
    with _autocast(device, dtype):
        loss = model(x[None], y[None], docs=(torch.from_numpy(cu), max_len))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


# ---------------------------------------------------------------------------------------
# the procedure
# ---------------------------------------------------------------------------------------

@dataclass
class ChunkPlan:
    """One chunk step of a batch: inputs/targets (rows, W) zero-padded, where the scored targets sit, who trains."""

    x: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor        # int64: row, window position and stream target index of every scored target
    cols: torch.Tensor
    targets: torch.Tensor
    train_rows: torch.Tensor  # int64: rows whose document has a later chunk (their chunk is whole) ...
    train_lo: int             # ... at window positions [train_lo, train_lo + chunk)


class PhasedTTT:
    """Phased score-first TTT of ``model`` over the stream ``val_tokens`` with the ``cfg`` (EvalConfig) knobs;
    see the module docstring.  ``run()`` returns golf.metric's EvalResult (``nll``: per target, stream order).
    The model's weights change when a phase runs (evaluate a copy to keep them); its mode and requires_grad
    flags are restored.  ``dtype``: autocast dtype (None: full precision); ``seed``: the adapters' A draws."""

    def __init__(self, model: GPT, cfg: EvalConfig, val_tokens, luts, device="cpu", dtype: torch.dtype | None = None,
                 seed: int = 0):
        for key, why in ttt_problems(cfg).items():
            raise TTTError(f"eval.{key}={getattr(cfg, key)}: {why}")
        self.model, self.cfg, self.luts, self.device, self.dtype = model, cfg, luts, torch.device(device), dtype
        self.tokens = np.ascontiguousarray(val_tokens, dtype=np.int64)
        self.docs = document_spans(self.tokens)
        self.batches = processing_order([n for _, n in self.docs], cfg.ttt_batch_size)
        self.boundaries = phase_boundaries(len(self.docs), cfg.phased_ttt_prefix_docs, cfg.phased_ttt_num_phases)
        self.rows = min(cfg.ttt_batch_size, len(self.docs))
        self.gen = torch.Generator().manual_seed(seed)
        n_targets = len(self.tokens) - 1
        self.nll = torch.zeros(n_targets, dtype=torch.float32, device=self.device)
        self.seen = torch.zeros(n_targets, dtype=torch.int32, device=self.device)
        self.scored: list[int] = []  # document indices in the order they were scored
        self.phase_steps: list[int] = []  # SGD steps of each global phase run
        self.phase, self.bank = 0, None

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> EvalResult:
        """Every batch in processing order, each followed by the phases it completes; the metric."""
        start = time.perf_counter()
        with self.prepared():
            for b in self.claim():
                self.score_batch([self.docs[i] for i in self.batches[b]])
                self.scored += self.batches[b]
                self.maybe_phase()
        return self.result(start)

    @contextlib.contextmanager
    def prepared(self):
        """The model in eval mode with frozen weights and the first adapters built; mode and flags restored."""
        model = self.model
        flags, was_training = [p.requires_grad for p in model.parameters()], model.training
        model.eval()
        model.requires_grad_(False)
        try:
            self.bank = self.new_bank()
            yield self
        finally:
            model.train(was_training)
            for p, f in zip(model.parameters(), flags):
                p.requires_grad_(f)

    def claim(self):
        """The batch numbers this process scores, in order (one process: all).  Seam for ranks: the record
        claims them dynamically from a file-locked counter."""
        return range(len(self.batches))

    def scored_docs(self) -> list[int]:
        """Every scored document, in processing order (seam for ranks: all-gather, sort by batch and row)."""
        return self.scored

    def new_bank(self) -> LoRABank:
        c = self.cfg
        return LoRABank(self.model, self.rows, c.ttt_lora_rank, c.ttt_lora_alpha, self.gen)

    def result(self, start: float) -> EvalResult:
        """The metric from the per-target NLLs (each target must have been scored exactly once)."""
        seen = self.seen.cpu().numpy()
        if (seen != 1).any():
            j = int(np.flatnonzero(seen != 1)[0])
            raise TTTError(f"target {j} of the stream was scored {seen[j]} times (expected once)")
        nll = self.nll.cpu().numpy()
        n = len(nll)
        nll_sum, n_bytes = float(nll.sum(dtype=np.float64)), byte_count(self.luts, self.tokens, 0, n)
        return EvalResult(val_loss=nll_sum / n, val_bpb=bits_per_byte(nll_sum, n_bytes), tokens=n, bytes=n_bytes,
                          nll_sum=nll_sum, elapsed_ms=1000 * (time.perf_counter() - start), nll=nll)

    # -- one batch of documents -----------------------------------------------------------------
    def score_batch(self, docs: list[tuple[int, int]]) -> None:
        """Score the documents ``[(start, length), ...]`` (at most ``rows``; row b = document b) chunk by chunk,
        the adapters reset and a fresh AdamW at the start."""
        c, bank = self.cfg, self.bank
        bank.reset(c.ttt_warm_start_a)
        opt = torch.optim.AdamW(bank.parameters(), lr=c.ttt_lora_lr, betas=(c.ttt_beta1, c.ttt_beta2),
                                eps=c.ttt_eps, weight_decay=c.ttt_weight_decay)
        n_chunks = [-(-(n - 1) // c.ttt_chunk_size) for _, n in docs]
        with adapted(self.model, bank):
            for ci in range(max(n_chunks)):
                self.chunk_step(bank, opt, self.plan(docs, n_chunks, ci))

    def plan(self, docs: list[tuple[int, int]], n_chunks: list[int], ci: int) -> ChunkPlan:
        """Chunk ``ci`` of every document that has one: its window left-aligned in its row."""
        chunk, ctx = self.cfg.ttt_chunk_size, self.cfg.ttt_eval_seq_len
        width = min(ctx, (ci + 1) * chunk)
        x, y = np.zeros((self.rows, width), np.int64), np.zeros((self.rows, width), np.int64)
        rows, cols, targets, train = [], [], [], []
        for row, ((start, n), nc) in enumerate(zip(docs, n_chunks)):
            if ci >= nc:
                continue
            ws, lo, hi = chunk_window(ci, n - 1, chunk, ctx)
            x[row, :hi - ws] = self.tokens[start + ws:start + hi]
            y[row, :hi - ws] = self.tokens[start + ws + 1:start + hi + 1]
            rows.append(np.full(hi - lo, row))
            cols.append(np.arange(lo - ws, hi - ws))
            targets.append(np.arange(start + lo, start + hi))
            if ci < nc - 1:
                train.append(row)

        def dev(a) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.int64)).to(self.device)

        return ChunkPlan(dev(x), dev(y), dev(np.concatenate(rows)), dev(np.concatenate(cols)),
                         dev(np.concatenate(targets)), dev(train), ci * chunk - max(0, (ci + 1) * chunk - ctx))

    def chunk_step(self, bank: LoRABank, opt: torch.optim.Optimizer, plan: ChunkPlan) -> None:
        """Score first: the chunk's NLLs are recorded from this forward, then one step on exactly those targets."""
        train = plan.train_rows.numel() > 0
        with torch.set_grad_enabled(train):
            nll = self.forward(bank, plan)
        self.record(plan, nll)
        if train:
            self.update(opt, plan, nll)

    def forward(self, bank: LoRABank, plan: ChunkPlan) -> torch.Tensor:
        with _autocast(self.device, self.dtype):
            return adapted_nll(self.model, bank, plan.x, plan.y)

    def record(self, plan: ChunkPlan, nll: torch.Tensor) -> None:
        self.nll[plan.targets] = nll.detach()[plan.rows, plan.cols].float()
        self.seen.index_add_(0, plan.targets, torch.ones_like(plan.targets, dtype=torch.int32))

    def update(self, opt: torch.optim.Optimizer, plan: ChunkPlan, nll: torch.Tensor) -> None:
        """One AdamW step on Σ over the training rows of the mean NLL of their chunk (rows' adapters are disjoint,
        so each row's step sees only its own document)."""
        lo = plan.train_lo
        loss = nll[plan.train_rows, lo:lo + self.cfg.ttt_chunk_size].mean(dim=1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # -- phases ---------------------------------------------------------------------------------
    def maybe_phase(self) -> None:
        """After a batch: a global SGD phase for every boundary the scored count has reached, then new adapters."""
        ran = False
        while self.phase < len(self.boundaries) and len(self.scored_docs()) >= self.boundaries[self.phase]:
            tokens = self.phase_tokens(self.boundaries[self.phase])
            self.phase_steps.append(global_sgd(self.model, tokens, self.cfg, self.device, self.dtype))
            self.phase, ran = self.phase + 1, True
        if ran:
            self.bank = self.new_bank()

    def phase_tokens(self, boundary: int) -> np.ndarray:
        """The tokens of the first ``boundary`` scored documents (processing order), concatenated."""
        spans = [self.docs[i] for i in self.scored_docs()[:boundary]]
        return np.concatenate([self.tokens[s:s + n] for s, n in spans])


def eval_ttt_phased(model: GPT, cfg: EvalConfig, val_tokens, luts, device="cpu", dtype: torch.dtype | None = None,
                    seed: int = 0) -> EvalResult:
    """SPEC §2.5 (c): phased score-first TTT of ``model`` (see :class:`PhasedTTT`; changes its weights when a
    phase runs).  ``luts``: golf.metric's byte source (ByteLUTs or a byte sidecar)."""
    return PhasedTTT(model, cfg, val_tokens, luts, device, dtype, seed).run()
