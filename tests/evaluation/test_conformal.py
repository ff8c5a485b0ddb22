"""Split conformal sets: scores and the finite-sample quantile by hand, set metrics against votes by
hand, LAC and randomised APS identical to MAPIE, deterministic APS and RAPS identical to a
brute-force reference written here, and the coverage guarantee on exchangeable data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.evaluation.conformal import (
    class_ranks,
    conformal_metrics,
    conformal_quantile,
    conformity_scores,
    set_metrics,
    split_conformal,
)


def test_quantile_is_the_exact_order_statistic():
    s = np.array([0.1, 0.4, 0.2, 0.3])
    assert conformal_quantile(s, 0.6) == 0.3            # ceil(5 * 0.6) = 3rd smallest
    assert conformal_quantile(s, 0.8) == 0.4            # ceil(5 * 0.8) = 4 exactly (no rounding up)
    assert conformal_quantile(s, 0.9) == math.inf       # ceil(4.5) = 5 > n
    assert conformal_quantile(np.arange(9.0), 0.5) == 4.0     # ceil(10 * 0.5) = 5th smallest
    with pytest.raises(ValueError):
        conformal_quantile(s, 1.0)


def test_scores_by_hand():
    p = np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]])
    np.testing.assert_allclose(conformity_scores(p, "lac"), [[0.5, 0.7, 0.8], [0.8, 0.6, 0.6]])
    assert class_ranks(p).tolist() == [[1, 2, 3], [3, 1, 2]]          # tie: lower index first
    np.testing.assert_allclose(conformity_scores(p, "aps"), [[0.5, 0.8, 1.0], [1.0, 0.4, 0.8]])
    # randomised: mass strictly above + u p
    np.testing.assert_allclose(conformity_scores(p, "aps", u=np.array([0.5, 0.0])),
                               [[0.25, 0.65, 0.9], [0.8, 0.0, 0.4]])
    # RAPS lambda 0.1, k_reg 1: + 0.1 * (rank - 1)
    np.testing.assert_allclose(conformity_scores(p, "raps", lam=0.1, k_reg=1),
                               [[0.5, 0.9, 1.2], [1.2, 0.4, 0.9]])


def test_split_conformal_by_hand():
    cal = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 0])                     # LAC scores 0.3, 0.7, 0.5, 0.9
    test = np.array([[0.45, 0.35, 0.2], [0.2, 0.2, 0.6]])
    sets, q = split_conformal(cal, labels, test, score="lac", level=0.6)   # 3rd smallest: 0.7
    assert q == 0.7
    assert sets.tolist() == [[True, True, False], [False, False, True]]    # p >= 0.3
    sets, q = split_conformal(cal, labels, test, score="aps", level=0.6)
    # APS scores of the labels: 0.7, 0.6 + 0.3, 0.5, 0.8 + 0.1 (tie 0.1 / 0.1: class 0 ranks
    # before class 1) -> 3rd smallest 0.9
    assert q == pytest.approx(0.9)
    # test 0: mass 0.45, 0.8, 1.0 by rank; test 1: class 2 (0.6), class 0 (0.8), class 1 (1.0)
    assert sets.tolist() == [[True, True, False], [True, False, True]]


def votes_rows(*rows: dict[int, int]) -> np.ndarray:
    """Store-format votes: each row {LCZ id: count}, padded with 0 to 11 columns."""
    out = np.zeros((len(rows), 11), dtype=np.int8)
    for i, r in enumerate(rows):
        v = np.concatenate([np.full(c, lcz) for lcz, c in r.items()])
        out[i, :len(v)] = v
    return out


def test_set_metrics_by_hand():
    votes = votes_rows({1: 8, 2: 3}, {2: 11}, {3: 6, 1: 2, 2: 1, 14: 2}, {1: 5, 3: 5})
    sets = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]], dtype=bool)
    labels = np.array([0, 1, 2, 0])
    m = set_metrics(sets, labels, votes)
    # plausible sets (share >= 0.15): {1, 2}, {2}, {1, 3} (2/9 in, 1/9 out), {1, 3}
    assert m["coverage"] == 0.75 and m["set_size"] == 1.25 and m["empty_share"] == 0.25
    assert m["vote_coverage"] == pytest.approx((8 / 11 + 1 + 0 + 1) / 4)   # LCZ 14 votes left out
    assert m["plausible_jaccard"] == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)
    assert m["plausible_exact"] == 0.25 and m["plausible_size"] == 1.75
    assert (m["coverage_cls0"], m["coverage_cls1"], m["coverage_cls2"]) == (1.0, 1.0, 0.0)
    # vote entropies 0.586, 0, 0.849, log 2 -> paper bins 2, 0, 3, 2
    assert m["coverage_ebin0"] == 1.0 and m["coverage_ebin2"] == 1.0 and m["coverage_ebin3"] == 0.0
    assert m["set_size_ebin0"] == 2.0 and m["set_size_ebin2"] == 1.5 and m["set_size_ebin3"] == 0.0
    assert math.isnan(m["coverage_ebin1"]) and math.isnan(m["set_size_ebin5"])


def brute_force_sets(cal_p, cal_y, test_p, level, lam=0.0, k_reg=0):
    """Deterministic APS / RAPS written out with loops (Angelopoulos et al. 2021, Algorithm 1/2
    without randomisation): walk classes by descending probability accumulating mass + penalty."""
    def score(p, y):
        order = sorted(range(len(p)), key=lambda c: (-p[c], c))
        total = 0.0
        for rank, c in enumerate(order, start=1):
            total += p[c]
            if c == y:
                return total + lam * max(0, rank - k_reg)
        raise AssertionError
    s = sorted(score(p, y) for p, y in zip(cal_p, cal_y, strict=True))
    k = math.ceil((len(s) + 1) * level)
    q = s[k - 1] if k <= len(s) else math.inf
    return np.array([[score(p, c) <= q for c in range(len(p))] for p in test_p])


def random_probs(n, k, seed, temp=1.5):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * temp
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=k - 1)   # y ~ p: calibrated
    return p, y


@pytest.mark.parametrize("score,lam,k_reg", [("aps", 0.0, 0), ("raps", 0.01, 2), ("raps", 0.2, 1)])
def test_deterministic_aps_raps_match_brute_force(score, lam, k_reg):
    p, y = random_probs(400, 6, seed=1)
    for level in (0.9, 0.95):
        ours, _ = split_conformal(p[:200], y[:200], p[200:], score=score, level=level, lam=lam, k_reg=k_reg)
        ref = brute_force_sets(p[:200], y[:200], p[200:], level,
                               lam=lam if score == "raps" else 0.0, k_reg=k_reg)
        assert (ours == ref).all()


def test_lac_and_randomised_aps_identical_to_mapie():
    pytest.importorskip("mapie")
    from mapie.classification import SplitConformalClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Fixed(ClassifierMixin, BaseEstimator):
        """Stand-in classifier: X holds row indices into fixed probabilities."""

        def __init__(self, probs=None):
            self.probs = probs

        def fit(self, x, y):
            self.classes_ = np.arange(self.probs.shape[1])
            return self

        def predict_proba(self, x):
            return self.probs[np.asarray(x)[:, 0].astype(int)]

        def predict(self, x):
            return self.predict_proba(x).argmax(axis=1)

    p, y = random_probs(700, 10, seed=2)
    x = np.arange(len(p))[:, None]
    cal, test = np.arange(300), np.arange(300, 700)
    est = Fixed(p).fit(x, y)
    for score in ("lac", "aps"):
        mapie = SplitConformalClassifier(estimator=est, confidence_level=[0.9, 0.95], conformity_score=score,
                                         prefit=True, random_state=7).conformalize(x[cal], y[cal])
        params = {"include_last_label": "randomized"} if score == "aps" else None
        _, ref = mapie.predict_set(x[test], conformity_score_params=params)
        # MAPIE's u is ours mirrored: its APS score is mass at or above - u p (= mass above + (1 - u) p)
        u_cal = 1.0 - np.random.RandomState(7).uniform(size=len(cal))
        u_test = 1.0 - np.random.RandomState(7).uniform(size=(len(test), 1))[:, 0]
        for j, level in enumerate((0.9, 0.95)):
            ours, _ = split_conformal(p[cal], y[cal], p[test], score=score, level=level,
                                      randomized=score == "aps", u_cal=u_cal, u_test=u_test)
            assert (ours == ref[:, :, j]).all(), (score, level)


@pytest.mark.parametrize("score,randomized", [("lac", False), ("aps", False), ("aps", True), ("raps", False)])
def test_marginal_coverage_guarantee(score, randomized):
    """Exchangeable calibration and test points: mean coverage over many splits is
    ceil((n+1)(1-alpha)) / (n+1) for continuous scores (randomised APS), at least that otherwise."""
    p, y = random_probs(60_000, 10, seed=3)
    n_cal, n_test, level = 99, 200, 0.9
    covered = []
    for t in range(200):
        part = np.arange(t * 299, (t + 1) * 299)
        c, te = part[:n_cal], part[n_cal:]
        sets, _ = split_conformal(p[c], y[c], p[te], score=score, level=level, randomized=randomized, seed=t)
        covered.append(sets[np.arange(n_test), y[te]].mean())
    exact = math.ceil((n_cal + 1) * level) / (n_cal + 1)      # 0.9
    assert np.mean(covered) > exact - 0.01                   # sd of the mean ~0.0025
    if score == "lac" or randomized:
        assert np.mean(covered) < exact + 0.01


def test_conformal_metrics_keys_and_inf_quantile():
    p, y = random_probs(60, 4, seed=4)
    votes = np.zeros((40, 11), dtype=np.int8)
    votes[:, 0] = y[20:] + 1
    out = conformal_metrics(p[:20], y[:20], p[20:], y[20:], votes, scores=("lac", "raps"), levels=(0.9, 0.96))
    assert sorted(out) == ["lac_90", "lac_96", "raps_90", "raps_96"]
    # n = 20: ceil(21 * 0.96) = 21 > 20 -> q = inf, every set is all classes
    assert out["lac_96"]["qhat"] == math.inf and out["lac_96"]["set_size"] == 4.0
    assert out["lac_96"]["coverage"] == 1.0 and out["lac_96"]["vote_coverage"] == 1.0
