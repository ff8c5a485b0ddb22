"""Selective prediction and uncertainty signals: AURC, E-AURC, accuracy at a coverage and the
tie rule by hand, AUROC against sklearn, weighted (bootstrap) forms equal to explicit resamples,
ensemble disagreement by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.distributions import spearman
from lczldl.evaluation.intervals import bootstrap_counts, bootstrap_indices
from lczldl.evaluation.selective import (
    accuracy_at_coverage,
    aurc,
    ensemble_disagreement,
    error_auroc,
    risk_coverage_curve,
    selective_metrics,
    signal_metrics,
    uncertainty_signals,
)


def test_aurc_by_hand():
    conf = np.array([0.6, 0.9, 0.7, 0.8])                 # sorted: 0.9 T, 0.8 F, 0.7 T, 0.6 F
    correct = np.array([False, True, True, False])
    a, ea = aurc(conf, correct)
    assert a == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    assert ea == pytest.approx(a - (0 + 0 + 1 / 3 + 2 / 4) / 4)     # perfect: both correct first
    cov, risk = risk_coverage_curve(conf, correct)
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 2 / 4])


def test_ties_take_the_expected_risk_and_ignore_input_order():
    conf = np.array([0.9, 0.9, 0.5])
    correct = np.array([True, False, True])
    # orders of the tied pair: risks (0, 1/2, 1/3) and (1, 1/2, 1/3); expectation (1/2, 1/2, 1/3)
    a, _ = aurc(conf, correct)
    assert a == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert aurc(conf[::-1], correct[::-1])[0] == pytest.approx(a)
    np.testing.assert_allclose(risk_coverage_curve(conf, correct)[1], [0.5, 0.5, 1 / 3])


def test_accuracy_at_coverage_by_hand():
    conf = np.linspace(1.0, 0.1, 10)
    correct = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert accuracy_at_coverage(conf, correct, 0.8) == pytest.approx(6 / 8)
    assert accuracy_at_coverage(conf, correct, 0.9) == pytest.approx(6 / 9)
    assert accuracy_at_coverage(conf, correct, 0.85) == pytest.approx(6 / 9)        # ceil(8.5) = 9
    # k = 2 falls inside the tied group {0.8 x 3} with 2 errors: risk (0 + 1 * 2/3) / 2
    tied = np.array([1.0, 0.8, 0.8, 0.8, 0.2])
    assert accuracy_at_coverage(tied, np.array([1, 1, 0, 0, 1], bool), 0.4) == pytest.approx(2 / 3)


def test_error_auroc_matches_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.7
    u = np.round(rng.random(500) + 0.3 * ~correct, 1)        # coarse values: many ties
    assert error_auroc(u, correct) == pytest.approx(sk.roc_auc_score(~correct, u), abs=1e-12)
    assert math.isnan(error_auroc(u, np.ones(500, bool)))
    # by hand: errors {0.9, 0.5}, correct {0.5, 0.1}: pairs (0.9>0.5), (0.9>0.1), tie, (0.5>0.1)
    assert error_auroc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([0, 0, 1, 1], bool)) == pytest.approx(3.5 / 4)


def test_weighted_forms_equal_explicit_resamples():
    rng = np.random.default_rng(1)
    n = 300
    conf = np.round(rng.random(n), 2)                       # ties between distinct images
    correct = rng.random(n) < conf
    ent = np.round(rng.random(n) * 1.5, 1)
    idx, w = bootstrap_indices(n, 15, seed=4), bootstrap_counts(n, 15, seed=4)
    a, ea = aurc(conf, correct, w)
    acc = accuracy_at_coverage(conf, correct, 0.8, w)
    auc = error_auroc(1 - conf, correct, w)
    sig = signal_metrics({"max_prob": 1 - conf}, correct, ent, w)["max_prob"]
    for b in range(15):
        i = idx[b]
        assert a[b] == pytest.approx(aurc(conf[i], correct[i])[0], abs=1e-12)
        assert ea[b] == pytest.approx(aurc(conf[i], correct[i])[1], abs=1e-12)
        assert acc[b] == pytest.approx(accuracy_at_coverage(conf[i], correct[i], 0.8), abs=1e-12)
        assert auc[b] == pytest.approx(error_auroc(1 - conf[i], correct[i]), abs=1e-12)
        assert sig["spearman"][b] == pytest.approx(spearman(1 - conf[i], ent[i]), abs=1e-12)


def test_ensemble_disagreement_by_hand():
    m1 = np.array([[1.0, 0.0], [0.9, 0.1]])
    m2 = np.array([[0.5, 0.5], [0.2, 0.8]])
    m3 = np.array([[0.5, 0.5], [0.6, 0.4]])
    kl = ensemble_disagreement([m1, m2])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert kl[0] == pytest.approx(h - math.log(2) / 2)       # H(mean) - mean H
    # the identity: mean over members of KL(p_m || mean)
    mean = (m1 + m2) / 2
    direct = np.mean([(m * np.log(np.where(m > 0, m, 1) / mean)).sum(1) for m in (m1, m2)], axis=0)
    np.testing.assert_allclose(kl, direct, atol=1e-12)
    vote = ensemble_disagreement([m1, m2, m3], kind="vote")
    assert vote.tolist() == [0.0, pytest.approx(1 / 3)]      # row 1: mean (0.567, 0.433), member 2 says 1


def test_signals_and_selective_keys():
    p = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    s = uncertainty_signals(p, mutual_info=np.array([0.1, 0.2, 0.0]), members=[p, p])
    assert sorted(s) == ["disagreement", "entropy", "max_prob", "mutual_info"]
    np.testing.assert_allclose(s["max_prob"], [0.3, 0.5, 0.2])
    np.testing.assert_allclose(s["disagreement"], 0.0, atol=1e-12)
    out = selective_metrics(p, np.array([0, 1, 1]))
    assert sorted(out) == ["acc_at_80", "acc_at_90", "aurc", "eaurc"]
    # correctness 1, 0 (tie -> class 0), 1 sorted by confidence 0.8, 0.7, 0.5: risks 0, 0, 1/3
    assert out["aurc"] == pytest.approx((0 + 0 + 1 / 3) / 3) and out["eaurc"] == pytest.approx(0.0)
