"""One typed configuration for golf: model shape, training, evaluation, quantization.

The same :class:`GolfConfig` feeds ``golf train``, ``golf build`` and ``golf verify``
and is embedded (as JSON) in checkpoints and artifacts.  Resolution order for a run is
``flag > environment variable > preset > dataclass default``; the official Parameter
Golf environment-variable names (``ITERATIONS``, ``TRAIN_SEQ_LEN`` ...) are honoured,
see :data:`ENV_VARS`.

Each setting is written once, here: its field, its default, and its help as the string
right under it (an attribute docstring; ``golf.settings`` reads them for ``golf train
--help`` and docs/settings.md, and the built ``train_gpt.py`` drops them).  A setting's
environment variable comes from :data:`ENV_VARS`, its ``golf train`` flag (if any) from
:data:`TRAIN_FLAGS`, its allowed words from :data:`CHOICES`; :meth:`GolfConfig.check`
holds the validation, a ``problems`` method per section with rules (the model's shape rules
live with the model, ``golf.model.gpt``).  Every override goes through :func:`set_field`,
and the toolkit's through :func:`apply_overrides`, which checks the result.

This module is shipped inside the generated ``train_gpt.py``: standard library only.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from golf import TOOLKIT, TOP_CODE, TTT_CODE
from golf.errors import GolfError
from golf.protocol import LIMIT_BYTES


@dataclass
class ModelConfig:
    """GPT shape and feature switches (defaults = the ``seed`` card)."""

    vocab_size: int = 4096
    """Tokenizer pieces; picks the data: datasets/fineweb10B_sp{V}/ and tokenizers/fineweb_{V}_bpe.model."""
    num_layers: int = 11
    """Physical transformer blocks."""
    model_dim: int = 512
    """Residual stream width."""
    num_heads: int = 8
    """Attention heads (head_dim = model_dim / num_heads)."""
    num_kv_heads: int = 4
    """Key/value heads (grouped-query attention); must divide num_heads."""
    mlp_mult: float = 4.0
    """MLP hidden width as a multiple of model_dim."""
    leaky_slope: float = 0.5
    """Negative slope of the LeakyReLU(slope)^2 MLP activation."""
    tie_embeddings: bool = True
    """The token embedding is also the output head."""
    tied_embed_init_std: float = 0.005
    """Initial standard deviation of the token embedding."""
    logit_softcap: float = 30.0
    """Logit soft cap c: logits become c * tanh(logits / c); 0 = none."""
    rope_base: float = 10000.0
    """Rotary embedding base."""
    rope_dims: int = 16
    """Rotated dimensions per head (16 = 25 % of head_dim 64); even, at most head_dim."""
    qk_gain_init: float = 5.0
    """Initial per-head gain on the normalised queries."""
    skip_weights: bool = True
    """U-Net skip connections from the encoder half to the decoder half, with learned weights."""
    skip_gates: bool = True
    """Learned gates on the U-Net skips."""
    parallel_start_layer: int = 7
    """Parallel residual lanes (attention and MLP) from this physical layer on; -1 = off."""
    recur_start: int = 3
    """Depth recurrence: first physical layer of the looped span [recur_start, recur_end]; -1 = off."""
    recur_end: int = 5
    """Depth recurrence: last physical layer of the looped span (inclusive)."""
    recur_loops: int = 2
    """Depth recurrence: extra passes over the span once recurrence is switched on."""
    xsa_last_n: int = 0
    """Exclusive self-attention on the last N layers (0 = none)."""
    ln_scale: bool = False
    """Scale block inputs by 1/sqrt(layer + 1)."""
    resid_mix: bool = False
    """Learned mix of x and the embedding x0 at each block input."""
    ve_enabled: bool = False
    """Shared value embeddings added to the values of the ve_layers."""
    ve_dim: int = 128
    """Width of the shared value-embedding table."""
    ve_layers: tuple[int, ...] = ()
    """Layers that get the value embedding, e.g. 9,10."""
    parallel_mode: str = "merge"
    """Parallel lanes: merge = SP4K (independent lanes, learned scalar lane_merge at the end), route =
    learned cross-lane routing per block (lane_route), mean of the lanes at the end; top = that routing as the
    2026-04-27 record lays it out (parallel_resid_lambdas L x 2, parallel_post_lambdas L x 2 x 2 for every
    layer) with the skip due at the split added to the attention lane only (after the split)."""
    parallel_skip_quirk: bool = False
    """SP4K quirk: U-Net skips due after the lane split go to the abandoned single stream (no effect);
    off = they are added to the attention lane (as TOP does)."""
    skip_count_physical: bool = False
    """SP4K: skip weights/gates sized from the physical layers (min(L//2, L-L//2)) instead of the
    recurrence-on virtual layer list (TOP: 8 pairs for 17 virtual layers)."""
    if TOP_CODE:  # the 2026-04-27 record's features (golf/__init__.py: older presets do not ship them)
        smear_gate: bool = False
        """SmearGate (TOP): e_t += lam * sigmoid(w . e_t[:gate_window]) * e_(t-1) on the raw token
        embeddings, for t >= 1 and never where token t is BOS (no leak across documents)."""
        sparse_attn_gate: float = 0.0
        """SparseAttnGate (TOP) with this scale s, 0 = off: per head, y_h *= sigmoid(s * w_h . x[:gate_window])
        after XSA, before the output projection (x = the normed attention input; w zero-init; TOP run: 0.5)."""
        gate_window: int = 12
        """Leading residual dims that feed the SmearGate and SparseAttnGate."""
        fused_kernels: bool = False
        """CUDA training only: the LeakyReLU^2 MLP and the soft-capped cross-entropy as fused autograd functions
        (torch.compile'd bodies; they keep only the MLP pre-activation and the per-row log-sum-exp)."""

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    def problems(self) -> dict[str, str]:
        """``{field: why}`` for the first bad value (the later rules assume the earlier ones hold)."""
        for key, why in _model_problems(self):
            return {key: why}
        return {}


def recurrence_enabled(cfg: ModelConfig) -> bool:
    return cfg.recur_start >= 0 and cfg.recur_loops > 0


def layer_schedule(cfg: ModelConfig, recurrence: bool) -> list[int]:
    """Virtual layer list (physical indices in execution order)."""
    n = list(range(cfg.num_layers))
    if not (recurrence and recurrence_enabled(cfg)):
        return n
    loop = n[cfg.recur_start:cfg.recur_end + 1]
    return n[:cfg.recur_end + 1] + loop * cfg.recur_loops + n[cfg.recur_end + 1:]


def lane_start(cfg: ModelConfig, schedule: list[int]) -> int:
    """Virtual position where the parallel lanes split off (len(schedule) = never)."""
    if cfg.parallel_start_layer < 0:
        return len(schedule)
    n_enc = len(schedule) // 2
    for pos in range(n_enc, len(schedule)):
        if schedule[pos] >= cfg.parallel_start_layer:
            return pos
    return len(schedule)


def _model_problems(m: ModelConfig):
    """Yields ``(field, why)`` for bad model values, in order: widths, recurrence and lanes, extras."""
    L = m.num_layers
    if m.vocab_size < 2:
        yield "vocab_size", "need at least 2 tokens"
    if L < 1:
        yield "num_layers", "need at least one layer"
    if m.num_heads < 1 or m.model_dim % m.num_heads:
        yield "num_heads", f"must divide model_dim={m.model_dim}"
    if m.num_kv_heads < 1 or m.num_heads % m.num_kv_heads:
        yield "num_kv_heads", f"must divide num_heads={m.num_heads}"
    if m.rope_dims < 0 or m.rope_dims % 2 or m.rope_dims > m.head_dim:
        yield "rope_dims", f"must be even and between 0 and head_dim={m.head_dim}"
    if int(m.mlp_mult * m.model_dim) < 1:
        yield "mlp_mult", "MLP hidden width must be at least 1"
    if m.recur_start >= 0 and not 0 <= m.recur_start <= m.recur_end < L:
        yield "recur_start", f"need 0 <= recur_start <= recur_end={m.recur_end} < num_layers={L}"
    if m.recur_start >= 0 and m.recur_loops < 0:
        yield "recur_loops", "must be >= 0"
    if not -1 <= m.parallel_start_layer < L:
        yield "parallel_start_layer", f"must be -1 (off) or a layer index below num_layers={L}"
    if m.parallel_mode not in CHOICES["model.parallel_mode"]:
        yield "parallel_mode", "must be 'merge' (SP4K), 'route' or 'top' (the 2026-04-27 record)"
    yield from _lane_problems(m)
    if m.xsa_last_n < 0:
        yield "xsa_last_n", "must be >= 0"
    if TOP_CODE and m.sparse_attn_gate < 0:
        yield "sparse_attn_gate", "must be >= 0 (0 = off)"
    if TOP_CODE and (m.smear_gate or m.sparse_attn_gate) and not 1 <= m.gate_window <= m.model_dim:
        yield "gate_window", f"must be between 1 and model_dim={m.model_dim}"
    if m.ve_enabled and m.ve_dim < 1:
        yield "ve_dim", "must be >= 1"
    if m.ve_enabled and not m.ve_layers:
        yield "ve_layers", "ve_enabled needs at least one layer (e.g. 9,10)"
    if m.ve_enabled and (any(not 0 <= i < L for i in m.ve_layers) or len(set(m.ve_layers)) != len(m.ve_layers)):
        yield "ve_layers", f"must be distinct layer indices below num_layers={L}"


def _lane_problems(m: ModelConfig):
    """No physical layer below the lane split may run after it, with recurrence off or on."""
    for rec in (False, True) if m.parallel_start_layer >= 0 else ():
        sched = layer_schedule(m, rec)
        late = [p for p in sched[lane_start(m, sched):] if p < m.parallel_start_layer]
        if late:
            yield "parallel_start_layer", (f"the recurrence schedule {sched} runs layer {late[0]} after the lane "
                                           "split; choose recur_end below parallel_start_layer")
            return


def check_model(m: ModelConfig) -> None:
    """Raise a :class:`ConfigError` naming the first inconsistent model setting (GPT checks its config)."""
    for key, why in m.problems().items():
        raise ConfigError(f"model.{key}={getattr(m, key)!r}: {why}")


# Iterations of golf.trainer.muon.POLAR_EXPRESS_COEFFS (one (a, b, c) tuple each).
POLAR_EXPRESS_STEPS = 5


@dataclass
class TrainConfig:
    """Optimizer, schedule, batching, run control."""

    data_dir: str = "./data"
    """Data root holding datasets/fineweb10B_spV/ and tokenizers/ (the dataset folder itself also works;
    DATA_PATH / TOKENIZER_PATH override each)."""
    run_dir: str = "./runs/golf"
    """Output run directory (config, logs, checkpoints, final model)."""
    seed: int = 1337
    """Random seed."""
    iterations: int = 20000
    """Training steps."""
    warmup_steps: int = 0
    """Linear LR warm-up steps from 0 (not the official compile priming: see compile_warmup_steps)."""
    warmdown_iters: int = 5000
    """Iteration-based warmdown length, used when warmdown_frac is 0."""
    warmdown_frac: float = 0.0
    """Warmdown as a fraction of training (of the wallclock when capped); > 0 replaces warmdown_iters."""
    min_lr: float = 0.0
    """Floor of the LR multiplier."""
    train_batch_tokens: int = 786432
    """Global batch in tokens per step (split over processes and micro-steps)."""
    train_seq_len: int = 2048
    """Training sequence length."""
    micro_batch_seqs: int = 0
    """Sequences per process per micro-step, 0 = the whole local batch; sets grad accumulation."""
    max_wallclock_seconds: float = 600.0
    """Training-time cap in seconds, 0 = none."""
    gptq_reserve_seconds: float = 0.0
    """Seconds reserved for GPTQ calibration inside the cap."""
    val_loss_every: int = 4000
    """Validate every N steps, 0 = only at the end."""
    val_batch_tokens: int = 524288
    """Validation batch in tokens."""
    val_max_tokens: int = 0
    """Validate on a prefix of N tokens (quick runs), 0 = all."""
    train_log_every: int = 500
    """Log a train line every N steps."""
    train_shards: int = 0
    """Use only the first N train shards, 0 = all."""
    matrix_lr: float = 0.022
    """Muon learning rate of the block matrices."""
    muon_momentum: float = 0.95
    """Muon Nesterov momentum after the warm-up."""
    muon_momentum_warmup_start: float = 0.85
    """Muon momentum at step 0, ramped linearly to muon_momentum."""
    muon_momentum_warmup_steps: int = 500
    """Steps of the Muon momentum ramp."""
    muon_backend_steps: int = 5
    """Newton-Schulz iterations per Muon update (Polar-Express: at most 5, one per coefficient tuple)."""
    muon_wd: float = 0.095
    """Decoupled weight decay of the Muon matrices."""
    muon_row_norm: bool = True
    """MuonEq-R: normalise the rows of each update."""
    tied_embed_lr: float = 0.05
    """AdamW learning rate of the token embedding."""
    embed_wd: float = 0.0
    """AdamW weight decay of the token embedding."""
    scalar_lr: float = 0.04
    """AdamW learning rate of scalars and control tensors."""
    adam_wd: float = 0.0
    """AdamW weight decay of scalars and control tensors."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip_norm: float = 0.3
    """Global gradient-norm clip (0 = off)."""
    ema_decay: float = 0.9965
    """Decay of the EMA of all weights (copied into the model at the end)."""
    ema_start_step: int = 100
    """Step at which the EMA starts."""
    recur_start_frac: float = 0.35
    """Depth recurrence switches on after this fraction of training (of the wallclock when capped);
    <= 0 = from the start. Ignored when the model has no recurrence."""
    recur_start_step: int = 0
    """> 0: switch recurrence on at this step instead (the SP4096 record: 3000)."""
    if TOP_CODE:
        doc_packing: bool = False
        """Document-packed training (TOP): each micro-step is one packed row of micro_batch_seqs x
        train_seq_len tokens starting at a BOS, attention bounded by documents (cut into train_seq_len
        segments): varlen FlashAttention-3 on Hopper, document-masked SDPA elsewhere."""
    dtype: str = "auto"
    """Compute precision: auto = bf16 on Ampere+, fp16 + GradScaler on T4, fp32 on CPU."""
    compile: bool = False
    """torch.compile the model."""
    checkpoint_every: int = 0
    """Checkpoint every N steps, 0 = only at the end."""
    hub_repo: str = ""
    """Push checkpoints to this Hub model repo in the background."""
    hub_every: int = 0
    """Push a checkpoint to the Hub every N steps."""
    keep_checkpoints: int = 2
    """Newest local checkpoints kept in RUN/checkpoints (0 = all)."""
    hub_private: bool = True
    """Create the Hub repo as private."""
    compile_warmup_steps: int = 20
    """With compile: untimed priming steps (both recurrence graphs), after which the state is reset."""
    muon_polar_express: bool = False
    """Newton-Schulz by Polar-Express (one (a, b, c) per iteration, the final record) instead of the
    quintic (one (a, b, c) for every iteration, the SP4096 record)."""
    muon_bf16_momentum: bool = False
    """Keep the Muon momentum buffer, Nesterov update and row normalisation in bf16 (the final record)."""

    def problems(self) -> dict[str, str]:
        """``{field: why}`` for each bad value of this section."""
        bad = {} if self.iterations > 0 else {"iterations": "must be > 0"}
        if TOOLKIT and self.muon_polar_express and not 1 <= self.muon_backend_steps <= POLAR_EXPRESS_STEPS:
            bad["muon_backend_steps"] = f"Polar-Express has {POLAR_EXPRESS_STEPS} coefficient tuples: use 1 to 5"
        return bad


@dataclass
class EvalConfig:
    """Validation scoring (the artifact's final_int6_* lines)."""

    eval_seq_len: int = 2048
    """Evaluation sequence length (the window of the sliding evaluation)."""
    eval_stride: int = 64
    """Sliding-window stride: each window after the first scores its last eval_stride targets."""
    eval_batch_seqs: int = 32
    """Sequences per evaluation batch."""
    sliding_window: bool = True
    """Also score with sliding windows (final_int6_sliding_window)."""
    if TTT_CODE:  # score-first test-time training (golf/eval/ttt.py; shipped only by a config that turns it on)
        ttt_enabled: bool = False
        """Phased score-first test-time training (SPEC 2.5 b-c, golf.eval.ttt): per-document LoRA adapters
        trained on each chunk after it is scored, plus global SGD phases on already-scored documents.
        Not yet used by train_gpt.py, golf train or golf verify."""
        ttt_lora_rank: int = 96
        """TTT LoRA rank r of every adapter (Q, K, V, attention output, MLP-parallel, lm_head)."""
        ttt_lora_alpha: float = 144.0
        """TTT LoRA alpha: adapter outputs are scaled by alpha / rank."""
        ttt_lora_lr: float = 0.0001
        """AdamW learning rate of the TTT adapters."""
        ttt_beta1: float = 0.0
        """AdamW beta1 of the TTT adapters."""
        ttt_beta2: float = 0.999
        """AdamW beta2 of the TTT adapters."""
        ttt_eps: float = 1e-10
        """AdamW epsilon of the TTT adapters."""
        ttt_weight_decay: float = 1.0
        """AdamW (decoupled) weight decay of the TTT adapters."""
        ttt_chunk_size: int = 48
        """Predicted tokens per TTT chunk: each chunk is scored, then (if its document goes on) one step."""
        ttt_eval_seq_len: int = 2048
        """Longest window (tokens of the same document, ending at the chunk end) that predicts a TTT chunk."""
        ttt_batch_size: int = 64
        """Documents per TTT batch (one adapter row each), batches taken longest first."""
        ttt_warm_start_a: bool = True
        """At each batch's adapter reset keep A (zero only B); off = also redraw A ~ U(+-1/sqrt(in))."""
        phased_ttt_prefix_docs: int = 2000
        """Phased TTT: the first N documents in processing order are split into the global SGD phases."""
        phased_ttt_num_phases: int = 1
        """Phased TTT: cumulative phase boundaries over the prefix documents (a global SGD run at each)."""
        global_ttt_lr: float = 0.001
        """Peak learning rate of the global SGD phases (cosine over the chunks)."""
        global_ttt_momentum: float = 0.9
        """Momentum of the global SGD phases."""
        global_ttt_epochs: int = 1
        """Passes over each chunk in a global SGD phase (0 = no global training)."""
        global_ttt_chunk_tokens: int = 32768
        """Tokens per chunk of a global SGD phase (the last chunk is not trained on)."""
        global_ttt_batch_seqs: int = 32
        """Sequences of eval_seq_len tokens per global SGD step (document-bounded attention)."""
        global_ttt_grad_clip: float = 1.0
        """Gradient-norm clip of the global SGD phases (0 = off)."""

    def problems(self) -> dict[str, str]:
        """``{field: why}`` for each bad value of this section."""
        bad = {n: "must be >= 1" for n in ("eval_seq_len", "eval_batch_seqs") if getattr(self, n) < 1}
        if self.sliding_window and not 0 < self.eval_stride <= self.eval_seq_len:
            bad["eval_stride"] = f"must be between 1 and eval_seq_len={self.eval_seq_len}"
        if TTT_CODE:
            bad.update(ttt_problems(self))
        return bad


# TTT settings that must be at least 1, and those that must not be negative (EvalConfig, TTT_CODE).
TTT_POSITIVE = ("ttt_lora_rank", "ttt_chunk_size", "ttt_eval_seq_len", "ttt_batch_size", "phased_ttt_num_phases",
                "global_ttt_chunk_tokens", "global_ttt_batch_seqs")
TTT_NON_NEGATIVE = ("ttt_lora_lr", "ttt_eps", "ttt_weight_decay", "phased_ttt_prefix_docs", "global_ttt_lr",
                    "global_ttt_momentum", "global_ttt_epochs", "global_ttt_grad_clip")


def ttt_problems(e: EvalConfig) -> dict[str, str]:
    """``{field: why}`` of the test-time-training settings."""
    bad = {n: "must be >= 1" for n in TTT_POSITIVE if getattr(e, n) < 1}
    bad.update({n: "must be >= 0" for n in TTT_NON_NEGATIVE if getattr(e, n) < 0})
    bad.update({n: "must be in [0, 1)" for n in ("ttt_beta1", "ttt_beta2") if not 0 <= getattr(e, n) < 1})
    if e.ttt_eval_seq_len < e.ttt_chunk_size:
        bad.setdefault("ttt_eval_seq_len", f"must be >= ttt_chunk_size={e.ttt_chunk_size} (a window holds its chunk)")
    return bad


# golf parameter names of the final record's gates (SPEC §7), by name substring: one table for
# every rule that finds them.  All are control tensors (AdamW scalar group, golf.model.gpt's
# CONTROL_PATTERNS); "int8_row" ones are stored int8 per row with quant.gate_int8 (sizes in
# GATE_INT8_NUMEL, the record's), "fp16" ones as every small float.
GATE_NAME_PATTERNS: dict[str, str] = {"attn_gate": "int8_row", "smear": "fp16"}
GATE_INT8_NUMEL = (32, 8192)

# Quantized weights are stored one per int8 byte in [-R, R], R = 2^(bits-1) - 1: every bit width
# from ternary (2 bits, R = 1) to 8 bits (R = 127).  The one statement of the range.
QUANT_BITS = range(2, 9)


@dataclass
class QuantConfig:
    """``golf build``: GPTQ/SDClip quantization, compression, byte budget."""

    matrix_bits: int = 6
    """Bits per weight of the attention/MLP matrices and other large floats (QUANT_BITS)."""
    embed_bits: int = 8
    """Bits per weight of the token embedding (QUANT_BITS)."""
    matrix_clip_sigmas: float = 12.85
    """SDClip k of the matrices: row scale s = k * std(row) / R."""
    embed_clip_sigmas: float = 20.0
    """SDClip k of the token embedding."""
    method: str = "gptq"
    """gptq (Hessian-aware) or rtn (round to nearest, for comparison)."""
    gptq_block_size: int = 128
    """GPTQ columns per block."""
    gptq_damp: float = 0.01
    """GPTQ damping, as a fraction of mean(diag H)."""
    calibration_batches: int = 16
    """Training-data batches for the GPTQ Hessians (never validation data)."""
    small_tensor_numel: int = 65536
    """Float tensors with at most this many elements are stored fp16."""
    compressor: str = "brotli"
    """Blob compressor: brotli (quality 11; lzma when brotli is not installed), lzma, zlib, or grouped
    (quantized tensors grouped by role, each group rANS- or brotli-coded, whichever is smaller; the rest
    brotli: golf/builder/grouped.py)."""
    byte_shuffle: bool = True
    """Byte-shuffle each tensor before compression."""
    target_bytes: int = LIMIT_BYTES
    """Prune +-1 values until code + blob fit this many bytes."""
    attn_bits: int = 0
    """Bits of the attention matrices, 0 = matrix_bits."""
    mlp_bits: int = 0
    """Bits of the MLP matrices, 0 = matrix_bits."""
    attn_clip_sigmas: float = 0.0
    """SDClip k of the attention matrices, 0 = matrix_clip_sigmas."""
    mlp_clip_sigmas: float = 0.0
    """SDClip k of the MLP matrices, 0 = matrix_clip_sigmas."""
    calibration_batch_tokens: int = 98304
    """Training tokens per calibration batch (48 x 2048)."""
    code_compressor: str = "auto"
    """Compression of train_gpt.py: lzma, brotli, or auto (brotli when the blob is brotli, else lzma)."""
    prune: bool = True
    """Selective +-1 pruning when the artifact is over target_bytes."""
    clip: str = "sdclip"
    """Row scales: sdclip (k * std per row) or search (the SP4096 record's clip search; evaluation-only
    artifact), see docs/parity.md."""
    control_dtype: str = "fp32"
    """Storage of control tensors: fp32, or fp16 as the records (every small float in fp16)."""
    gate_int8: bool = False
    """Store the sparse attention gates (GATE_NAME_PATTERNS "int8_row") int8 per row at row max/127 with
    fp16 scales instead of fp16, as the final record (GATED_ATTN_QUANT_GATE)."""
    lqer_enabled: bool = False
    """LQER (SPEC 5.4): add a low-rank, low-bit correction of the quantization error W - Q*s to the
    lqer_top_k tensors with the largest error (golf/builder/lqer.py)."""
    lqer_rank: int = 4
    """LQER rank r: E ~ A B from the rank-r SVD of the error (A rows x r, B r x cols)."""
    lqer_top_k: int = 3
    """LQER corrects this many tensors: those with the largest measured error ||W - Q*s||_F."""
    lqer_factor_bits: int = 4
    """Bits of LQER's B factor (asymmetric integers in [-2^(b-1), 2^(b-1)-1], one fp16 scale per group)."""
    lqer_a_bits: int = 2
    """Bits of LQER's A factor (asymmetric integers, one fp16 scale for the whole matrix)."""
    lqer_group: int = 64
    """Values of B (flattened) per fp16 scale."""

    def problems(self) -> dict[str, str]:
        """``{field: why}`` for each bad value of this section."""
        lo, hi = QUANT_BITS[0], QUANT_BITS[-1]
        bits = {"matrix_bits": self.matrix_bits, "embed_bits": self.embed_bits,
                "attn_bits": self.attn_bits or lo, "mlp_bits": self.mlp_bits or lo}  # 0 = matrix_bits
        bad = {n: f"bits must be between {lo} and {hi}" for n, b in bits.items() if not lo <= b <= hi}
        for n in ("lqer_factor_bits", "lqer_a_bits"):
            if not 2 <= getattr(self, n) <= 8:
                bad[n] = "bits must be between 2 and 8"
        for n in ("lqer_rank", "lqer_group"):
            if getattr(self, n) < 1:
                bad[n] = "must be at least 1"
        if self.lqer_top_k < 0:
            bad["lqer_top_k"] = "must be 0 or more"
        if self.prune and self.target_bytes <= 0:
            bad["target_bytes"] = "the target must be a positive number of bytes"
        return bad


@dataclass
class GolfConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    preset: str = "seed"

    # -- serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GolfConfig:
        cfg = cls()
        for section in ("model", "train", "eval", "quant"):
            for key, value in (d.get(section) or {}).items():
                set_field(cfg, f"{section}.{key}", value)
        if "preset" in d:
            cfg.preset = str(d["preset"])
        return cfg

    @classmethod
    def from_json(cls, text: str) -> GolfConfig:
        return cls.from_dict(json.loads(text))

    # -- validation (toolkit) --------------------------------------------------
    def check(self, names: dict[str, str] | None = None) -> None:
        """Raise a :class:`ConfigError` for the first bad value: a word outside :data:`CHOICES`, or one
        a section's ``problems`` rejects (the one place each section's rules live; ``GPT`` asks the
        model section through :func:`check_model`).  ``names`` maps a key to how it was given
        (``--iterations``, ``ITERATIONS``, ``--set train.iterations=``), so the message names what the
        user typed."""
        bad = {k: "expected " + " | ".join(c) for k, c in CHOICES.items() if get_field(self, k) not in c}
        for sec in ("model", "train", "eval", "quant"):
            for n, why in getattr(self, sec).problems().items():
                bad.setdefault(f"{sec}.{n}", why)
        for key, why in bad.items():
            raise ConfigError(f"{given(key, get_field(self, key), (names or {}).get(key))}: {why}")


class ConfigError(ValueError, GolfError):
    """A bad configuration value; the message names the offending key."""


def _coerce(value: Any, typ_s: str, key: str) -> Any:
    """``value`` as a ``typ_s`` (bool, int, float, str or tuple of ints)."""
    try:
        if typ_s == "bool":
            if isinstance(value, str):
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ_s == "int":
            if isinstance(value, str):
                return int(float(value)) if "e" in value.lower() else int(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ_s == "float":
            return float(value)
        if typ_s == "str":
            return str(value)
        if typ_s.startswith("tuple"):
            if isinstance(value, str):
                return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
            return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot interpret {value!r} as {typ_s}") from None
    return value


def set_field(cfg: GolfConfig, dotted: str, value: Any, name: str | None = None) -> None:
    """Set ``section.name`` on ``cfg``, coerced by the default's type (a value that does not fit names
    ``name``, how it was given, when there is one); unknown keys raise ConfigError."""
    if TOOLKIT and "." not in dotted:  # --set syntax: toolkit only
        raise ConfigError(f"{dotted}: expected 'section.name' (sections: model, train, eval, quant)")
    section, key = dotted.split(".", 1)
    obj = getattr(cfg, section, None)
    if TOOLKIT and (obj is None or not dataclasses.is_dataclass(obj)):
        raise ConfigError(f"{dotted}: unknown section {section!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if key not in fields:
        raise ConfigError(f"{dotted}: unknown setting (known: {', '.join(sorted(fields))})")
    # typed by the default, not the annotation: train_gpt.py renames the names annotations use
    setattr(obj, key, _coerce(value, type(fields[key].default).__name__,
                              given(dotted, value, name) if TOOLKIT and name else dotted))


def get_field(cfg: GolfConfig, dotted: str) -> Any:
    """The value of ``section.name``."""
    section, name = dotted.split(".", 1)
    return getattr(getattr(cfg, section), name)


def given(key: str, value: Any, name: str | None = None) -> str:
    """How a setting was given, for messages: ``--iterations 0``, ``--set train.iterations=0``,
    ``ITERATIONS=0 (train.iterations)``, or ``train.iterations=0`` when ``name`` is None."""
    if not name:
        return f"{key}={value}"
    if name.endswith("="):
        return f"{name}{value}"
    return f"{name} {value}" if name.startswith("-") else f"{name}={value} ({key})"


def _own_names(section: str, names: str = "", skip: str = "") -> dict[str, str]:
    """``{NAME: "section.name"}`` for ``names`` (default: every field of the section but ``skip``)."""
    cls = {"model": ModelConfig, "train": TrainConfig, "eval": EvalConfig, "quant": QuantConfig}[section]
    keep = names.split() or [f.name for f in dataclasses.fields(cls) if f.name not in skip.split()]
    return {n.upper(): f"{section}.{n}" for n in keep}


# Environment-variable names -> config keys: the official aliases, then the settings whose
# variable is their own name upper-cased (listed later, so they win when both are set): every
# train and model field but those skipped (a new one gets its variable), the eval/quant fields named.
ENV_VARS: dict[str, str] = {
    "VAL_BATCH_SIZE": "train.val_batch_tokens",
    "ENABLE_LOOPING_AT": "train.recur_start_frac",
    "SKIP_GATES_ENABLED": "model.skip_gates",
    "LOOP_START": "model.recur_start",
    "LOOP_END": "model.recur_end",
    "NUM_LOOPS": "model.recur_loops",
    "SKIP_WEIGHTS_ENABLED": "model.skip_weights",
    "SLIDING_WINDOW_ENABLED": "eval.sliding_window",
    "GPTQ_CALIBRATION_BATCHES": "quant.calibration_batches",
    **_own_names("train", skip="run_dir dtype compile"),
    **_own_names("model", skip="skip_weights skip_gates recur_start recur_end recur_loops"),
    **_own_names("eval", "eval_seq_len eval_stride"),
    **_own_names("quant", "matrix_bits embed_bits matrix_clip_sigmas embed_clip_sigmas compressor"),
}
if TTT_CODE:  # the test-time-training settings under the final record's names (TTT_EPS is golf's: it fixes 1e-10)
    ENV_VARS.update(_own_names("eval", skip="eval_seq_len eval_stride eval_batch_seqs sliding_window"))

# Toolkit-only tables (nothing shipped reads them, so train_gpt.py drops them):
# `golf train` options for settings, in --help order; each name is a contract. Every other
# setting is reached with `--set section.name=value` or its environment variable.
TRAIN_FLAGS: dict[str, str] = {
    "train.data_dir": "--data", "train.run_dir": "--run-dir", "train.iterations": "--iterations",
    "train.seed": "--seed", "train.max_wallclock_seconds": "--max-wallclock-seconds",
    "train.gptq_reserve_seconds": "--gptq-reserve-seconds", "train.train_batch_tokens": "--train-batch-tokens",
    "train.train_seq_len": "--train-seq-len", "train.micro_batch_seqs": "--micro-batch-seqs",
    "train.warmup_steps": "--warmup-steps", "train.warmdown_iters": "--warmdown-iters",
    "train.warmdown_frac": "--warmdown-frac", "train.val_loss_every": "--val-loss-every",
    "train.val_max_tokens": "--val-max-tokens", "train.train_log_every": "--train-log-every",
    "train.train_shards": "--train-shards", "train.checkpoint_every": "--checkpoint-every",
    "train.dtype": "--dtype", "train.compile": "--compile", "train.hub_repo": "--hub-repo",
    "train.hub_every": "--hub-every",
}
# The settings that take one of a few words (checked by GolfConfig.check, offered by the CLIs).
CHOICES: dict[str, tuple[str, ...]] = {
    "model.parallel_mode": ("merge", "route", "top"),
    "train.dtype": ("auto", "bf16", "fp16", "fp32"),
    "quant.method": ("gptq", "rtn"),
    "quant.compressor": ("brotli", "lzma", "zlib", "grouped"),
    "quant.code_compressor": ("lzma", "brotli", "auto"),
    "quant.clip": ("sdclip", "search"),
    "quant.control_dtype": ("fp32", "fp16"),
}


def apply_env(cfg: GolfConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment layer: set the variables of :data:`ENV_VARS` that are set and not empty (an
    official alias first, so a setting's own name wins).  Returns ``{key: VAR}`` of those applied,
    the ``names`` for :func:`apply_overrides`: ``golf train`` applies its flags after this and the
    one check then names each bad value as it was given; ``train_gpt.py`` uses this layer alone."""
    env = os.environ if environ is None else environ
    names = {}
    for name, key in ENV_VARS.items():
        if env.get(name, "") != "":
            set_field(cfg, key, env[name], name)
            names[key] = name
    return names


def apply_overrides(cfg: GolfConfig, overrides: dict[str, Any], names: dict[str, str] | None = None) -> None:
    """Set ``{'section.name': value}`` overrides (coerced by each default's type), then check the
    whole config (toolkit): the one path of presets, ``--set``, flags and ``golf build`` options.
    ``names`` maps a key to how it was given (``--iterations``, ``ITERATIONS``, ``--set
    train.iterations=``), so an error names what the user typed (:func:`given`)."""
    names = names or {}
    for key, value in overrides.items():
        set_field(cfg, key, value, names.get(key))
    if TOOLKIT:
        cfg.check(names)


def config_delta(cfg: GolfConfig) -> dict:
    """Only the settings that differ from the dataclass defaults (plus the preset name): what a blob's
    meta and the generated train_gpt.py embed."""
    base, cur = type(cfg)().to_dict(), cfg.to_dict()
    out = {}
    for sec in ("model", "train", "eval", "quant"):
        d = {k: v for k, v in cur[sec].items() if base[sec].get(k) != v}
        if d:
            out[sec] = d
    out["preset"] = cur.get("preset", "seed")
    return out
