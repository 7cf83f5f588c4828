"""The dependency-free Student-t against scipy, and both significance rules of the records lint."""
from __future__ import annotations

import math

import pytest

from golf.verifier.lint.records import SIGNIFICANCE_RULES, significance
from golf.verifier.lint.stats import betainc, one_sided_ttest, t_cdf, t_sf
from golf.verifier.logparse import parse_log

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy (the `test` extra) is not installed")
scipy_special = pytest.importorskip("scipy.special")


def test_t_distribution_matches_scipy():
    for df in (1, 2, 3, 4, 5, 7, 10, 30, 120):
        for t in (-12.0, -3.5, -1.0, -0.1, 0.0, 0.3, 1.7, 2.9, 6.96, 25.0):
            assert t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-9, abs=1e-13)
            assert t_sf(t, df) == pytest.approx(scipy_stats.t.sf(t, df), rel=1e-9, abs=1e-13)
    for a, b, x in ((0.5, 0.5, 0.3), (1.0, 3.0, 0.9), (2.5, 0.5, 0.999), (15.0, 0.5, 0.2), (0.7, 12.0, 0.01)):
        assert betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10, abs=1e-14)


def test_one_sided_ttest_matches_scipy():
    vals = [0.0121, 0.0093, 0.0142, 0.0108]
    for delta in (0.0, 0.005, 0.01):
        ours = one_sided_ttest(vals, delta)
        ref = scipy_stats.ttest_1samp(vals, delta, alternative="greater")
        assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)


class _Log:
    def __init__(self, bpb: float, loss: float):
        self.scored = parse_log(f"final val_loss:{loss:.8f} val_bpb:{bpb:.8f}\n").evals[0]


def test_both_rules_are_reported_and_the_flag_picks_the_verdict():
    ratio = 2.0 / 1.2
    bpbs = [1.1000, 1.1012, 1.0991]
    per_seed = {i: _Log(b, b * ratio) for i, b in enumerate(bpbs)}
    against = 1.1030  # ~0.0028 bpb ≈ 0.0047 nats: better, but not by 0.005 nats
    readme = significance(per_seed, against)
    chained = significance(per_seed, against, rule="chained")
    d = [(against - b) * ratio for b in bpbs]
    p_readme = scipy_stats.ttest_1samp(d, 0.005, alternative="greater").pvalue
    p_chained = scipy_stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
    assert readme.status == "fail" and readme.measured == pytest.approx(p_readme, abs=1e-6)
    assert chained.status == "pass" and chained.measured == pytest.approx(p_chained, abs=1e-6)
    for c in (readme, chained):
        assert "readme:" in c.message and "chained:" in c.message  # both reported
    assert "verdict by the readme rule" in readme.message and "verdict by the chained rule" in chained.message
    assert SIGNIFICANCE_RULES["readme"][:2] == (0.005, 0.01) and SIGNIFICANCE_RULES["chained"][:2] == (0.0, 0.25)
    assert chained.limit == 0.25 and readme.limit == 0.01
    assert math.isfinite(readme.measured)
