"""Sets calibrated on the votes (Monte Carlo conformal, Stutz et al. 2023) and the conditional set
metrics: thresholds by hand, the threshold form equal to the published p-value construction
(averaged p-values; ECDF correction) written out here with exact fractions, unanimous votes equal
to the standard calibration, the vote-coverage target reached in simulation where the majority-
calibrated sets fall short; CovGap / SSCV by hand, against a loop reference and MAPIE's
size-stratified coverage, and under bootstrap weights equal to repeated rows."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from lczldl.evaluation.conformal import (
    SCORES,
    conditional_set_metrics,
    conformal_quantile,
    conformity_scores,
    set_metrics,
    split_conformal,
)
from lczldl.evaluation.conformal_votes import (
    mc_ecdf_quantile,
    mc_quantile,
    sample_vote_labels,
    vote_conformal,
)


def votes_rows(*rows: dict[int, int]) -> np.ndarray:
    """Store-format votes: each row {LCZ id: count}, padded with 0 to 11 columns."""
    out = np.zeros((len(rows), 11), dtype=np.int8)
    for i, r in enumerate(rows):
        v = np.concatenate([np.full(c, lcz) for lcz, c in r.items()]) if r else np.zeros(0)
        out[i, :len(v)] = v
    return out


# ------------------------------------------------------------------------- sampling and thresholds

def test_sample_vote_labels_draws_the_votes():
    counts = np.array([[0, 11, 0], [3, 0, 8], [0, 0, 1]])
    a = sample_vote_labels(counts, 4000, np.random.default_rng(5))
    assert a.shape == (3, 4000)
    assert (a[0] == 1).all() and (a[2] == 2).all()                  # unanimous rows: that class only
    assert set(np.unique(a[1])) == {0, 2}                            # a class without votes never
    assert abs((a[1] == 0).mean() - 3 / 11) < 4 * math.sqrt(3 / 11 * 8 / 11 / 4000)
    assert (sample_vote_labels(counts, 4000, np.random.default_rng(5)) == a).all()   # reproducible
    with pytest.raises(ValueError):
        sample_vote_labels(np.array([[0, 0, 0]]), 1, np.random.default_rng(0))


def test_mc_quantile_by_hand():
    s = np.array([[0.1, 0.5], [0.3, 0.7]])                           # n = 2 images, m = 2 draws
    assert mc_quantile(s, 0.5) == 0.5                                # ceil(0.5 * 2 * 3) = 3rd smallest
    assert mc_quantile(s, 0.6) == 0.7                                # ceil(3.6) = 4th
    assert mc_quantile(s, 0.7) == math.inf                           # ceil(4.2) = 5 > 4
    rng = np.random.default_rng(0)
    one = rng.random((37, 1))
    for level in (0.5, 0.8, 0.9, 0.95, 0.97):                        # m = 1: the standard quantile
        assert mc_quantile(one, level) == conformal_quantile(one[:, 0], level)


def test_mc_ecdf_quantile_by_hand():
    cal = np.array([[0.1, 0.5], [0.3, 0.7]])                         # pooled: 0.1 0.3 0.5 0.7
    est = np.array([0.2, 0.6, 0.8, 0.4])                             # c_i = #{cal >= s_i}: 3 1 0 2
    assert mc_ecdf_quantile(cal, est, 0.75) == math.inf              # alpha l = 1: c* = 0
    assert mc_ecdf_quantile(cal, est, 0.5) == 0.7                    # 2nd smallest c = 1: largest
    assert mc_ecdf_quantile(cal, est, 0.25) == 0.5                   # 3rd smallest c = 2: 2nd largest


def p_value_sets(cal_s, test_s, level, est_s=None):
    """The published construction with exact fractions: p^j(x, y) = (1 + #{i : s_ij >= s}) / (n + 1),
    pbar = mean over j; without ``est_s``: {y : pbar > alpha}; with it (ECDF correction, one drawn
    label per held-out image): {y : #{i : pbar_i <= pbar(x, y)} / l >= alpha}."""
    n, m = cal_s.shape
    alpha = 1 - Fraction(str(level))

    def pbar(s):
        return sum(Fraction(1 + int((cal_s[:, j] >= s).sum()), n + 1) for j in range(m)) / m
    if est_s is None:
        return np.array([[pbar(s) > alpha for s in row] for row in test_s])
    held = [pbar(s) for s in est_s]
    return np.array([[Fraction(sum(h <= pbar(s) for h in held), len(held)) >= alpha for s in row]
                     for row in test_s])


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_thresholds_equal_the_published_p_value_construction(level):
    rng = np.random.default_rng(3)
    cal = np.round(rng.random((30, 4)), 2)                           # rounded: ties included
    est = np.round(rng.random(19), 2)
    test = np.round(rng.random((25, 5)), 2)
    assert ((test <= mc_quantile(cal, level)) == p_value_sets(cal, test, level)).all()
    assert ((test <= mc_ecdf_quantile(cal, est, level)) == p_value_sets(cal, test, level, est)).all()


# ------------------------------------------------------------------------------- vote_conformal

def random_probs(n, k, rng, temp=1.5):
    z = rng.normal(size=(n, k)) * temp
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("score", SCORES)
def test_unanimous_votes_equal_the_standard_calibration(score):
    rng = np.random.default_rng(1)
    cal, test = random_probs(60, 4, rng), random_probs(20, 4, rng)
    labels = rng.integers(0, 4, 60)
    votes = np.repeat((labels + 1)[:, None], 11, axis=1)             # every expert votes the label
    for level in (0.8, 0.9):
        ref, q = split_conformal(cal, labels, test, score=score, level=level)
        for m in (1, 3, 10):                                         # ceil(ceil(x) / m) = ceil(x / m)
            got = vote_conformal(cal, votes, test, score=score, level=level, m=m, variant="average", seed=m)
            assert got.qhat == q and (got.sets == ref).all()
            assert (got.n_cal, got.n_ecdf, got.n_no_urban) == (60, 0, 0)


@pytest.mark.parametrize("variant", ["average", "ecdf"])
def test_images_without_urban_votes_are_left_out_and_counted(variant):
    rng = np.random.default_rng(2)
    cal, test = random_probs(40, 3, rng), random_probs(10, 3, rng)
    votes = votes_rows(*[{int(rng.integers(1, 4)): 6, int(rng.integers(1, 4)): 5} for _ in range(40)])
    extra = votes_rows({12: 11}, {}, {14: 3, 17: 2})                 # non-urban only, none, non-urban
    mixed_p = np.concatenate([cal[:7], random_probs(3, 3, rng), cal[7:]])
    mixed_v = np.concatenate([votes[:7], extra, votes[7:]])
    ref = vote_conformal(cal, votes, test, level=0.8, m=4, variant=variant, seed=9)
    got = vote_conformal(mixed_p, mixed_v, test, level=0.8, m=4, variant=variant, seed=9)
    assert got.n_no_urban == 3 and ref.n_no_urban == 0
    assert got.qhat == ref.qhat and (got.sets == ref.sets).all()
    assert got.n_cal + got.n_ecdf == 40
    if variant == "ecdf":
        assert (got.n_cal, got.n_ecdf) == (20, 20)


def simulate(n, rng, k=10, experts=11):
    """Images with a known vote distribution (a primary class, often a strong second one, a little
    Dirichlet noise), 11 votes drawn from it, a model that sees the distribution through noise."""
    rows = np.arange(n)
    prim = rng.integers(0, k, n)
    sec = (prim + rng.integers(1, k, n)) % k
    w = np.where(rng.random(n) < 0.5, rng.uniform(0.2, 0.5, n), rng.beta(1, 12, n))
    dist = np.zeros((n, k))
    dist[rows, prim] += 1 - w
    dist[rows, sec] += w
    dist = 0.9 * dist + 0.1 * rng.dirichlet(np.full(k, 0.3), n)
    u = rng.random((n, experts))
    cls = (dist.cumsum(axis=1)[:, None, :] < u[:, :, None]).sum(axis=2).clip(max=k - 1)
    counts = np.zeros((n, k))
    np.add.at(counts, (np.repeat(rows, experts), cls.ravel()), 1)
    z = np.log(dist + 0.02) + rng.normal(0.0, 0.7, (n, k))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return probs, (cls + 1).astype(np.int8), counts.argmax(axis=1)


def test_vote_calibrated_sets_reach_the_vote_coverage_target():
    level, reps = 0.9, 12
    cov = {key: [] for key in ("standard", "average1", "average10", "ecdf10")}
    for rep in range(reps):
        rng = np.random.default_rng([rep, 7])
        cal_p, cal_v, cal_y = simulate(1500, rng)
        test_p, test_v, test_y = simulate(2500, rng)
        std, _ = split_conformal(cal_p, cal_y, test_p, score="aps", level=level)
        cov["standard"].append(set_metrics(std, test_y, test_v)["vote_coverage"])
        for key, variant, m in (("average1", "average", 1), ("average10", "average", 10), ("ecdf10", "ecdf", 10)):
            got = vote_conformal(cal_p, cal_v, test_p, score="aps", level=level, m=m, variant=variant, seed=rep)
            cov[key].append(set_metrics(got.sets, test_y, test_v)["vote_coverage"])
    mean = {key: float(np.mean(v)) for key, v in cov.items()}
    se = {key: float(np.std(v, ddof=1) / math.sqrt(reps)) for key, v in cov.items()}
    for key in ("average1", "average10", "ecdf10"):                   # the target, within sampling error
        assert abs(mean[key] - level) < 4 * se[key] + 0.005, (key, mean[key], se[key])
    assert mean["standard"] < level - 0.05, mean                      # majority-calibrated: short


# ------------------------------------------------------------------------- conditional metrics

def hand_case():
    votes = votes_rows({1: 8, 2: 3}, {2: 11}, {3: 6, 1: 2, 2: 1, 14: 2}, {1: 5, 3: 5}, {4: 8, 3: 3},
                       {4: 6, 1: 5})
    sets = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]],
                    dtype=bool)
    return sets, np.array([0, 1, 2, 0, 3, 3]), votes


def test_conditional_metrics_by_hand():
    sets, labels, votes = hand_case()
    m = conditional_set_metrics(sets, labels, votes, 0.9)
    # label coverage per class: 1, 1, 0, 1/2
    assert m["covgap_label"] == pytest.approx((0.1 + 0.1 + 0.9 + 0.4) / 4)
    # vote coverage per class, each image's votes weighted 1 / its urban votes (LCZ 14 left out)
    cls = [(13 / 11 + 0.5) / (13 / 11 + 2 / 9 + 0.5), 1 / (3 / 11 + 1 + 1 / 9),
           (0.5 + 3 / 11) / (6 / 9 + 0.5 + 3 / 11), (6 / 11) / (14 / 11)]
    for c in range(4):
        assert m[f"vote_coverage_cls{c}"] == pytest.approx(cls[c])
    assert m["covgap_votes"] == pytest.approx(np.mean(np.abs(np.array(cls) - 0.9)))
    # sizes 1, 2, 0, 2, 3, 4 -> strata 0, 1, 0, 1, 2, 3 (the empty set counts with the singletons)
    assert [m[f"share_stratum{j}"] for j in range(4)] == pytest.approx([2 / 6, 2 / 6, 1 / 6, 1 / 6])
    assert [m[f"coverage_stratum{j}"] for j in range(4)] == [0.5, 1.0, 0.0, 1.0]
    assert m["sscv_label"] == pytest.approx(0.9)
    # vote coverage per image: 8/11, 1, 0, 1, 3/11, 1
    assert [m[f"vote_coverage_stratum{j}"] for j in range(4)] == pytest.approx([4 / 11, 1.0, 3 / 11, 1.0])
    assert m["sscv_votes"] == pytest.approx(0.9 - 3 / 11)
    # vote entropies 0.586, 0, 0.849, 0.693, 0.586, 0.689 -> paper bins 2, 0, 3, 2, 2, 2
    assert m["vote_coverage_ebin0"] == 1.0 and m["vote_coverage_ebin3"] == 0.0
    assert m["vote_coverage_ebin2"] == pytest.approx((8 / 11 + 1 + 3 / 11 + 1) / 4)
    assert math.isnan(m["vote_coverage_ebin1"]) and math.isnan(m["vote_coverage_ebin5"])


def test_empty_strata_are_skipped():
    sets = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    m = conditional_set_metrics(sets, np.array([0, 4]), votes_rows({1: 11}, {5: 11}), 0.9)
    assert math.isnan(m["coverage_stratum0"]) and math.isnan(m["coverage_stratum2"])
    assert m["sscv_label"] == pytest.approx(0.1) and m["share_stratum1"] == 0.5
    assert m["covgap_label"] == pytest.approx(0.1)                   # classes 1..3 have no images


def loop_reference(sets, labels, level):
    """CovGap and SSCV as TorchCP defines them (CovGap / 100), written with loops."""
    gaps = []
    for c in sorted(set(labels.tolist())):
        rows = [i for i in range(len(labels)) if labels[i] == c]
        gaps.append(abs(sum(sets[i, c] for i in rows) / len(rows) - level))
    worst = -1.0
    for lo, hi in ((0, 1), (2, 2), (3, 3), (4, 1000)):
        rows = [i for i in range(len(labels)) if lo <= sets[i].sum() <= hi]
        if rows:
            worst = max(worst, abs(level - sum(sets[i, labels[i]] for i in rows) / len(rows)))
    return sum(gaps) / len(gaps), worst


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # MAPIE: its empty size-0 bin
def test_covgap_and_sscv_match_a_loop_reference_and_mapie():
    pytest.importorskip("mapie")
    from mapie.metrics.classification import classification_ssc

    rng = np.random.default_rng(4)
    n, k = 400, 4
    sets = rng.random((n, k)) < rng.uniform(0.1, 0.9, (n, 1))
    sets[np.arange(n), rng.integers(0, k, n)] = True                 # sizes 1..4: MAPIE's bins 1..4
    labels = rng.integers(0, k, n)
    votes = np.repeat((labels + 1)[:, None], 11, axis=1)
    m = conditional_set_metrics(sets, labels, votes, 0.9)
    covgap, sscv = loop_reference(sets, labels, 0.9)
    assert m["covgap_label"] == pytest.approx(covgap) and m["sscv_label"] == pytest.approx(sscv)
    ssc = classification_ssc(labels, sets)[0]                        # coverage per set size 0..K
    np.testing.assert_allclose([m[f"coverage_stratum{j}"] for j in range(4)], ssc[1:])
    assert m["sscv_label"] == pytest.approx(np.nanmax(np.abs(ssc[1:] - 0.9)))
    # unanimous votes: the vote versions are the label versions
    assert m["covgap_votes"] == pytest.approx(covgap) and m["sscv_votes"] == pytest.approx(sscv)


def test_bootstrap_weights_equal_repeated_rows():
    sets, labels, votes = hand_case()
    w = np.array([[2, 0, 1, 3, 1, 1], [1, 1, 1, 1, 1, 1], [0, 2, 0, 0, 1, 0]], dtype=np.float64)
    got = conditional_set_metrics(sets, labels, votes, 0.9, weights=w)
    for b in range(len(w)):
        idx = np.repeat(np.arange(6), w[b].astype(int))
        ref = conditional_set_metrics(sets[idx], labels[idx], votes[idx], 0.9)
        for key, v in ref.items():
            assert got[key].shape == (3,)
            if math.isnan(v):
                assert math.isnan(got[key][b]), key
            else:
                assert got[key][b] == pytest.approx(v), key


def test_scores_reused_unchanged():
    """vote_conformal's sets are the standard scores thresholded at its q_hat."""
    rng = np.random.default_rng(8)
    cal, test = random_probs(50, 5, rng), random_probs(30, 5, rng)
    votes = votes_rows(*[{int(rng.integers(1, 6)): 7, int(rng.integers(1, 6)): 4} for _ in range(50)])
    for score in SCORES:
        got = vote_conformal(cal, votes, test, score=score, level=0.8, m=5, seed=1)
        assert (got.sets == (conformity_scores(test, score) <= got.qhat)).all()
