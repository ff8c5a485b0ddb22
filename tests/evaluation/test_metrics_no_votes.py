"""Metrics of a store without votes (So2Sat LCZ42, 17 classes): what needs votes is left out (not
NaN), the LCZ community's OA_u / OA_bu on hand-computed cases, per-class precision / recall / F1,
conformal sets and signals without votes; 10-class inputs keep exactly their keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.evaluation import registry as G
from lczldl.evaluation.beyond import evaluate_prediction
from lczldl.evaluation.intervals import bootstrap_counts, bootstrap_indices
from lczldl.evaluation.metrics import (
    METRIC_KEYS,
    compute_metrics,
    lcz_accuracies,
    metric_keys,
    per_class_metrics,
)


def _probs(preds: np.ndarray, k: int, top: float = 0.9) -> np.ndarray:
    p = np.full((len(preds), k), (1 - top) / (k - 1))
    p[np.arange(len(preds)), preds] = top
    return p


# labels / predictions (class index i <-> LCZ i + 1): urban rows 0-2 (1 of 3 right), built-vs-natural
# right in rows 0, 1, 3, 5 (row 2: urban -> natural, row 4: natural -> urban)
LABELS = np.array([0, 0, 9, 10, 16, 12])
PREDS = np.array([0, 3, 12, 10, 5, 13])


def test_oa_u_and_oa_bu_by_hand():
    m = compute_metrics(_probs(PREDS, 17), LABELS, None, n_bins=10)
    assert m["oa_u"] == pytest.approx(1 / 3) and m["oa_bu"] == pytest.approx(4 / 6)
    assert m["oa"] == pytest.approx(2 / 6)
    natural_only = compute_metrics(_probs(np.array([11, 12]), 17), np.array([11, 14]), None, n_bins=10)
    assert math.isnan(natural_only["oa_u"]) and natural_only["oa_bu"] == 1.0    # no urban reference: undefined
    with pytest.raises(ValueError, match="17 x 17"):
        lcz_accuracies(np.eye(10))


def test_oa_u_oa_bu_under_bootstrap_weights_equal_the_resamples():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 17, 60)
    preds = np.where(rng.random(60) < 0.5, labels, rng.integers(0, 17, 60))
    probs = _probs(preds, 17)
    w = compute_metrics(probs, labels, None, n_bins=10, weights=bootstrap_counts(60, 5, seed=1))
    for b, idx in enumerate(bootstrap_indices(60, 5, seed=1)):
        one = compute_metrics(probs[idx], labels[idx], None, n_bins=10)
        for key in ("oa_u", "oa_bu", "oa", "nll"):
            assert w[key][b] == pytest.approx(one[key], rel=1e-12, abs=1e-12), key


def test_without_votes_the_vote_metrics_are_absent_and_the_rest_unchanged():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(17), 80)
    labels = rng.integers(0, 17, 80)
    dist = rng.dirichlet(np.ones(17), 80)
    without = compute_metrics(probs, labels, None, n_bins=15)
    with_votes = compute_metrics(probs, labels, dist, n_bins=15)
    assert list(without) == list(metric_keys(17, votes=False))
    assert not set(without) & set(G.VOTE_METRICS) and {"ce_distr", "oa_ebin0", "entropy_spearman"} <= set(with_votes)
    assert {"oa_u", "oa_bu"} <= set(without)
    for k, v in without.items():                                   # the vote distribution changes none of them
        assert v == with_votes[k] or (math.isnan(v) and math.isnan(with_votes[k])), k


def test_ten_classes_keep_their_keys():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(10), 30)
    assert list(compute_metrics(p, p.argmax(1), p, n_bins=20)) == list(METRIC_KEYS)   # no oa_u / oa_bu columns
    assert not {"oa_u", "oa_bu"} & set(compute_metrics(p, p.argmax(1), None, n_bins=20))


def test_per_class_by_hand():
    pc = per_class_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 4)
    assert pc["support"] == [2, 1, 1, 0]
    assert pc["precision"] == [1.0, pytest.approx(1 / 3), None, None]    # class 2, 3 never predicted
    assert pc["recall"] == [0.5, 1.0, 0.0, None]                          # class 3 has no test image
    assert pc["f1"] == [pytest.approx(2 / 3), pytest.approx(0.5), None, None]


def test_conformal_sets_and_signals_without_votes():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 17, 200)
    probs = 0.6 * np.eye(17)[labels] + 0.4 * rng.dirichlet(np.ones(17), 200)
    head, detail, sets, signals, _ = evaluate_prediction(probs[100:], labels[100:], None, None,
                                                      cal_probs=probs[:100], cal_labels=labels[:100], levels=[0.9])
    lac = sets[("lac", 0.9)][0]
    assert head["lac_90_coverage"] == pytest.approx(lac[np.arange(100), labels[100:]].mean())   # by hand
    assert head["lac_90_set_size"] == pytest.approx(lac.sum(1).mean()) and head["lac_90_coverage"] >= 0.8
    assert not [k for k in head if G.metric(k) is not None and G.metric(k).votes]     # no vote coverage / Spearman
    assert "auroc_max_prob" in head and "spearman_max_prob" not in head
    assert "ebin" not in detail["counts"] and len(detail["counts"]["class"]) == 17
    assert set(detail["sets"]["lac_90"]) >= {"coverage", "set_size", "coverage_cls16"}
    assert "vote_coverage" not in detail["sets"]["lac_90"] and "set_size_ebin0" not in detail["sets"]["lac_90"]
    assert set(detail["signals"]["entropy"]) == {"auroc"}
