"""The verifier side of golf-eval/1: window plans, the request loop, coverage and scores.

Coverage is the verifier's: all N-1 targets of the validation stream are scored (no
truncation, nothing the artifact says changes the target set).  The **window plan** is the
sliding evaluation of SPEC §2.4 without the truncation: windows of ``L`` every ``s`` tokens,
the first scoring all its positions, every later one its last ``s`` (a tail window shorter
than ``L`` ends at the stream's end).  The plain (non-overlapping, ragged last) windows are
added to the plan: where ``L`` is a multiple of ``s`` every plain window is already a
sliding window and is just asked for all its positions, so plain costs no extra forward.

Decoys (:mod:`golf.verifier.scoring.decoys`) are mixed into the same requests; this module only
moves items through the pipe and checks the shape and sanity of every answer.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from golf.verifier.scoring import protocol as P

NEG_NLL_TOL = 1e-4  # an NLL below -NEG_NLL_TOL is a protocol failure


@dataclass
class Plan:
    """Windows over the targets of a stream: target ``t`` is token ``t+1``, input token ``t``."""

    start: np.ndarray        # int64 first input token of each window
    length: np.ndarray       # int64 inputs in the window (L, or fewer at the end of the stream)
    first: np.ndarray        # int64 first position asked of the artifact
    slide_first: np.ndarray  # int64 first position counted in the sliding score, -1: not a sliding window
    plain: np.ndarray        # bool: a plain window (all its positions count in the plain score)
    targets: int

    def __len__(self) -> int:
        return len(self.start)

    def forward_tokens(self) -> int:
        return int(self.length.sum())


def window_plan(n_targets: int, seq_len: int, stride: int) -> Plan:
    if not 0 < stride <= seq_len:
        raise ValueError(f"eval stride must be in [1, eval_seq_len={seq_len}], got {stride}")
    if n_targets < 1:
        raise ValueError("the validation stream holds no target")
    T, L, ctx = n_targets, seq_len, seq_len - stride
    slide = np.arange(0, max(T - ctx, 1), stride, dtype=np.int64)
    plain = np.arange(0, T, L, dtype=np.int64)
    start = np.union1d(slide, plain)
    is_slide = np.isin(start, slide)
    slide_first = np.where(is_slide, np.where(start == 0, 0, ctx), -1)
    is_plain = np.isin(start, plain)
    length = np.minimum(L, T - start)
    first = np.where(is_plain, 0, slide_first)
    return Plan(start, length, first.astype(np.int64), slide_first.astype(np.int64), is_plain, T)


class Scores:
    """Per-target NLLs of the real windows, filled as answers arrive, in any order."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.sliding = np.full(plan.targets, np.nan, dtype=np.float32)
        self.plain = np.full(plan.targets, np.nan, dtype=np.float32)
        self.answered = np.zeros(len(plan), dtype=bool)

    def put(self, w: int, nll: np.ndarray) -> None:
        p = self.plan
        s, f, n = int(p.start[w]), int(p.first[w]), int(p.length[w])
        if p.slide_first[w] >= 0:
            sf = int(p.slide_first[w])
            self.sliding[s + sf:s + n] = nll[sf - f:]
        if p.plain[w]:
            self.plain[s:s + n] = nll
        self.answered[w] = True

    def missing(self) -> int:
        return int(len(self.answered) - self.answered.sum())


def stream_bytes(luts, tokens: np.ndarray) -> int:
    from golf.metric import byte_count
    return byte_count(luts, tokens, 0, len(tokens) - 1)


def bpb(nll: np.ndarray, nbytes: int) -> dict:
    s = float(np.sum(nll, dtype=np.float64))
    n = len(nll)
    from golf.metric import bits_per_byte
    return {"val_loss": s / n if n else math.nan, "val_bpb": bits_per_byte(s, nbytes),
            "tokens": n, "bytes": int(nbytes), "nll_sum": s}


# ----------------------------------------------------------------------------- the pipe


class Client:
    """The verifier's end of the two pipes to one artifact process."""

    def __init__(self, rfd: int, wfd: int, timeout_s: float, vocab_size: int):
        self.rfd, self.wfd, self.timeout_s, self.vocab = rfd, wfd, timeout_s, vocab_size
        self.next_id = 0
        self.lse_max = 0.0
        self.answers = 0
        for fd in (rfd, wfd):
            os.set_blocking(fd, False)

    def _deadline(self):
        import time
        return time.monotonic() + self.timeout_s

    def hello(self, modes) -> dict:
        P.send(self.wfd, {"type": "hello", "protocol": P.PROTOCOL, "modes": list(modes),
                          "vocab_size": self.vocab}, deadline=self._deadline())
        h, _ = P.receive(self.rfd, self._deadline(), max_payload=0)
        if h.get("type") == "error":
            raise P.ProtocolError(f"the artifact answered hello with an error: {str(h.get('message'))[:300]}")
        if h.get("type") != "hello" or h.get("protocol") != P.PROTOCOL:
            raise P.ProtocolError(f"expected hello {P.PROTOCOL}, got {str(h)[:300]}")
        return h

    def start(self, mode: str, seq_len: int, stride: int, history=None) -> None:
        h = {"type": "start", "mode": mode, "eval_seq_len": seq_len, "eval_stride": stride}
        if history is not None:
            h["history"] = [int(t) for t in history]
        P.send(self.wfd, h, deadline=self._deadline())

    def ask(self, kind: str, inputs: np.ndarray, queries: np.ndarray, first: np.ndarray | None) -> list[np.ndarray]:
        """Send one ``score`` (windows) or ``chunk`` (score-first) request; per-item NLL arrays back."""
        n, T = inputs.shape
        first = np.zeros(n, dtype=np.int64) if first is None else np.asarray(first, dtype=np.int64)
        counts = T - first
        total = int(counts.sum())
        rid = self.next_id
        self.next_id += 1
        arrays = [inputs.astype("<i4"), queries.astype("<i4")] + ([first.astype("<i4")] if kind == "score" else [])
        P.send(self.wfd, {"type": kind, "id": rid, "n": n, "T": T}, arrays, self._deadline())
        h, payload = P.receive(self.rfd, self._deadline(), max_payload=8 * total)
        if h["type"] == "error":
            raise P.ProtocolError(f"the artifact reported an error: {str(h.get('message'))[:300]}")
        if h["type"] != "scores" or h.get("id") != rid:
            raise P.ProtocolError(f"expected scores for request {rid}, got {str(h)[:200]}")
        nll, lse = P.split(payload, [("f4", total), ("f4", total)])
        if not (np.all(np.isfinite(nll)) and np.all(np.isfinite(lse))):
            raise P.ProtocolError(f"request {rid}: non-finite NLL or log-sum-exp values")
        if total and float(nll.min()) < -NEG_NLL_TOL:
            raise P.ProtocolError(f"request {rid}: negative NLL {float(nll.min()):.3g}")
        if total:
            self.lse_max = max(self.lse_max, float(np.abs(lse).max()))
        self.answers += total
        return np.split(nll.astype(np.float32), np.cumsum(counts)[:-1])

    def commit(self, tokens: np.ndarray) -> None:
        P.send(self.wfd, {"type": "commit", "id": self.next_id, "C": len(tokens)}, [np.asarray(tokens, "<i4")],
               self._deadline())

    def bye(self) -> None:
        try:
            P.send(self.wfd, {"type": "bye"}, deadline=self._deadline())
        except P.ProtocolError:
            pass
