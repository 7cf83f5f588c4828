"""Decoys mixed into the golf-eval/1 stream, and the two protocol runs (windows, score-first).

Every decoy looks like the real items around it; the seed comes from ``os.urandom`` and is
written into the report after the run.  Extra forward tokens stay within ``budget`` (a
fraction of the real forward tokens; minimums apply on tiny streams and the report shows
the measured fraction).

windows mode
  - the real windows, shuffled across requests;
  - *repeats*: a real window again, in another request (answers must be identical: no state);
  - *causality*: a real window whose inputs from a random cut on are a splice of real text
    from elsewhere, queries kept (answers before the cut must not change);
  - *vocabulary sweeps*: at one random scored position ``j`` of a real window, copies whose
    query at ``j`` takes other vocabulary values ``v`` (prefix of the window up to ``j``;
    the real window is the member with the true token): sum over v of exp(-NLL) must be 1
    (over the whole vocabulary when the budget allows, else <= 1 over the covered part);
  - *fresh replay*: a sample of the run's real windows sent again to a second, fresh process
    in another order and batch composition (answers must match: catches state across windows).
score-first mode
  - inside a chunk's requests, before its answers are accepted: causality decoys (spliced
    tails, queries kept) and sweep members (the ``v`` = true member must equal the real item);
  - *fresh replay*: a second, fresh process gets the committed history up to a random chunk k
    (each real chunk alone, then its commit), then only causality decoys of chunk k, each in its
    own request: their answers up to the cut must match the main run's answers for chunk k.
    The decoys inside the main run share the process (and the causal ones the request) with the
    real chunk, so a client that reads other rows or remembers continuations passes them; in
    the replay the real continuation of chunk k is nowhere to be read or remembered.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from golf.verifier.scoring.streaming import Client, Plan, Scores

# share of the real forward tokens per decoy kind (total 0.095 <= the 10 % budget)
SHARES = {"repeat": 0.005, "causal": 0.015, "replay": 0.01, "sweep": 0.065}
MIN_MEMBERS = 256  # floor of a partial sweep (covers most of the probability mass, see _members)
MAX_SWEEPS = 16
SF_REPLAY_DECOYS = 4  # causality decoys of the replayed chunk (score-first fresh replay)


def new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little")


@dataclass
class Tolerances:
    same: float    # max |NLL difference| for answers that must be identical (repeat, replay, causality)
    sweep: float   # |log sum_v exp(-NLL)|
    lse: float     # max |log-sum-exp| the artifact reports


TOLERANCES = {"cpu": Tolerances(1e-4, 1e-3, 1e-3), "cuda": Tolerances(5e-2, 2e-2, 2e-2)}


@dataclass
class DecoyReport:
    """What the decoys measured; turned into checks by the orchestrator."""

    seed: int
    mode: str
    real_tokens: int = 0
    extra_tokens: dict = field(default_factory=dict)
    repeat_max: float = 0.0
    repeats: int = 0
    causal_max: float = 0.0
    causal: int = 0
    sweeps: list = field(default_factory=list)   # per sweep: {"members", "vocab", "full", "log_sum"}
    replay_max: float | None = None
    replay_items: int = 0
    lse_max: float = 0.0

    def extra_fraction(self) -> float:
        return sum(self.extra_tokens.values()) / self.real_tokens if self.real_tokens else 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["extra_fraction"] = self.extra_fraction()
        return d


def _log_sum(nlls) -> float:
    v = -np.asarray(nlls, dtype=np.float64)
    m = float(v.max())
    return m + math.log(float(np.exp(v - m).sum()))


def _members(rng, order: np.ndarray, true: int, m: int) -> np.ndarray:
    """``m`` sweep values besides ``true``: all others when ``m`` covers them, else 3/4 the most frequent
    tokens of the stream (where most of any sensible model's probability lies) and 1/4 random others."""
    others = order[order != true]
    if m >= len(others):
        return others
    top = others[:3 * m // 4]
    rest = rng.choice(others[3 * m // 4:], size=m - len(top), replace=False)
    return np.concatenate([top, rest])


def frequency_order(stream: np.ndarray, vocab: int) -> np.ndarray:
    return np.argsort(-np.bincount(stream, minlength=vocab)[:vocab], kind="stable")


def _sweep_shape(budget_tokens: float, member_cost: float, vocab: int) -> tuple[int, int]:
    """(number of sweeps, members per sweep besides the true token)."""
    per = vocab - 1
    total = budget_tokens / max(member_cost, 1.0)
    if total >= per:
        return min(int(total // per), MAX_SWEEPS), per
    k = min(4, max(1, int(total // MIN_MEMBERS)))  # the member floor counts against the budget
    return k, max(MIN_MEMBERS, min(per, int(total // k)))


# ----------------------------------------------------------------------------- windows mode


class WindowsRun:
    """Items, requests and checks for one windows-mode run over ``plan``."""

    def __init__(self, stream: np.ndarray, plan: Plan, vocab: int, batch: int, seed: int, budget: float = 0.10):
        self.stream, self.plan, self.vocab, self.batch = stream, plan, vocab, max(1, batch)
        self.rng = np.random.default_rng(seed)
        self.order = frequency_order(stream, vocab)
        self.report = DecoyReport(seed=seed, mode="windows", real_tokens=plan.forward_tokens())
        self.items = [("real", w, 0, 0) for w in range(len(plan))]
        self._add_decoys(budget / 0.1)
        self.watch = {it[1] for it in self.items if it[0] != "real"}
        n_rep = max(2, int(SHARES["replay"] * budget / 0.1 * self.report.real_tokens / max(1, plan.length.max())))
        self.replay = sorted(set(self.rng.choice(len(plan), size=min(n_rep, len(plan)), replace=False).tolist()))
        self.watch |= set(self.replay)
        self.kept: dict[int, np.ndarray] = {}
        self.answers: list = []   # (item, nll) of every decoy

    def _add_decoys(self, scale: float) -> None:
        p, rng, real = self.plan, self.rng, self.report.real_tokens
        L = int(p.length.max())
        n = lambda share, floor: max(floor, int(share * scale * real / L))  # noqa: E731
        for w in rng.integers(0, len(p), size=n(SHARES["repeat"], 1)):
            self.items.append(("repeat", int(w), 0, 0))
        cand = np.flatnonzero(p.length - p.first >= 2)
        for w in rng.choice(cand, size=n(SHARES["causal"], 2)) if len(cand) else []:
            cut = int(rng.integers(p.first[w] + 1, p.length[w]))
            off = int(rng.integers(0, max(1, len(self.stream) - (p.length[w] - cut))))
            self.items.append(("causal", int(w), cut, off))
        k, m = _sweep_shape(SHARES["sweep"] * scale * real, L, self.vocab)
        for _ in range(k):
            w = int(rng.integers(0, len(p)))
            j = int(rng.integers(p.first[w], p.length[w]))
            vs = _members(rng, self.order, int(self.stream[p.start[w] + j + 1]), m)
            self.items += [("sweep", w, j, int(v)) for v in vs]

    def materialize(self, item) -> tuple[np.ndarray, np.ndarray, int]:
        kind, w, a, b = item
        p, s = self.plan, int(self.plan.start[item[1]])
        n = int(p.length[w])
        if kind == "sweep":
            x = self.stream[s:s + a + 1]
            q = self.stream[s + 1:s + a + 2].copy()
            q[a] = b
            return x, q, a
        x = self.stream[s:s + n]
        if kind == "causal":
            x = x.copy()
            x[a:] = self.stream[b:b + n - a]
        return x, self.stream[s + 1:s + n + 1], int(p.first[w])

    def requests(self, items, batch: int) -> list[list]:
        """Items grouped by length, shuffled, cut into requests; decoys moved out of their window's request."""
        by_len: dict[int, list] = {}
        for it in items:
            n = it[2] + 1 if it[0] == "sweep" else int(self.plan.length[it[1]])
            by_len.setdefault(n, []).append(it)
        reqs = []
        for group in by_len.values():
            order = self.rng.permutation(len(group))
            group = [group[i] for i in order]
            cut = [group[i:i + batch] for i in range(0, len(group), batch)]
            self._separate(cut)
            reqs += cut
        order = self.rng.permutation(len(reqs))
        return [reqs[i] for i in order]

    def _separate(self, reqs: list[list]) -> None:
        if len(reqs) < 2:
            return
        for r, req in enumerate(reqs):
            reals = {it[1] for it in req if it[0] == "real"}
            for i, it in enumerate(req):
                if it[0] in ("repeat", "causal") and it[1] in reals:
                    o = int(self.rng.integers(0, len(reqs) - 1))
                    o += o >= r
                    k = int(self.rng.integers(0, len(reqs[o])))
                    req[i], reqs[o][k] = reqs[o][k], req[i]

    def run(self, client: Client, scores: Scores, progress=None) -> None:
        reqs = self.requests(self.items, self.batch)
        for i, req in enumerate(reqs):
            for it, nll in zip(req, self._ask(client, req)):
                if it[0] == "real":
                    scores.put(it[1], nll)
                    if it[1] in self.watch:
                        self.kept[it[1]] = nll
                else:
                    self.answers.append((it, nll))
            if progress:
                progress(i + 1, len(reqs))
        self.report.lse_max = client.lse_max

    def _ask(self, client: Client, req) -> list[np.ndarray]:
        xs, qs, fs = zip(*(self.materialize(it) for it in req))
        return client.ask("score", np.stack(xs), np.stack(qs), np.array(fs))

    def run_replay(self, client: Client) -> None:
        """Send the sampled real windows to a fresh process in a new order and batch composition."""
        items = [("real", w, 0, 0) for w in self.replay]
        batch = max(1, min(self.batch - 1, len(items) // 2) or 1)
        diffs = []
        for req in self.requests(items, batch):
            for it, nll in zip(req, self._ask(client, req)):
                diffs.append(float(np.max(np.abs(nll - self.kept[it[1]]))) if len(nll) else 0.0)
        self.report.replay_max = max(diffs) if diffs else 0.0
        self.report.replay_items = len(items)

    def finish(self) -> DecoyReport:
        r, p = self.report, self.plan
        sweeps: dict[tuple[int, int], list] = {}
        extra = {"repeat": 0, "causal": 0, "sweep": 0}
        for it, nll in self.answers:
            kind, w, a, b = it
            real = self.kept[w]
            f = int(p.first[w])
            if kind == "repeat":
                r.repeat_max = max(r.repeat_max, float(np.max(np.abs(nll - real))) if len(nll) else 0.0)
                r.repeats += 1
                extra["repeat"] += int(p.length[w])
            elif kind == "causal":
                k = a - f
                r.causal_max = max(r.causal_max, float(np.max(np.abs(nll[:k] - real[:k]))) if k else 0.0)
                r.causal += 1
                extra["causal"] += int(p.length[w])
            else:
                sweeps.setdefault((w, a), [float(real[a - f])]).append(float(nll[0]))
                extra["sweep"] += a + 1
        extra["replay"] = int(sum(p.length[w] for w in self.replay)) if r.replay_max is not None else 0
        r.sweeps = [{"members": len(v), "vocab": self.vocab, "full": len(v) == self.vocab, "log_sum": _log_sum(v)}
                    for v in sweeps.values()]
        r.extra_tokens = extra
        return r


# ----------------------------------------------------------------------------- score-first mode


def run_score_first(client: Client, stream: np.ndarray, chunk: int, vocab: int, seed: int,
                    budget: float = 0.10, progress=None) -> tuple[np.ndarray, DecoyReport]:
    """Stream the validation set chunk by chunk; returns (NLL of targets 1..N-1 in order, report)."""
    rng = np.random.default_rng(seed)
    T = len(stream) - 1
    K = -(-T // chunk)
    rep = DecoyReport(seed=seed, mode="score-first", real_tokens=T)
    extra = {"causal": 0, "sweep": 0}
    n_causal = max(2, int(SHARES["causal"] * 2 * budget / 0.1 * K))
    causal_at = rng.integers(0, K, size=n_causal)
    n_sw, members = _sweep_shape(SHARES["sweep"] * 1.5 * budget / 0.1 * T, chunk / 2, vocab)
    sweep_at = rng.integers(0, K, size=n_sw)
    order = frequency_order(stream, vocab)
    out = np.empty(T, dtype=np.float32)
    client.start("score-first", chunk, chunk, history=stream[:1])
    for k in range(K):
        real = stream[1 + k * chunk:1 + min((k + 1) * chunk, T)]
        n = len(real)
        items = [("real", real, real, 0)]
        for _ in range(int((causal_at == k).sum()) if n > 1 else 0):
            c = int(rng.integers(1, n))  # inputs from c on are spliced: positions 0..c must not change
            items.append(("causal", _spliced(rng, stream, real, c), real, c + 1))
        for _ in range(int((sweep_at == k).sum())):
            j = int(rng.integers(0, n))
            vs = _members(rng, order, int(real[j]), members)
            for v in [int(real[j]), *vs.tolist()]:
                q = real[:j + 1].copy()
                q[j] = v
                items.append(("sweep", real[:j + 1], q, (j, v == int(real[j]))))
        answers = _ask_grouped(client, items, rng)
        got = answers[0]
        out[k * chunk:k * chunk + n] = got
        sweep_vals: dict[int, list] = {}
        for (kind, x, q, a), nll in zip(items[1:], answers[1:]):
            if kind == "causal":
                rep.causal_max = max(rep.causal_max, float(np.max(np.abs(nll[:a] - got[:a]))))
                rep.causal += 1
                extra["causal"] += len(x)
            else:
                j, is_true = a
                if is_true:  # the prefix copy must answer like the real item
                    rep.causal_max = max(rep.causal_max, float(np.max(np.abs(nll - got[:j + 1]))))
                sweep_vals.setdefault(j, []).append(float(nll[j]))
                extra["sweep"] += len(x)
        rep.sweeps += [{"members": len(v), "vocab": vocab, "full": len(v) == vocab, "log_sum": _log_sum(v)}
                       for v in sweep_vals.values()]
        client.commit(real)
        if progress:
            progress(k + 1, K)
    rep.extra_tokens = extra
    rep.lse_max = client.lse_max
    return out, rep


def _spliced(rng, stream: np.ndarray, real: np.ndarray, c: int) -> np.ndarray:
    """A score-first causality decoy: ``real`` with its tokens from ``c`` on replaced by real text
    from a random place in the stream (queries stay ``real``)."""
    off = int(rng.integers(0, len(stream) - (len(real) - c)))
    x = real.copy()
    x[c:] = stream[off:off + len(real) - c]
    return x


def _ask_grouped(client: Client, items: list, rng) -> list[np.ndarray]:
    """One ``chunk`` request per item length, in random order and row order; answers in item order."""
    by_len: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        by_len.setdefault(len(it[1]), []).append(i)
    answers: list = [None] * len(items)
    for n in rng.permutation(sorted(by_len)).tolist():
        idx = [by_len[n][i] for i in rng.permutation(len(by_len[n]))]
        got = client.ask("chunk", np.stack([items[i][1] for i in idx]), np.stack([items[i][2] for i in idx]), None)
        for i, a in zip(idx, got):
            answers[i] = a
    return answers


def replay_score_first(client: Client, stream: np.ndarray, chunk: int, main_nll: np.ndarray, seed: int,
                       rep: DecoyReport) -> None:
    """The score-first fresh replay (module docstring): fills ``rep.replay_max`` / ``replay_items``.
    Costs a random share of one pass (the history up to chunk k), on average half."""
    rng = np.random.default_rng(seed ^ 0x5F5F)
    T = len(stream) - 1
    K = -(-T // chunk)
    k = int(rng.integers(0, K))
    client.start("score-first", chunk, chunk, history=stream[:1])
    worst, items = 0.0, 0
    for i in range(k):  # the committed history: must answer as in the main run, too
        real = stream[1 + i * chunk:1 + min((i + 1) * chunk, T)]
        got = client.ask("chunk", real[None], real[None], None)[0]
        worst = max(worst, float(np.max(np.abs(got - main_nll[i * chunk:i * chunk + len(real)]))))
        client.commit(real)
        items += 1
    real = stream[1 + k * chunk:1 + min((k + 1) * chunk, T)]
    want = main_nll[k * chunk:k * chunk + len(real)]
    for c in sorted(rng.integers(1, len(real), size=SF_REPLAY_DECOYS).tolist()) if len(real) > 1 else []:
        got = client.ask("chunk", _spliced(rng, stream, real, c)[None], real[None], None)[0]
        worst = max(worst, float(np.max(np.abs(got[:c + 1] - want[:c + 1]))))
        items += 1
    rep.replay_max, rep.replay_items = worst, items
    rep.lse_max = max(rep.lse_max, client.lse_max)
