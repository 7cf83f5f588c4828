"""The verifier side of golf-eval/2: window plans, the request loop, coverage and scores.

Coverage is the verifier's: all N-1 targets of the validation stream are scored (no
truncation, nothing the artifact says changes the target set).  The **window plan** is the
sliding evaluation of SPEC §2.4 without the truncation: windows of ``L`` every ``s`` tokens,
the first scoring all its positions, every later one its last ``s`` (a tail window shorter
than ``L`` ends at the stream's end).  The plain (non-overlapping, ragged last) windows are
added to the plan: where ``L`` is a multiple of ``s`` every plain window is already a
sliding window and is just asked for all its positions, so plain costs no extra forward.

Audits (:mod:`golf.verifier.scoring.audits`) run afterwards in a fresh process; this module only
moves rows through the pipe and checks the shape and sanity of every answer.
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


def sliding_starts(plan: Plan) -> np.ndarray:
    """For every target ``t``: the start of the window whose answer is the sliding score at ``t``
    (the exact context the main run used, which an audit of ``t`` sends again)."""
    out = np.empty(plan.targets, dtype=np.int64)
    for s, n, sf in zip(plan.start, plan.length, plan.slide_first):
        if sf >= 0:
            out[s + sf:s + n] = s
    return out


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
            raise P.Malformed(f"the artifact answered hello with an error: {str(h.get('message'))[:300]}")
        if h.get("type") != "hello" or h.get("protocol") != P.PROTOCOL:
            raise P.Malformed(f"expected hello {P.PROTOCOL}, got {str(h)[:300]}")
        return h

    def start(self, mode: str, seq_len: int, stride: int, history=None) -> None:
        h = {"type": "start", "mode": mode, "eval_seq_len": seq_len, "eval_stride": stride}
        if history is not None:
            h["history"] = [int(t) for t in history]
        P.send(self.wfd, h, deadline=self._deadline())

    def _answer(self, header: dict, arrays, want: str, count: int) -> np.ndarray:
        rid = self.next_id
        self.next_id += 1
        P.send(self.wfd, dict(header, id=rid), arrays, self._deadline())
        h, payload = P.receive(self.rfd, self._deadline(), max_payload=4 * count)
        if h["type"] == "error":
            raise P.ProtocolError(f"the artifact reported an error: {str(h.get('message'))[:300]}")
        if h["type"] != want or h.get("id") != rid:
            raise P.ProtocolError(f"expected {want} for request {rid}, got {str(h)[:200]}")
        (out,) = P.split(payload, [("f4", count)])
        if not np.all(np.isfinite(out)):
            raise P.ProtocolError(f"request {rid}: non-finite values")
        return out.astype(np.float32)

    def _nll(self, nll: np.ndarray, rid: int) -> np.ndarray:
        if len(nll) and float(nll.min()) < -NEG_NLL_TOL:
            raise P.ProtocolError(f"request {rid}: negative NLL {float(nll.min()):.3g}")
        self.answers += len(nll)
        return nll

    def score(self, rows: np.ndarray, first: np.ndarray) -> list[np.ndarray]:
        """windows: rows (n,T) of inputs; per row the NLLs of ``rows[i, j+1]`` for ``j`` in ``[first_i, T-1)``."""
        n, T = rows.shape
        first = np.asarray(first, dtype=np.int64)
        counts = T - 1 - first
        nll = self._answer({"type": "score", "n": n, "T": T}, [rows.astype("<i4"), first.astype("<i4")], "scores",
                           int(counts.sum()))
        return np.split(self._nll(nll, self.next_id - 1), np.cumsum(counts)[:-1])

    def chunk(self, tokens: np.ndarray) -> np.ndarray:
        """score-first: the NLL of every token of the chunk, each predicted before it (history + the chunk's earlier
        tokens)."""
        nll = self._answer({"type": "chunk", "C": len(tokens)}, [np.asarray(tokens, "<i4")], "scores", len(tokens))
        return self._nll(nll, self.next_id - 1)

    def logp(self, rows: np.ndarray) -> np.ndarray:
        """The full log-probability vector of the next token after each row's last input: (n, V)."""
        n, T = rows.shape
        out = self._answer({"type": "logp", "n": n, "T": T}, [rows.astype("<i4")], "logp", n * self.vocab)
        return out.reshape(n, self.vocab)

    def commit(self) -> None:
        P.send(self.wfd, {"type": "commit", "id": self.next_id}, deadline=self._deadline())

    def bye(self) -> None:
        try:
            P.send(self.wfd, {"type": "bye"}, deadline=self._deadline())
        except P.ProtocolError:
            pass


# ----------------------------------------------------------------------------- the main runs


def run_score_first(client: Client, stream: np.ndarray, chunk: int, progress=None) -> np.ndarray:
    """The main score-first run: every chunk in order (answers, then ``commit``); NLL of targets 1..N-1."""
    T = len(stream) - 1
    K = -(-T // chunk)
    out = np.empty(T, dtype=np.float32)
    client.start("score-first", chunk, chunk, history=stream[:1])
    for k in range(K):
        real = stream[1 + k * chunk:1 + min((k + 1) * chunk, T)]
        out[k * chunk:k * chunk + len(real)] = client.chunk(real)
        client.commit()
        if progress:
            progress(k + 1, K)
    return out


def run_windows(client: Client, stream: np.ndarray, plan: Plan, scores, batch: int, rng, progress=None) -> None:
    """The main windows run: every window of the plan once, grouped by length, in random order."""
    by_len: dict[int, list[int]] = {}
    for w in range(len(plan)):
        by_len.setdefault(int(plan.length[w]), []).append(w)
    reqs = []
    for ws in by_len.values():
        ws = [ws[i] for i in rng.permutation(len(ws))]
        reqs += [ws[i:i + batch] for i in range(0, len(ws), batch)]
    for i in rng.permutation(len(reqs)).tolist():
        ws = reqs[i]
        rows = np.stack([stream[plan.start[w]:plan.start[w] + plan.length[w] + 1] for w in ws])
        for w, nll in zip(ws, client.score(rows, plan.first[ws])):
            scores.put(w, nll)
        if progress:
            progress(len(scores.answered.nonzero()[0]), len(plan))
