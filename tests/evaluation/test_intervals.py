"""Intervals: bootstrap draws, percentile intervals, weighted reductions and ranks by hand, every
compute_metrics key under bootstrap counts (``weights``) equal to compute_metrics on the explicit
resample, the seed interval by hand (t) and equal to bootstrap_ci (bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats import rankdata

from lczldl.errors import DataError
from lczldl.evaluation.intervals import (
    bootstrap_ci,
    bootstrap_counts,
    bootstrap_indices,
    bootstrap_interval,
    bootstrap_interval_loop,
    bootstrap_intervals,
    percentile_interval,
    seed_interval,
    t_quantile,
    weighted_group_means,
    weighted_means,
    weighted_ranks,
)
from lczldl.evaluation.metrics import METRIC_KEYS, compute_metrics


def test_counts_are_the_index_draws():
    idx, w = bootstrap_indices(7, 50, seed=3), bootstrap_counts(7, 50, seed=3)
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all()
    for b in range(50):
        assert (w[b] == np.bincount(idx[b], minlength=7)).all()


def test_percentile_interval_by_hand():
    s = np.arange(101.0)
    lo, hi = percentile_interval(s, level=0.9)
    assert (float(lo), float(hi)) == pytest.approx((5.0, 95.0), abs=1e-12)
    s2 = np.stack([s, np.where(s < 60, np.nan, s)], axis=1)       # column 1: 41 finite of 101
    lo, hi = percentile_interval(s2, level=0.9)
    assert lo[0] == pytest.approx(5.0) and math.isnan(lo[1]) and math.isnan(hi[1])


def test_weighted_means_and_group_means_by_hand():
    v = np.array([1.0, 2.0, np.nan, 4.0])
    assert weighted_means(v) == pytest.approx(7 / 3)                          # NaN skipped
    w = np.array([[2.0, 0.0, 1.0, 1.0], [0.0, 0.0, 4.0, 0.0]])
    out = weighted_means(v, w)
    assert out[0] == pytest.approx((2 + 4) / 3) and math.isnan(out[1])
    g = np.array([0, 1, 1, 0])
    np.testing.assert_allclose(weighted_group_means(v, g, 3), [2.5, 2.0, np.nan])
    gw = weighted_group_means(v, g, 3, w)
    np.testing.assert_allclose(gw[0], [(2 + 4) / 3, np.nan, np.nan])


def test_t_quantile_is_scipy_stats_t():
    """scipy.special's stdtrit against scipy.stats.t.ppf (exactly: the same routine), over the
    levels and seed counts the intervals use and a normal-like df; the textbook 12.706 and 2.776."""
    for df in (1, 2, 3, 4, 9, 19, 1e6):
        for q in (0.5, 0.9, 0.95, 0.975, 0.995):
            assert t_quantile(q, df) == stats.t.ppf(q, df)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)


def test_weighted_ranks_are_ranks_of_the_expanded_sample():
    x = np.array([3.0, 1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(weighted_ranks(x), rankdata(x))
    w = np.array([[2.0, 1.0, 0.0, 1.0, 1.0]])
    expanded = np.repeat(x, w[0].astype(int))                  # 3, 3, 1, 2, 5
    r = rankdata(expanded)                                     # 3.5, 3.5, 1, 2, 5
    assert weighted_ranks(x, w)[0, [0, 1, 3, 4]].tolist() == [3.5, 1.0, 2.0, 5.0]
    assert sorted(r) == sorted(np.repeat(weighted_ranks(x, w)[0], w[0].astype(int)))


def case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 10)) * 2
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(n) < 0.6, p.argmax(axis=1), rng.integers(0, 10, n))
    c = rng.multinomial(11, rng.dirichlet(np.ones(10)), n)
    return p, labels, c / c.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("binning,override", [("right", False), ("left", False), ("right", True)])
def test_weighted_compute_metrics_equal_compute_metrics_on_resamples(binning, override):
    p, labels, d = case(400, seed=1)
    conf = np.random.default_rng(2).uniform(0.3, 1.0, 400) if override else None
    idx, w = bootstrap_indices(400, 12, seed=5), bootstrap_counts(400, 12, seed=5)
    wm = compute_metrics(p, labels, d, n_bins=15, binning=binning, confidence=conf, weights=w)
    assert list(wm) == list(METRIC_KEYS) and all(v.shape == (12,) for v in wm.values())
    for b in range(12):
        i = idx[b]
        ref = compute_metrics(p[i], labels[i], d[i], n_bins=15, binning=binning,
                              confidence=None if conf is None else conf[i])
        for key in METRIC_KEYS:
            if math.isnan(ref[key]):
                assert math.isnan(wm[key][b]), key
            else:
                assert wm[key][b] == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key


def test_weighted_compute_metrics_with_unit_counts_and_bad_weights():
    p, labels, d = case(120, seed=6)
    one = compute_metrics(p, labels, d, 20, weights=np.ones((1, 120)))    # 20: the paper's bins
    ref = compute_metrics(p, labels, d, 20)
    for key in METRIC_KEYS:
        assert one[key][0] == pytest.approx(ref[key], rel=1e-12, abs=1e-14, nan_ok=True), key
    with pytest.raises(DataError, match="weights must be"):
        compute_metrics(p, labels, d, 20, weights=np.ones((2, 119)))


def _metric_intervals(p, labels, d, **kw):
    """Bootstrap intervals of every metric, in the paper's 20 bins."""
    return bootstrap_intervals(lambda w: compute_metrics(p, labels, d, 20, weights=w), len(labels), **kw)


def test_metric_intervals_chunking_and_bracket():
    p, labels, d = case(300, seed=3)
    a = _metric_intervals(p, labels, d, n_boot=200)
    b = _metric_intervals(p, labels, d, n_boot=200, chunk=300 * 7)            # 7 draws per chunk
    assert list(a) == list(METRIC_KEYS) and list(a) == list(b)
    np.testing.assert_array_equal(np.array(list(a.values())), np.array(list(b.values())))  # NaN == NaN
    point = compute_metrics(p, labels, d, 20)
    for key in ("oa", "ece", "ce_distr", "kappa", "entropy_spearman"):
        assert a[key][0] < point[key] < a[key][1], key


def test_vectorised_and_loop_bootstrap_agree():
    x = np.random.default_rng(4).normal(size=80)
    vec = bootstrap_interval(lambda w: weighted_means(x, w), 80, n_boot=300, seed=2)
    loop = bootstrap_interval_loop(np.mean, [x], n_boot=300, seed=2)
    assert vec == pytest.approx(loop, abs=1e-12)


def test_seed_interval():
    lo, hi = seed_interval([0.80, 0.82])
    half = 12.706204736 * (0.02 / math.sqrt(2)) / math.sqrt(2)    # t_{0.975, 1} s / sqrt(n)
    assert (lo, hi) == pytest.approx((0.81 - half, 0.81 + half), abs=1e-8)
    vals = [0.80, 0.82, 0.79, 0.85, 0.83]
    assert seed_interval(vals, method="bootstrap") == bootstrap_ci(np.array(vals), n_boot=10000, seed=0)
    assert all(math.isnan(x) for x in seed_interval([0.8, float("nan")]))
