"""Blind audits of golf-eval/2 answers, in a fresh process (docs/cli-verify.md, "Audits").

After the main run, a second sandboxed process (a new copy of the work dir, nothing writable
shared with the main run) gets, for secret random targets ``t``, the exact context the main run
used for ``t`` truncated right after input ``t``, and returns the whole next-token
log-probability vector there.  Two checks per audit:

- **normalized**: ``|logsumexp(logp)| <= tol.lse``;
- **agreement**: the main run's answer at ``t`` equals ``-logp[x_{t+1}]`` within ``tol.same``.

Soundness: no request of the audit process shows an audited target before that audit is
answered.  Audits go in increasing stream order (a request reveals inputs up to ``t`` only, and
every later audit has a later target); windows mode sends one row per request.  Score-first mode
replays the committed history (``chunk`` + ``commit`` per real chunk, in order) and audits the
positions of chunk ``k`` before chunk ``k`` is sent.  A main-run answer that is not the
normalized causal prediction at a fraction ``f`` of the positions escapes ``n`` independent
uniform audits with probability ``(1-f)^n``: ``n = ceil(ln(delta) / ln(1-f))``.

The seed comes from ``os.urandom`` and is written into the report only after both runs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from golf.verifier.scoring.streaming import Client, Plan, sliding_starts


@dataclass
class Tolerances:
    same: float  # max |main answer + logp[x_{t+1}]| (nats)
    lse: float   # max |logsumexp| of an audited vector


TOLERANCES = {"cpu": Tolerances(1e-4, 1e-3), "cuda": Tolerances(5e-2, 2e-2)}


def new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little")


def audits_needed(f: float, delta: float) -> int:
    """Audits that catch a client cheating on a fraction ``f`` of positions with probability >= 1 - delta."""
    return math.ceil(math.log(delta) / math.log1p(-f))


def bound(f: float, n: int) -> float:
    """Probability that ``n`` uniform audits all miss a client cheating on a fraction ``f``."""
    return (1.0 - f) ** n


@dataclass
class AuditReport:
    seed: int
    mode: str
    fraction: float        # f: the cheating fraction the bound is stated for
    delta: float           # the miss probability asked for
    needed: int            # ceil(ln delta / ln(1-f))
    affordable: int        # what --audit-budget pays for (each audit costs at most its cost cap)
    positions: list = field(default_factory=list)  # audited targets (after the run)
    real_tokens: int = 0
    audit_tokens: int = 0    # forward tokens of the audit rows
    replay_tokens: int = 0   # score-first: the committed history replayed up to the last audited chunk
    agree_max: float = 0.0
    lse_max: float = 0.0
    worst_at: int | None = None

    @property
    def n(self) -> int:
        return len(self.positions)

    def miss(self) -> float:
        return bound(self.fraction, self.n)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "positions"}
        d.update(n=self.n, positions=self.positions[:64], miss_probability=self.miss(),
                 formula="n = ceil(ln(delta) / ln(1 - f)); P(miss) = (1 - f)^n",
                 extra_fraction=(self.audit_tokens + self.replay_tokens) / max(1, self.real_tokens))
        return d


def plan_audits(rng, targets: int, f: float, delta: float, budget_tokens: float, cost_cap: int) -> tuple[int, int,
                                                                                                         np.ndarray]:
    """(needed, affordable, sorted audited targets): ``min(needed, budget / cost_cap)`` uniform draws, a hard
    limit (no minimum on top of the budget), never more than the stream's targets."""
    needed = audits_needed(f, delta)
    affordable = int(budget_tokens // max(1, cost_cap))
    n = min(needed, affordable, targets)
    return needed, affordable, np.sort(rng.choice(targets, size=n, replace=False)) if n else np.zeros(0, np.int64)


def _check(rep: AuditReport, t: int, logp: np.ndarray, main: float, token: int) -> None:
    m = float(logp.max())
    lse = m + math.log(float(np.exp(logp.astype(np.float64) - m).sum()))
    d = abs(float(main) + float(logp[token]))
    rep.lse_max = max(rep.lse_max, abs(lse))
    if rep.worst_at is None or d > rep.agree_max:
        rep.agree_max, rep.worst_at = d, t


def audit_windows(client: Client, stream: np.ndarray, plan: Plan, main_nll: np.ndarray, rep: AuditReport,
                  positions: np.ndarray) -> None:
    """Each audited target ``t`` alone, in increasing order: the window start the main run used, inputs up to ``t``."""
    starts = sliding_starts(plan)
    for t in positions.tolist():
        row = stream[starts[t]:t + 1]
        logp = client.logp(row[None])[0]
        _check(rep, t, logp, main_nll[t], int(stream[t + 1]))
        rep.audit_tokens += len(row)
    rep.positions = positions.tolist()


def audit_score_first(client: Client, stream: np.ndarray, chunk: int, main_nll: np.ndarray, rep: AuditReport,
                      positions: np.ndarray) -> None:
    """Replay the committed history in order; before chunk ``k`` is sent, audit its positions (prefix of the chunk
    up to, not including, the audited token).  Costs the history up to the last audited chunk."""
    T = len(stream) - 1
    client.start("score-first", chunk, chunk, history=stream[:1])
    last = int(positions[-1]) // chunk if len(positions) else -1
    for k in range(last + 1):
        real = stream[1 + k * chunk:1 + min((k + 1) * chunk, T)]
        for t in positions[(positions // chunk) == k].tolist():
            j = t - k * chunk
            logp = client.logp(real[None, :j])[0]
            _check(rep, t, logp, main_nll[t], int(real[j]))
            rep.audit_tokens += j + 1
        client.chunk(real)
        client.commit()
        rep.replay_tokens += len(real)
    rep.positions = positions.tolist()
