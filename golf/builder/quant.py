"""Post-training quantization (SPEC §5.1-§5.3, §5.5): Hessians, GPTQ, SDClip, RTN, routing, pruning.

Kept to torch + numpy + stdlib so the reproduction path of ``train_gpt.py`` can ship it.

Storage kinds produced by :func:`quantize_state` (read back by ``golf.builder.container``):
``q`` = symmetric per-row integers (int8 container, values in [-R, R], R = 2^(bits-1)-1)
with fp16 per-row scales (GPTQ/RTN matrices, and the int8 gates of :func:`gate_int8_rows`);
``h`` = fp16; ``r`` = stored as is (fp32 control tensors, integer tensors).
"""
from __future__ import annotations

import math
import re
import time

import torch
from torch import nn

from golf import FRONTIER_QUANT, LQER_CODE, TOOLKIT
from golf.builder import container
from golf.builder.lqer import apply_lqer
from golf.config import GATE_INT8_NUMEL, GATE_NAME_PATTERNS, QUANT_BITS, config_delta
from golf.data.loader import TrainLoader
from golf.data.shards import list_shards
from golf.errors import GolfError
from golf.fsutil import atomic_write_bytes
from golf.progress import maybe_tqdm

# tensor classes, in report order
CLASSES = ("attn", "mlp", "embed", "other", "gate", "fp16", "control", "int")


class QuantError(ValueError, GolfError):
    pass


# --------------------------------------------------------------------------- scales
def qmax(bits: int) -> int:
    """R = 2^(bits-1) - 1, the largest stored value, for ``bits`` in ``golf.config.QUANT_BITS``."""
    if int(bits) not in QUANT_BITS:
        raise QuantError(f"bits must be in [{QUANT_BITS[0]}, {QUANT_BITS[-1]}] (one value per int8 byte), got {bits}")
    return 2 ** (int(bits) - 1) - 1


def sdclip_scales(w: torch.Tensor, bits: int, k: float) -> torch.Tensor:
    """SDClip per-row scale s = k·std(row)/R (unbiased std, >= 1e-10), rounded to fp16 (returned as fp32)."""
    w = w.float().reshape(w.shape[0], -1)
    std = w.std(dim=1, unbiased=True) if w.shape[1] > 1 else w.abs()[:, 0]
    s = (k * std / qmax(bits)).clamp_min(1e-10)
    s = s.clamp(6e-8, 65504.0).half().float()  # representable, non-zero fp16
    return s


# The SP4096 record's clip search (``--clip search``): per-row clip candidates at these
# quantiles of |w| (1.0 = the row max), scale floor 1/R; embeddings use one quantile.
SEARCH_QUANTILES = (0.9990, 0.9995, 0.9999, 0.99999, 1.0)
EMBED_QUANTILE = 0.9999984


def quantile_scales(w: torch.Tensor, bits: int, quantile: float) -> torch.Tensor:
    """Per-row scale = (``quantile`` of |row|, the max at 1.0) / R, floored at 1/R, rounded to fp16."""
    R = qmax(bits)
    a = w.float().reshape(w.shape[0], -1).abs()
    c = a.amax(dim=1) if quantile >= 1.0 else torch.quantile(a, quantile, dim=1)
    return (c / R).clamp_min(1.0 / R).half().float()


def quantize_rtn(w: torch.Tensor, s: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-to-nearest with per-row scales -> int8 values in [-R, R]."""
    R = qmax(bits)
    w2 = w.float().reshape(w.shape[0], -1)
    return torch.clamp(torch.round(w2 / s[:, None]), -R, R).to(torch.int8).reshape(w.shape)


def gptq(w: torch.Tensor, H: torch.Tensor, s: torch.Tensor, bits: int, block_size: int = 128,
         damp: float = 0.01, act_order: bool = True) -> torch.Tensor:
    """GPTQ (SPEC §5.2) of ``w`` (rows = out, cols = in) with input Hessian ``H`` and fixed row scales ``s``.

    Raises ``torch.linalg.LinAlgError`` (a RuntimeError) when the damped Hessian is not positive definite.
    """
    R = qmax(bits)
    W = w.detach().float().clone()
    rows, cols = W.shape
    H = H.detach().float().clone()
    if TOOLKIT and H.shape != (cols, cols):  # caller checks: toolkit only
        raise QuantError(f"Hessian shape {tuple(H.shape)} does not match weight columns {cols}")
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H.diagonal().add_(damp * torch.mean(torch.diag(H)))
    perm = torch.argsort(torch.diag(H), descending=True, stable=True) if act_order else torch.arange(cols)
    W, H = W[:, perm], H[perm][:, perm]
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    s = s.float()
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        for j in range(i2 - i1):
            col = W1[:, j]
            q = torch.clamp(torch.round(col / s), -R, R)
            Q[:, i1 + j] = q
            err = (col - q * s) / Hinv1[j, j]
            W1[:, j:] -= err[:, None] * Hinv1[j, j:][None, :]
            Err1[:, j] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    inv = torch.argsort(perm)
    return Q[:, inv].to(torch.int8)


def dequant(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return q.float() * s.float().view(-1, *([1] * (q.dim() - 1)))


def quantize_rows(w: torch.Tensor, s: torch.Tensor, bits: int, H: torch.Tensor | None, qcfg) -> tuple:
    """GPTQ with Hessian ``H`` (None: round-to-nearest) at row scales ``s``; returns (q, method used).

    A Hessian that is not positive definite after damping falls back to round-to-nearest."""
    if H is None:
        return quantize_rtn(w, s, bits), "rtn"
    try:
        return gptq(w, H, s, bits, qcfg.gptq_block_size, qcfg.gptq_damp), "gptq"
    except torch.linalg.LinAlgError:  # Cholesky failed
        return quantize_rtn(w, s, bits), "rtn (cholesky failed)"


def search_quantize(w: torch.Tensor, bits: int, H: torch.Tensor | None, qcfg) -> tuple:
    """The record's clip search: quantize at every :data:`SEARCH_QUANTILES` clip and keep the
    lowest weight MSE.  Returns (q, s, method used)."""
    best = None
    for quantile in SEARCH_QUANTILES:
        s = quantile_scales(w, bits, quantile)
        q, used = quantize_rows(w, s, bits, H, qcfg)
        err = float(((w - dequant(q, s)) ** 2).mean())
        if best is None or err < best[0]:
            best = (err, q, s, used)
    return best[1], best[2], best[3] + " search"


def quantile_rtn(w: torch.Tensor, bits: int, quantile: float = EMBED_QUANTILE) -> tuple:
    """The record's embedding quantizer: clip each row at a quantile of |row|, round to nearest."""
    R = qmax(bits)
    a = w.abs()
    c = torch.quantile(a, quantile, dim=1)[:, None] if w.shape[1] > 1 else a
    s = (c[:, 0] / R).clamp_min(1.0 / R).half().float()
    q = torch.clamp(torch.round(torch.minimum(torch.maximum(w, -c), c) / s[:, None]), -R, R)
    return q.to(torch.int8), s


def gate_int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The final record's gate storage: int8 per row, scale = row max|w|/127 (>= 1e-10) in fp16,
    values rounded at the stored fp16 scale.  Returns (q int8, s as fp32)."""
    s = (w.float().reshape(w.shape[0], -1).abs().amax(1).clamp_min(1e-10) / 127).half().float()
    return quantize_rtn(w, s, 8), s


def is_int8_gate(name: str, t: torch.Tensor, qcfg) -> bool:
    """A tensor stored by :func:`gate_int8_rows`: ``quant.gate_int8`` on, a GATE_NAME_PATTERNS
    "int8_row" name, a float matrix of GATE_INT8_NUMEL size (the record's bounds)."""
    lo, hi = GATE_INT8_NUMEL
    return (qcfg.gate_int8 and t.is_floating_point() and t.dim() == 2 and lo <= t.numel() <= hi
            and any(p in name for p, r in GATE_NAME_PATTERNS.items() if r == "int8_row"))


def hessian_error(w: torch.Tensor, wq: torch.Tensor, H: torch.Tensor) -> float:
    """tr((W - Wq) H (W - Wq)^T): the layer-output error the Hessian measures."""
    E = (w.float() - wq.float()).double()
    return float(torch.einsum("ij,jk,ik->", E, H.double(), E))


# --------------------------------------------------------------------------- Hessians
class HessianCollector:
    """Forward pre-hooks accumulating H = Σ xᵀx over every call (recurrent layers count once per pass)."""

    def __init__(self, modules: dict[str, nn.Module], output_modules: dict[str, nn.Module] | None = None):
        self.H: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self.handles = []
        for key, mod in modules.items():
            self.handles.append(mod.register_forward_pre_hook(self._pre(key)))
        for key, mod in (output_modules or {}).items():
            self.handles.append(mod.register_forward_hook(self._post(key)))

    def _add(self, key: str, x: torch.Tensor) -> None:
        x = x.detach().float().reshape(-1, x.shape[-1])
        h = x.t() @ x
        if key in self.H:
            self.H[key] += h
        else:
            self.H[key] = h
        self.calls[key] = self.calls.get(key, 0) + 1

    def _pre(self, key):
        def hook(_mod, args):
            self._add(key, args[0])
        return hook

    def _post(self, key):
        def hook(_mod, _args, out):
            self._add(key, out)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def linear_weights(model: nn.Module) -> dict[str, nn.Module]:
    """``{weight name: module}`` for every nn.Linear (incl. subclasses) of the model."""
    return {f"{n}.weight" if n else "weight": m for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def embedding_weights(model: nn.Module) -> list[str]:
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Embedding)]


def head_input_module(model: nn.Module) -> nn.Module | None:
    """The module whose output feeds a tied output head (golf's GPT: ``final_norm``), if any."""
    return getattr(model, "final_norm", None)


@torch.no_grad()
def collect_hessians(model: nn.Module, batches, names: list[str], device="cpu",
                     autocast_dtype=None) -> dict[str, torch.Tensor]:
    """Hessians (mean over calibration tokens of Σ_passes xᵀx) of each weight's own input:
    a Linear weight in ``names`` gets its input's, the tied embedding (the output head) the head
    input's (final-norm output).  Other embeddings are lookups without one (no entry).

    ``batches`` yields (inputs, targets) int64 arrays/tensors of TRAINING data (a progress bar over them
    is the caller's: :func:`quantize_model` knows their number).
    """
    lin = linear_weights(model)
    mods = {n: lin[n] for n in names if n in lin}
    # the tied embedding (golf's GPT: tok_emb with no lm_head) is the output head
    head = "tok_emb.weight" if getattr(model, "lm_head", 0) is None and hasattr(model, "tok_emb") else None
    head_in = head_input_module(model)
    outs = {head: head_in} if head in names and head_in is not None else {}
    col = HessianCollector(mods, outs)
    was_training = model.training
    model.eval()
    n_tok = 0
    try:
        for x, y in batches:
            x = torch.as_tensor(x, device=device).long()
            y = torch.as_tensor(y, device=device).long()
            if autocast_dtype is not None:
                with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype):
                    model(x, y)
            else:
                model(x, y)
            n_tok += x.numel()
    finally:
        col.remove()
        model.train(was_training)
    if n_tok == 0:
        raise QuantError("calibration produced no batches")
    return {k: (v / n_tok).cpu() for k, v in col.H.items()}


# --------------------------------------------------------------------------- routing
def classify(name: str, t: torch.Tensor, qcfg, control_patterns, embed_names, linear_names,
             exact_names=()) -> str:
    """Tensor class: gate | control | int | fp16 | embed | attn | mlp | other.

    Gates (:func:`is_int8_gate`) are stored int8 per row.  Control tensors (names containing a
    ``control_patterns`` entry) and ``exact_names`` (e.g. registered buffers) are stored exactly
    (fp32 / as is; control tensors fp16 with ``quant.control_dtype`` fp16)."""
    if FRONTIER_QUANT and is_int8_gate(name, t, qcfg):  # FRONTIER_QUANT: a build flag (golf/__init__.py)
        return "gate"
    if any(p in name for p in control_patterns) or name in exact_names:
        return "control"
    if not torch.is_floating_point(t):
        return "int"
    if t.numel() <= qcfg.small_tensor_numel or t.dim() < 2:
        return "fp16"
    if name in embed_names:
        return "embed"
    if name in linear_names:
        return "attn" if ".attn." in name else "mlp" if ".mlp." in name else "other"
    return "other"


def class_bits(cls: str, qcfg) -> tuple[int, float]:
    """(bits, clip sigmas k) for a quantized class."""
    if cls in ("attn", "mlp"):
        return (getattr(qcfg, cls + "_bits") or qcfg.matrix_bits,
                getattr(qcfg, cls + "_clip_sigmas") or qcfg.matrix_clip_sigmas)
    if cls == "embed":
        return qcfg.embed_bits, qcfg.embed_clip_sigmas
    if cls == "other":
        return qcfg.matrix_bits, qcfg.matrix_clip_sigmas
    if TOOLKIT:
        raise QuantError(f"class {cls} is not quantized")


def _order_key(name: str) -> tuple:
    """Group like matrices of different layers together (all c_q, then all c_k, ...)."""
    nums = [int(x) for x in re.findall(r"\.(\d+)\.", name)]
    return (re.sub(r"\.\d+\.", ".#.", name), nums)


def search_tensor(w: torch.Tensor, cls: str, H: torch.Tensor | None, qcfg) -> tuple:
    """``--clip search`` (the SP4096 record's quantizer) for one float matrix -> (q, s, bits, method used):
    clip search for matrices, one quantile clip and plain rounding for embeddings."""
    bits = class_bits(cls, qcfg)[0]
    if cls == "embed":
        return (*quantile_rtn(w, bits), bits, "rtn quantile")
    q, s, used = search_quantize(w, bits, H, qcfg)
    return q, s, bits, used


def quantize_state(state: dict, qcfg, control_patterns=(), embed_names=(), linear_names=(),
                   hessians: dict | None = None, method: str = "gptq", exact_names=(), progress: bool = False):
    """Route and quantize a float state dict.

    Returns ``(arrays, qmeta, info)``: ``arrays`` (ordered for compression) and ``qmeta``
    (``{name: [kind, dtype]}``) go into the container; ``info[name]`` holds class, bits,
    method used, params and (for quantized tensors) the Hessian-weighted and plain errors.
    Control tensors are stored fp32, or fp16 with ``qcfg.control_dtype == "fp16"`` (the records);
    gates of :func:`is_int8_gate` int8 per row.
    """
    hessians = hessians or {}
    embed_names, linear_names, exact_names = set(embed_names), set(linear_names), set(exact_names)
    if method not in ("gptq", "rtn"):
        raise QuantError(f"unknown method {method!r} (gptq | rtn)")
    if TOOLKIT:  # a caller that set qcfg by hand (apply_overrides checks the words too)
        from golf.config import CHOICES
        if qcfg.clip not in CHOICES["quant.clip"]:
            raise QuantError(f"unknown clip {qcfg.clip!r} ({' | '.join(CHOICES['quant.clip'])})")
    qmeta, info, qs, scales, rest = {}, {}, {}, {}, {}
    it = maybe_tqdm(list(state.items()), progress, desc="quantize", unit="tensor") if TOOLKIT else state.items()
    for name, t in it:
        t = t.detach().cpu()
        dt = str(t.dtype).replace("torch.", "")
        cls = classify(name, t, qcfg, control_patterns, embed_names, linear_names, exact_names)
        rec = {"class": cls, "params": t.numel(), "shape": list(t.shape), "dtype": dt}
        if cls in ("control", "int", "fp16"):
            fp16 = cls == "fp16"
            if (FRONTIER_QUANT and qcfg.control_dtype == "fp16" and cls == "control" and torch.is_floating_point(t)
                    and name not in exact_names):
                fp16 = True  # the records' fp16 passthrough; buffers stay exact
            rest[name] = t.half() if fp16 else t.float() if torch.is_floating_point(t) else t
            qmeta[name] = ["h" if fp16 else "r", dt]
            rec.update(bits=rest[name].element_size() * 8, method={"control": "fp32", "int": "raw"}.get(cls, cls))
            if TOOLKIT and fp16:
                rec["method"] = "fp16"
        elif FRONTIER_QUANT and cls == "gate":
            q, s = gate_int8_rows(t)
            qs[name + ".q"], scales[name + ".s"], qmeta[name] = q, s.half(), ["q", dt]
            rec.update(bits=8, method="int8 row max")
        else:
            w = t.float().reshape(t.shape[0], -1)
            H = hessians.get(name)
            if TOOLKIT and H is not None and tuple(H.shape) != (w.shape[1], w.shape[1]):
                raise QuantError(f"{name}: Hessian of shape {tuple(H.shape)} does not match its {w.shape[1]} "
                                 "input columns")
            if TOOLKIT and qcfg.clip == "search":  # toolkit-only: search artifacts ship no training path
                q, s, bits, used = search_tensor(w, cls, H if method == "gptq" else None, qcfg)
            else:
                bits, k = class_bits(cls, qcfg)
                s = sdclip_scales(w, bits, k)
                q, used = quantize_rows(w, s, bits, H if method == "gptq" else None, qcfg)
            rec.update(bits=bits, method=used)
            if TOOLKIT and qcfg.clip == "sdclip":
                rec["clip_sigmas"] = k
            if TOOLKIT:  # error measures for the build report
                wq = dequant(q, s)
                rec["mse"] = float(((w - wq) ** 2).mean())
                if H is not None:
                    rec["hessian_error"] = hessian_error(w, wq, H)
            qs[name + ".q"] = q.reshape(t.shape)
            scales[name + ".s"] = s.half()
            qmeta[name] = ["q", dt]
        info[name] = rec
    arrays = {}
    for group in (qs, scales, rest):
        for n in sorted(group, key=_order_key):
            arrays[n] = group[n]
    return arrays, qmeta, info


# --------------------------------------------------------------------------- pruning
def prune_candidates(arrays: dict, qmeta: dict, info: dict, hessians: dict | None = None,
                     classes=("attn", "mlp", "other")):
    """All ±1 entries of quantized matrices in ``classes``, sorted by Hessian-weighted cost s_row²·H_jj."""
    hessians = hessians or {}
    names, flat_idx, costs = [], [], []
    for ti, (name, (kind, _)) in enumerate(sorted(qmeta.items())):
        if not (kind == "q" or LQER_CODE and kind == "ql") or info[name]["class"] not in classes:
            continue
        q = arrays[name + ".q"].reshape(arrays[name + ".q"].shape[0], -1)
        s = arrays[name + ".s"].float()
        idx = torch.nonzero(q.abs() == 1, as_tuple=False)
        if idx.numel() == 0:
            continue
        c = s[idx[:, 0]] ** 2
        H = hessians.get(name)
        if H is not None:
            c = c * torch.diag(H).float()[idx[:, 1]]
        names.append(name)
        flat_idx.append(idx[:, 0] * q.shape[1] + idx[:, 1])
        costs.append(c)
    if not names:
        return [], torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    tensor_id = torch.cat([torch.full((len(f),), i, dtype=torch.long) for i, f in enumerate(flat_idx)])
    flat = torch.cat(flat_idx)
    cost = torch.cat(costs)
    order = torch.argsort(cost, stable=True)
    return names, tensor_id[order], flat[order], cost[order]


def apply_pruning(arrays: dict, candidates, n: int) -> dict:
    """A copy of ``arrays`` with the ``n`` cheapest ±1 candidates set to 0."""
    names, tid, flat, _ = candidates
    out = dict(arrays)
    n = min(int(n), len(flat))
    if n <= 0:
        return out
    tid, flat = tid[:n], flat[:n]
    for i, name in enumerate(names):
        sel = flat[tid == i]
        if sel.numel() == 0:
            continue
        q = arrays[name + ".q"].clone()
        q.view(-1)[sel] = 0
        out[name + ".q"] = q
    return out


def prune_to_target(arrays: dict, candidates, measure, target: int, max_iters: int = 10, progress=None):
    """Zero the cheapest ±1 values until ``measure(arrays) <= target`` (real compressed size).

    Starts from SPEC §5.5's estimate (8 values per excess byte), then re-measures and grows
    the count from the observed bytes saved per pruned value.  Returns
    ``(arrays, pruned_count, size, history)``; ``size > target`` means the candidates ran out.
    """
    size0 = measure(arrays)
    history = [(0, size0)]
    if size0 <= target:
        return arrays, 0, size0, history
    total = len(candidates[1])
    n = min(total, 8 * (size0 - target))
    size = size0
    pruned = arrays
    for _ in range(max_iters):
        pruned = apply_pruning(arrays, candidates, n)
        size = measure(pruned)
        history.append((n, size))
        if progress:
            progress(n, size)
        if size <= target or n >= total:
            break
        saved_per = max((size0 - size) / n, 1e-3)
        n = min(total, n + math.ceil((size - target) / saved_per * 1.1) + 16)
    return pruned, n, size, history


# --------------------------------------------------------------------------- whole-model pipeline
def blob_meta(cfg, qmeta: dict, recurrence: bool) -> dict:
    return {"q": qmeta, "config": config_delta(cfg), "recurrence_active": bool(recurrence)}


def calibration_batches(cfg, dataset_dir):
    """Fresh sequential loader over the TRAINING shards (never validation), SPEC §5.1."""
    files = list_shards(dataset_dir, "train")
    if not files:
        raise QuantError(f"{dataset_dir}: no training shards (fineweb_train_*.bin) for GPTQ calibration")
    L = cfg.train.train_seq_len
    seqs = max(1, cfg.quant.calibration_batch_tokens // L)
    loader = TrainLoader(files, L, vocab_size=cfg.model.vocab_size)
    for _ in range(cfg.quant.calibration_batches):
        (x, y), = loader.next_batch(seqs)
        yield x, y


def quantize_model(model: nn.Module, cfg, dataset_dir, control_patterns, device="cpu", autocast_dtype=None,
                   progress: bool = False):
    """Calibrate on training data and quantize ``model``'s state dict per ``cfg.quant``.

    Returns ``(arrays, qmeta, info, hessians)``.
    """
    q = cfg.quant
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    lin, emb = set(linear_weights(model)), set(embedding_weights(model))
    exact = {n for n, _ in model.named_buffers()}
    classes = {n: classify(n, t, q, control_patterns, emb, lin, exact) for n, t in state.items()}
    want = [n for n, c in classes.items() if c in ("attn", "mlp", "other", "embed")]
    hessians = {}
    if want and (q.method == "gptq" or q.prune):
        batches = calibration_batches(cfg, dataset_dir)
        if TOOLKIT:  # a generator has no length: the bar's total is the configured number of batches
            batches = maybe_tqdm(batches, progress, total=q.calibration_batches, desc="calibration", unit="batch")
        hessians = collect_hessians(model, batches, want, device, autocast_dtype)
    arrays, qmeta, info = quantize_state(state, q, control_patterns, emb, lin, hessians, q.method, exact, progress)
    if LQER_CODE and q.lqer_enabled:
        apply_lqer(state, arrays, qmeta, info, q)
    return arrays, qmeta, info, hessians


def pack_to_target(arrays: dict, qmeta: dict, info: dict, hessians: dict, meta: dict, qcfg, code_bytes: int,
                   log=None):
    """Serialize; when code + blob exceed ``qcfg.target_bytes`` (and pruning is on), prune ±1 values
    until it fits.  Returns ``(blob bytes, final arrays, pruning info)``."""
    last = {}

    def measure(arrs):
        last["arrays"], last["blob"] = arrs, container.pack(arrs, meta, qcfg.compressor, qcfg.byte_shuffle)
        return len(last["blob"]) + code_bytes

    info_p = {"target_bytes": qcfg.target_bytes, "pruned": 0, "candidates": 0, "history": []}
    if not qcfg.prune:
        measure(arrays)
        return last["blob"], arrays, info_p
    cands = prune_candidates(arrays, qmeta, info, hessians)
    info_p["candidates"] = len(cands[1])
    report = (lambda n, s: log(f"pruned {n:,} +-1 values -> total {s:,} bytes")) if log else None
    out, n, _, hist = prune_to_target(arrays, cands, measure, qcfg.target_bytes, progress=report)
    info_p.update(pruned=int(n), history=[list(h) for h in hist])
    if last.get("arrays") is not out:
        measure(out)
    return last["blob"], out, info_p


def build_artifact_blob(model: nn.Module, cfg, recurrence: bool, dataset_dir, path, code_bytes: int,
                        control_patterns=(), device="cpu", autocast_dtype=None, log=print) -> dict:
    """Quantize + pack (+ prune) ``model`` and write the blob to ``path`` (temp + rename)."""
    t0 = time.perf_counter()
    arrays, qmeta, info, hessians = quantize_model(model, cfg, dataset_dir, control_patterns, device,
                                                   autocast_dtype)
    blob, _, prune_info = pack_to_target(arrays, qmeta, info, hessians, blob_meta(cfg, qmeta, recurrence),
                                         cfg.quant, code_bytes, log)
    atomic_write_bytes(path, blob)
    log(f"quantized+serialized in {time.perf_counter() - t0:.1f}s: {len(blob)} bytes")
    return {"blob_bytes": len(blob), "pruning": prune_info, "tensors": info}
