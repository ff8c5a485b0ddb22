"""compute_metrics on hand-computed cases, against plain-loop references, and on bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from lczldl.distributions import average_ranks, spearman
from lczldl.errors import DataError, LczldlError
from lczldl.evaluation.metrics import METRIC_KEYS, compute_metrics

# 4 samples, 3 classes; every expected number below is worked out by hand in the comments.
P = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
Y = np.array([0, 1, 1, 2])                    # preds 0, 1, 0, 2 -> correct 1, 1, 0, 1
D = np.array([[1.0, 0, 0], [0, 0.5, 0.5], [0.5, 0.5, 0], [0, 0, 1.0]])
#: the paper's 20 calibration bins, for the cases below whose numbers do not depend on the bins
BINS = 20


def test_hand_computed_classification():
    m = compute_metrics(P, Y, D, n_bins=2)
    assert m["oa"] == pytest.approx(0.75)
    # precision: class 0 predicted twice, right once -> 0.5; classes 1, 2 -> 1
    assert m["maa"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["waa"] == pytest.approx((0.5 * 1 + 1 * 2 + 1 * 1) / 4)        # supports 1, 2, 1
    # pe = (1*2 + 2*1 + 1*1) / 16
    assert m["kappa"] == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
    assert m["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_hand_computed_probabilistic():
    m = compute_metrics(P, Y, D, n_bins=2)
    assert m["ce_one_hot"] == pytest.approx(-(math.log(.7) + math.log(.6) + math.log(.4) + math.log(.5)) / 4)
    assert m["nll"] == pytest.approx(m["ce_one_hot"])
    assert m["ce_distr"] == pytest.approx(-(math.log(.7) + .5 * math.log(.6) + .5 * math.log(.3)
                                            + .5 * math.log(.5) + .5 * math.log(.4) + math.log(.5)) / 4)
    assert m["kl_distr"] == pytest.approx((math.log(1 / .7) + .5 * math.log(.5 / .6) + .5 * math.log(.5 / .3)
                                           + .5 * math.log(.5 / .4) + math.log(1 / .5)) / 4)
    assert m["tv_distr"] == pytest.approx((.3 + .2 + .1 + .5) / 4)
    assert m["brier_distr"] == pytest.approx((.14 + .06 + .02 + .38) / 4)
    assert m["brier_one_hot"] == pytest.approx((.14 + .26 + .62 + .38) / 4)
    js = 0.0
    for p, d in zip(P, D, strict=True):
        mm = (p + d) / 2
        js += 0.5 * sum(a * math.log(a / b) for a, b in zip(d, mm, strict=True) if a > 0)
        js += 0.5 * sum(a * math.log(a / b) for a, b in zip(p, mm, strict=True) if a > 0)
    assert m["js_distr"] == pytest.approx(js / 4)


def test_hand_computed_calibration():
    m = compute_metrics(P, Y, D, n_bins=2)
    # bins (0, .5], (.5, 1]: {0.5, 0.5} acc .5 conf .5; {0.7, 0.6} acc 1 conf .65
    assert m["ece"] == pytest.approx(0.5 * 0.35)
    assert m["mce"] == pytest.approx(0.35)
    # seed SCE: gaps (bin, class) .3 (0.7 vs 1), .4 (0.6 vs 1), .4 (p1 = .4, wrong), .5 (p2 = .5)
    assert m["sce"] == pytest.approx((.3 + .4 + .4 + .5) / 4 / 3)
    # classwise: class 0 |0 - .8| + |1 - .7|, class 1 |1 - .9| + |1 - .6|, class 2 |1 - 1|
    assert m["classwise_ece"] == pytest.approx((1.1 + 0.5 + 0.0) / 4 / 3)
    # equal mass: {.5, .5} acc 1 of 2, sum conf 1; {.6, .7} acc 2, sum conf 1.3
    assert m["adaptive_ece"] == pytest.approx(0.7 / 4)
    # top-label confidences .7 .6 .5 .5 at accuracy .75: under-confident by .175 on average
    assert m["mean_confidence"] == pytest.approx(0.575)
    assert m["overconfidence"] == pytest.approx(-0.175)
    over = compute_metrics(P, Y, D, n_bins=2, confidence=np.array([1.0, 1.0, 0.9, 0.9]))
    assert over["overconfidence"] == pytest.approx(0.95 - 0.75)
    left = compute_metrics(P, Y, D, n_bins=2, binning="left")
    # [0, .5), [.5, 1), {1}: all four in bin 1: acc .75, conf .575
    assert left["ece"] == pytest.approx(0.175)
    assert left["mce"] == pytest.approx(0.175)


def test_entropy_bins_and_nan_json():
    m = compute_metrics(P, Y, D, n_bins=2)
    # vote entropy 0, ln 2, ln 2, 0 -> bins 0 and 2 ([0.5, 0.7))
    assert m["oa_ebin0"] == 1.0 and m["oa_ebin2"] == 0.5
    assert m["ece_ebin0"] == pytest.approx((abs(1 - .7) + abs(1 - .5)) / 2)   # one sample per bin
    for b in (1, 3, 4, 5):
        assert math.isnan(m[f"oa_ebin{b}"]) and math.isnan(m[f"ece_ebin{b}"])
    assert list(m) == list(METRIC_KEYS)


def test_spearman_hand_and_ties():
    assert spearman(np.array([1., 2, 3, 4]), np.array([1., 3, 2, 4])) == pytest.approx(1 - 6 * 2 / 60)
    x, y = np.array([1., 1, 2, 3]), np.array([1., 2, 2, 3])
    rx, ry = np.array([1.5, 1.5, 3, 4]), np.array([1, 2.5, 2.5, 4])
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert math.isnan(spearman(x, np.ones(4)))


def test_average_ranks_and_spearman_equal_scipys():
    """Against scipy.stats.rankdata / spearmanr on data with many ties, NaN and empty input."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 200):
        x, y = rng.integers(0, 5, n).astype(float), rng.normal(size=n).round(1)
        np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x))
        if n > 2:
            assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    np.testing.assert_array_equal(average_ranks(np.array([2.0, np.nan, 1.0])), stats.rankdata([2.0, np.nan, 1.0]))
    assert average_ranks(np.array([])).size == 0 and math.isnan(spearman(np.array([]), np.array([])))
    assert math.isnan(spearman(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, 3.0])))


def test_entropy_spearman_perfect():
    rng = np.random.default_rng(0)
    d = rng.dirichlet(np.ones(5), 50)
    m = compute_metrics(d, d.argmax(1), d, BINS)
    assert m["entropy_spearman"] == pytest.approx(1.0)
    assert m["kl_distr"] == pytest.approx(0, abs=1e-12) and m["js_distr"] == pytest.approx(0, abs=1e-12)


def _plain_reference(labels, preds, k):
    """Independent loops: sklearn-style macro/weighted precision over seen classes, Cohen's kappa."""
    n = len(labels)
    seen = sorted(set(labels.tolist()) | set(preds.tolist()))
    prec, supp = {}, {}
    for c in seen:
        npred = sum(1 for p in preds if p == c)
        tp = sum(1 for t, p in zip(labels, preds, strict=True) if t == c and p == c)
        prec[c] = tp / npred if npred else 0.0
        supp[c] = sum(1 for t in labels if t == c)
    po = sum(1 for t, p in zip(labels, preds, strict=True) if t == p) / n
    pe = sum((sum(1 for t in labels if t == c) / n) * (sum(1 for p in preds if p == c) / n) for c in range(k))
    return (sum(prec.values()) / len(seen), sum(prec[c] * supp[c] for c in seen) / n, (po - pe) / (1 - pe))


def test_precision_kappa_against_loops():
    rng = np.random.default_rng(3)
    k = 6
    for trial in range(5):
        n = 200
        probs = rng.dirichlet(np.ones(k) * 0.5, n)
        probs[:, 5] *= 0.01                                     # class 5 rarely/never predicted
        probs /= probs.sum(1, keepdims=True)
        labels = rng.integers(0, 4 + (trial % 2), n)           # class 4/5 sometimes absent
        m = compute_metrics(probs, labels, probs, BINS)
        maa, waa, kappa = _plain_reference(labels, probs.argmax(1), k)
        assert m["maa"] == pytest.approx(maa) and m["waa"] == pytest.approx(waa)
        assert m["kappa"] == pytest.approx(kappa)


def test_keras_clipping_on_saturated_probabilities():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    d = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    m = compute_metrics(p, np.array([0, 2]), d, BINS)
    # Keras clips to [1e-7, 1 - 1e-7]: -log(1 - 1e-7) for a right saturated row, -log(1e-7) for a zero
    assert m["ce_one_hot"] == pytest.approx((-math.log1p(-1e-7) - math.log(1e-7)) / 2)
    assert m["ce_distr"] == pytest.approx((-.5 * math.log1p(-1e-7) - .5 * math.log(1e-7)
                                           - math.log1p(-1e-7)) / 2)
    assert math.isfinite(m["nll"]) and math.isfinite(m["kl_distr"])


def test_keras_renormalises_rows():
    p = np.array([[0.6004, 0.4], [0.3, 0.7]])                 # first row sums to 1.0004 (tolerated)
    m = compute_metrics(p, np.array([0, 1]), np.array([[1.0, 0], [0, 1.0]]), BINS)
    assert m["ce_one_hot"] == pytest.approx(-(math.log(0.6004 / 1.0004) + math.log(0.7)) / 2)


def test_confidence_override_changes_only_confidence_metrics():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), 300)
    y = rng.integers(0, 4, 300)
    base = compute_metrics(p, y, p, BINS)
    conf = np.full(300, 0.99)
    alt = compute_metrics(p, y, p, BINS, confidence=conf)
    correct = (p.argmax(1) == y).mean()
    assert alt["ece"] == pytest.approx(abs(0.99 - correct))
    assert alt["oa"] == base["oa"] and alt["sce"] == base["sce"] and alt["nll"] == base["nll"]


def test_json_roundtrip_with_nan_as_null():
    from lczldl.fileio import dumps_json

    text = dumps_json(compute_metrics(P, Y, D, BINS))
    back = json.loads(text)
    assert back["oa_ebin1"] is None and back["oa"] == 0.75


@pytest.mark.parametrize("mutate, msg", [
    (lambda p, y, d: (np.where(p == 0.7, np.nan, p), y, d), "NaN"),
    (lambda p, y, d: (p - 0.2, y, d), "negative"),
    (lambda p, y, d: (p * 1.01, y, d), "sum to 1"),
    (lambda p, y, d: (p, y[:3], d), "labels shape"),
    (lambda p, y, d: (p, y + 1, d), "class indices"),
    (lambda p, y, d: (p, y, d[:, :2]), "distributions shape"),
    (lambda p, y, d: (p, y, d * 0.9), "distributions do not sum"),
    (lambda p, y, d: (p[:, 0], y, d), "(N, K)"),
    (lambda p, y, d: (p, y.astype(float) + 0.5, d), "integer"),
])
def test_bad_inputs_raise_one_line_data_error(mutate, msg):
    p, y, d = mutate(P.copy(), Y.copy(), D.copy())
    with pytest.raises(DataError) as err:
        compute_metrics(p, y, d, BINS, where="runs/onehot/seed0")
    assert msg in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, LczldlError)
    assert "runs/onehot/seed0" in str(err.value)
