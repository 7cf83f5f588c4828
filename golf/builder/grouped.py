"""The ``grouped`` blob compressor: quantized tensors grouped by role, each group entropy-coded alone.

Shipped inside ``train_gpt.py`` (numpy + stdlib; ``brotli`` lazily, through the container).
It works on the container's uncompressed payload (uint32 index length, JSON index, data region),
so the container's CRC-32, index checks and unpacking are the same as for every other compressor:

1. the int8 arrays of the index are routed to groups (:func:`array_group`): the values ``X.q`` of a
   quantized tensor by its role in :data:`TENSOR_ROLES` (the one table of name patterns, which LQER
   reads too), its LQER factors to the ``lqer`` group; a group's tensors are concatenated in index
   order, each optionally row-permuted (``permute``: a greedy L1 nearest-neighbour chain, stored as
   uint16) and written column-major (``transpose``);
2. each group is coded by the smallest of :data:`PACK_CODERS` (measured at pack
   time): ``rans`` = interleaved rANS over an order-0 model of the group's symbols (64-bit states,
   32-bit words, 2^16 frequency total), or ``brotli`` (quality 11); ``rans`` decodes in vectorised
   numpy (one step per ``lanes`` symbols);
3. the payload with the grouped tensors cut out (index, scales, control tensors) is brotli-11.

Stream layout after the container header: uint32 count, count x uint32 lengths, the streams; stream 0
is the brotli remainder, then one per group, in the order of its first array in the index.  A group stream is
1 byte coder id, 1 byte flags (bit 0 permuted, bit 1 transposed), then the permutations (uint16 per
row of each permuted tensor) and the coded symbols.
"""
from __future__ import annotations

import json
import re
import struct

import numpy as np

from golf.errors import GolfError

# The one table of tensor roles, read by this packer and by LQER (golf/builder/lqer.py): the weight name
# pattern (regex, searched; the first row that matches wins) -> (group, permute rows, transpose, LQER
# candidate).  A new tensor name joins a group by adding or widening a pattern here; no code change.
TENSOR_ROLES = (
    (r"(^|\.)tok_emb\.weight$", "embed", False, True, True),
    (r"\.attn\.c_q\.weight$", "attn.c_q", False, True, True),
    (r"\.attn\.c_k\.weight$", "attn.c_k", False, True, True),
    (r"\.attn\.c_v\.weight$", "attn.c_v", False, True, True),
    (r"\.attn\.proj\.weight$", "attn.proj", False, True, True),
    (r"\.mlp\.fc\.weight$", "mlp.fc", False, True, True),
    (r"\.mlp\.proj\.weight$", "mlp.proj", False, True, True),
    (r".", "other", False, True, True),
)
# int8 arrays of a quantized tensor -> their group: the values (".q") go to the tensor's role group, the
# LQER factors to one "lqer" group (row order kept, not transposed); other arrays stay in the remainder
ARRAY_GROUPS = {".q": None, ".lqa": "lqer", ".lqb": "lqer"}
PACK_CODERS = ("rans", "brotli")
PACK_STREAMS = struct.Struct("<I")
SCALE_BITS = 16
RANS_L = 1 << 32  # lane state in [L, 2^64): 64-bit states, 32-bit words
# symbols per lane (decode steps per group) the lane count aims at; more lanes = fewer numpy steps,
# 8 state bytes each
LANE_STEPS = 16384
MAX_LANES = 2048
# brotli-11 is tried on a group only when brotli-5 is within this factor of rANS: on GPTQ int6 groups
# brotli-5 is ~16 % above rANS and brotli-11 1-2 % above; on a CPU-trained int8 embedding brotli-5 came
# to 1.02x and brotli-11 to 0.95x rANS (benchmarks/bench_pack.py)
PROBE_MARGIN = 1.08
# the decoder refuses a payload larger than this (a hostile index cannot make it allocate more)
MAX_GROUPED_PAYLOAD = 1 << 31


class GroupedError(GolfError):
    """A grouped stream is malformed (the container reports it as a ContainerError)."""


def tensor_role(name: str) -> tuple:
    """The :data:`TENSOR_ROLES` row of weight ``name`` (the first pattern it matches)."""
    return next(row for row in TENSOR_ROLES if re.search(row[0], name))


def array_group(name: str) -> tuple | None:
    """(group, permute, transpose) of an int8 array ``name`` (``X.q``, ``X.lqa`` ...), None = remainder."""
    base, dot, suffix = name.rpartition(".")
    if not dot or "." + suffix not in ARRAY_GROUPS:
        return None
    group = ARRAY_GROUPS["." + suffix]
    if group is not None:
        return group, False, False
    row = tensor_role(base)
    return row[1], row[2], row[3]


def _group_plan(index: list) -> list:
    """``[(group, permute, transpose, [(offset, nbytes, (rows, cols)), ...]), ...]`` over the int8 arrays
    of the index, groups in first-seen order, tensors in index order."""
    groups = {}
    for name, dt, shape, off, nb in index:
        g = array_group(name) if dt == "int8" and nb and len(shape) >= 1 else None
        if g is not None:
            rows = int(shape[0])
            groups.setdefault(g, []).append((int(off), int(nb), (rows, int(nb) // max(1, rows))))
    return [(*g, t) for g, t in groups.items()]


def _payload_index(payload: bytes) -> tuple[list, int]:
    (n,) = PACK_STREAMS.unpack_from(payload)
    return json.loads(payload[4:4 + n].decode("utf-8"))["t"], 4 + n


# --------------------------------------------------------------------------- row order
def l1_chain(m: np.ndarray) -> np.ndarray:
    """Greedy L1 nearest-neighbour chain of the rows of ``m`` from row 0 (uint16 order)."""
    n = m.shape[0]
    a = m.astype(np.int16)
    left = np.ones(n, bool)
    order = np.empty(n, np.int64)
    cur = 0
    for i in range(n):
        order[i] = cur
        left[cur] = False
        if i + 1 < n:
            idx = np.flatnonzero(left)
            cur = idx[np.abs(a[idx] - a[cur]).sum(1).argmin()]
    return order.astype(np.uint16)


# --------------------------------------------------------------------------- rANS
def _rans_freqs(sym: np.ndarray) -> np.ndarray:
    """Counts of the 256 byte values scaled to sum 2^SCALE_BITS, every present value >= 1."""
    cnt = np.bincount(sym, minlength=256).astype(np.float64)
    M = 1 << SCALE_BITS
    f = np.where(cnt > 0, np.maximum(1, np.floor(cnt * M / cnt.sum())), 0).astype(np.int64)
    while f.sum() != M:  # move the rounding error onto the largest entries
        d = M - int(f.sum())
        big = np.argsort(-f, kind="stable")[:max(1, min(abs(d), int((f > 1).sum())))]
        step = 1 if d > 0 else -1
        f[big] += np.where(f[big] + step >= 1, step, 0)
    return f


def _rans_lanes(n: int) -> int:
    return int(min(MAX_LANES, max(1, -(-n // LANE_STEPS))))


def rans_encode(sym: np.ndarray) -> bytes:
    """Order-0 interleaved rANS of bytes (int8 values viewed as uint8): uint32 n, uint16 lanes, the
    frequency table of the values present (offset by 128), lane states (uint64), 32-bit words."""
    sym = np.ascontiguousarray(sym, np.uint8).reshape(-1) ^ np.uint8(0x80)  # int8 values: a compact table
    n = sym.size
    K = _rans_lanes(n)
    f = _rans_freqs(sym)
    c = np.concatenate([[0], np.cumsum(f)[:-1]])
    T = -(-n // K)
    pad = np.full(T * K, int(np.argmax(f)), np.uint8)
    pad[:n] = sym
    grid = pad.reshape(T, K)
    x = np.full(K, RANS_L, np.uint64)
    words = []
    f64, c64 = f.astype(np.uint64), c.astype(np.uint64)
    for t in range(T - 1, -1, -1):
        s = grid[t]
        fs = f64[s]
        m = x >= (fs << np.uint64(64 - SCALE_BITS))
        words.append((x[m] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        x[m] >>= np.uint64(32)
        x = (x // fs << np.uint64(SCALE_BITS)) + x % fs + c64[s]
    lo, hi = int(np.flatnonzero(f)[0]), int(np.flatnonzero(f)[-1])
    head = struct.pack("<IHBB", n, K, lo, hi) + f[lo:hi + 1].astype("<u2").tobytes()
    # a value owning the whole 2^16 total is stored as 0 (uint16): it is the only symbol
    return head + x.astype("<u8").tobytes() + np.concatenate(words[::-1]).astype("<u4").tobytes()


def rans_decode(data: bytes, limit: int | None = None) -> np.ndarray:
    """Inverse of :func:`rans_encode`; raises :class:`GroupedError` on a malformed stream.  A hostile
    stream cannot make it loop or allocate beyond the encoder's own shape: the lane count must be the
    one :func:`rans_encode` picks for its length (so at most max(LANE_STEPS, n/MAX_LANES) steps), and
    the length at most ``limit`` (the bytes the index says the group holds)."""
    try:
        n, K, lo, hi = struct.unpack_from("<IHBB", data)
        p = 8
        f = np.zeros(256, np.int64)
        f[lo:hi + 1] = np.frombuffer(data, "<u2", hi - lo + 1, p)
        p += 2 * (hi - lo + 1)
        if hi == lo and f[lo] == 0:
            f[lo] = 1 << SCALE_BITS
        x = np.frombuffer(data, "<u8", K, p).astype(np.uint64)
        words = np.frombuffer(data, "<u4", (len(data) - p - 8 * K) // 4, p + 8 * K).astype(np.uint64)
    except (struct.error, ValueError) as e:
        raise GroupedError(f"truncated rANS stream ({e})") from None
    if f.sum() != 1 << SCALE_BITS or K != _rans_lanes(n) or n > (MAX_GROUPED_PAYLOAD if limit is None else limit):
        raise GroupedError("bad rANS header (frequency table, lane count or length)")
    c = np.concatenate([[0], np.cumsum(f)[:-1]])
    slot_sym = np.repeat(np.arange(256, dtype=np.uint8), f)
    f64, c64 = f.astype(np.uint64), c.astype(np.uint64)
    T = -(-n // K)
    out = np.empty((T, K), np.uint8)
    mask16, pos = np.uint64(0xFFFF), 0
    for t in range(T):
        slot = x & mask16
        s = slot_sym[slot]
        out[t] = s
        x = f64[s] * (x >> np.uint64(SCALE_BITS)) + slot - c64[s]
        m = x < RANS_L
        k = int(m.sum())
        if k:
            if pos + k > words.size:
                raise GroupedError("rANS stream ends early")
            x[m] = (x[m] << np.uint64(32)) | words[pos:pos + k]
            pos += k
    if pos != words.size or not np.all(x == RANS_L):
        raise GroupedError("rANS stream does not decode to its end state")
    return out.reshape(-1)[:n] ^ np.uint8(0x80)


# --------------------------------------------------------------------------- groups


def _group_bytes(payload: bytes, base: int, tensors: list, permute: bool, transpose: bool) -> tuple[bytes, bytes]:
    """(permutations, symbol bytes) of one group in stream order."""
    perms, parts = [], []
    for off, nb, (rows, cols) in tensors:
        m = np.frombuffer(payload, np.uint8, nb, base + off).reshape(rows, cols)
        if permute and rows > 1:
            order = l1_chain(m.view(np.int8))
            perms.append(order.astype("<u2").tobytes())
            m = m[order]
        parts.append(np.ascontiguousarray(m.T if transpose else m).tobytes())
    return b"".join(perms), b"".join(parts)


def _best_coder(raw: bytes, pack_rest, probe, coders) -> tuple[str, bytes]:
    """(coder, coded bytes): the smaller of rANS and brotli-11; brotli-11 (slow) only runs when the fast
    ``probe`` (brotli at a low quality) comes within :data:`PROBE_MARGIN` of the rANS size."""
    out = {}
    if "rans" in coders:
        out["rans"] = rans_encode(np.frombuffer(raw, np.uint8))
    if "brotli" in coders and (probe is None or not out or len(probe(raw)) <= PROBE_MARGIN * len(out["rans"])):
        out["brotli"] = pack_rest(raw)
    best = min(out, key=lambda c: len(out[c]))
    return best, out[best]


def grouped_encode(payload: bytes, pack_rest, probe=None, coders=None) -> bytes:
    """Container payload -> grouped streams (see the module docstring); ``pack_rest`` compresses the
    remainder and a brotli group (the container's brotli-11), ``probe`` is a fast brotli that decides
    whether brotli-11 is worth trying on a group (None: always try).  ``coders`` (benchmarks) restricts
    the coders tried (default :data:`PACK_CODERS`, the smallest wins per group)."""
    index, base = _payload_index(payload)
    keep = np.ones(len(payload), bool)
    streams = []
    for _, permute, transpose, tensors in _group_plan(index):
        perm, raw = _group_bytes(payload, base, tensors, permute, transpose)
        coder, coded = _best_coder(raw, pack_rest, probe, coders or PACK_CODERS)
        flags = (1 if permute else 0) | (2 if transpose else 0)
        streams.append(bytes([PACK_CODERS.index(coder), flags]) + perm + coded)
        for off, nb, _ in tensors:
            keep[base + off:base + off + nb] = False
    streams.insert(0, pack_rest(np.frombuffer(payload, np.uint8)[keep].tobytes()))
    return PACK_STREAMS.pack(len(streams)) + b"".join(PACK_STREAMS.pack(len(s)) for s in streams) + b"".join(streams)


def _group_streams(data: bytes) -> list:
    (n,) = PACK_STREAMS.unpack_from(data)
    lens = struct.unpack_from(f"<{n}I", data, 4)
    out, p = [], 4 + 4 * n
    for ln in lens:
        out.append(data[p:p + ln])
        p += ln
    if p != len(data):
        raise GroupedError(f"stream lengths add up to {p} bytes, the data holds {len(data)}")
    return out


def grouped_decode(data: bytes, unpack_rest) -> bytes:
    """Grouped streams -> the container payload, bit-exact; raises :class:`GroupedError` when malformed."""
    try:
        streams = _group_streams(data)
        rest = unpack_rest(streams[0])
        index, base = _payload_index(rest)
    except GroupedError:
        raise
    except Exception as e:
        raise GroupedError(f"unreadable grouped remainder ({e})") from None
    plan = [g[3] for g in _group_plan(index)]
    if len(plan) != len(streams) - 1:
        raise GroupedError(f"{len(streams) - 1} group streams for {len(plan)} groups in the index")
    size = len(rest) + sum(nb for tensors in plan for _, nb, _ in tensors)
    if size > MAX_GROUPED_PAYLOAD:
        raise GroupedError(f"the index describes {size:,} bytes, more than any blob holds")
    out = np.zeros(size, np.uint8)
    keep = np.ones(size, bool)
    for tensors, s in zip(plan, streams[1:]):
        if len(s) < 2 or s[0] >= len(PACK_CODERS):
            raise GroupedError("bad group stream header")
        permute, transpose = bool(s[1] & 1), bool(s[1] & 2)
        n_perm = sum(rows for _, _, (rows, _) in tensors if rows > 1) * 2 if permute else 0
        perm = np.frombuffer(s, "<u2", n_perm // 2, 2)
        body = s[2 + n_perm:]
        want = sum(nb for _, nb, _ in tensors)
        raw = rans_decode(body, want) if s[0] == 0 else np.frombuffer(unpack_rest(body), np.uint8)
        if raw.size != want:
            raise GroupedError(f"a group decodes to {raw.size} bytes, its tensors hold {want}")
        p = q = 0
        for off, nb, (rows, cols) in tensors:
            m = raw[p:p + nb].reshape((cols, rows) if transpose else (rows, cols))
            m = m.T if transpose else m
            p += nb
            if permute and rows > 1:
                order = perm[q:q + rows].astype(np.int64)
                q += rows
                back = np.empty_like(m)
                back[order] = m
                m = back
            if base + off + nb > size:
                raise GroupedError("a grouped tensor lies outside the payload")
            out[base + off:base + off + nb] = m.reshape(-1)
            keep[base + off:base + off + nb] = False
    if int(keep.sum()) != len(rest):
        raise GroupedError("grouped tensors overlap")
    out[keep] = np.frombuffer(rest, np.uint8)
    return out.tobytes()
