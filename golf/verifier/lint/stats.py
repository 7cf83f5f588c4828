"""Student-t test without scipy: regularized incomplete beta by continued fraction.

The challenge's significance rules test the per-seed improvements ``d_i`` (nats of
``val_loss``) with a one-sample, one-sided t-test of ``H0: mean(d) <= delta`` against
``H1: mean(d) > delta``: the README rule uses delta = 0.005 at p < 0.01, the chained
leaderboard rule delta = 0 at p < 0.25 (both in ``golf.verifier.lint.records.SIGNIFICANCE_RULES``).
Dependency-free on purpose; the tests compare it with scipy.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def _betacf(a: float, b: float, x: float, max_iter: int = 500, eps: float = 3e-16) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    return h  # converged to within float precision for all practical (a, b, x)


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc needs a, b > 0 (got {a}, {b})")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1 (got {x})")
    if x == 0.0 or x == 1.0:
        return x
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0 (got {df})")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_sf(t: float, df: float) -> float:
    """P(T > t)."""
    return t_cdf(-t, df)


@dataclass
class TTest:
    n: int
    mean: float
    std: float  # sample standard deviation (n-1)
    t: float
    df: int
    p: float  # one-sided p-value of H0: mean <= delta


def one_sided_ttest(values: list[float], delta: float = 0.0) -> TTest:
    """One-sample one-sided t-test of ``mean(values) > delta``. Needs at least 2 values."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a t-test needs at least 2 values (got {n})")
    mean = statistics.fmean(values)
    std = statistics.stdev(values, mean)
    if std == 0.0:
        t = math.inf if mean > delta else (-math.inf if mean < delta else 0.0)
        p = 0.0 if mean > delta else (1.0 if mean < delta else 0.5)
        return TTest(n, mean, std, t, n - 1, p)
    t = (mean - delta) / (std / math.sqrt(n))
    return TTest(n, mean, std, t, n - 1, t_sf(t, n - 1))
