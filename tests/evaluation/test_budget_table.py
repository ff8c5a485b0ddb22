"""The vote-budget table's rows by hand: mean over seeds and the Student t interval (t = 12.706 for
2 seeds), NaN-free means, the counts of a budget record (every vote: the splits' sizes and zeros)."""

from __future__ import annotations

import math

import pytest

from lczldl.config import EvaluationConfig
from lczldl.evaluation.budget import budget_metrics, budget_rows, k_label, split_counts


def test_rows_by_hand():
    values = {"1": {"dist": [{"oa": 0.5, "ece": 0.1}, {"oa": 0.7, "ece": float("nan")}],
                    "onehot": [{"oa": 0.6, "ece": 0.2}]},
              "all": {"onehot": [{"oa": 0.8, "ece": 0.05}, {"oa": 0.9, "ece": 0.07}]}}
    counts = {"1": {"train_kept": 9}, "all": {"train_kept": 10}}
    rows = budget_rows(values, counts, ["oa", "ece"], "panel", 3)
    assert [(r["k"], r["regime"], r["n_runs"], r["mode"], r["seed"]) for r in rows] == [
        ("1", "onehot", 1, "panel", 3), ("1", "dist", 2, "panel", 3), ("all", "onehot", 2, "", "")]
    dist = rows[1]
    half = 12.706204736 * math.sqrt(((0.5 - 0.6) ** 2 + (0.7 - 0.6) ** 2) / 1) / math.sqrt(2)
    assert dist["oa_mean"] == pytest.approx(0.6) and dist["train_kept"] == 9
    assert (dist["oa_lo"], dist["oa_hi"]) == pytest.approx((0.6 - half, 0.6 + half), rel=1e-8)
    assert dist["ece_mean"] == pytest.approx(0.1) and math.isnan(dist["ece_lo"])     # one finite seed
    assert math.isnan(rows[0]["oa_lo"]) and rows[0]["oa_mean"] == 0.6


def test_counts_metrics_and_labels():
    rec = {"train": {"kept": 7, "short_rows": 2, "no_urban_rows": 1, "dropped": {"non_urban_majority": 3}},
           "val": {"kept": 4, "short_rows": 0, "no_urban_rows": 0, "dropped": {"non_urban_majority": 1}}}
    assert split_counts(rec, {}) == {"train_kept": 7, "train_short_rows": 2, "train_no_urban_rows": 1,
                                     "train_non_urban_majority": 3, "val_kept": 4, "val_short_rows": 0,
                                     "val_no_urban_rows": 0, "val_non_urban_majority": 1}
    assert split_counts(None, {"train": 11, "val": 5})["train_kept"] == 11
    assert budget_metrics(EvaluationConfig(conformal_levels=[0.95, 0.8])) == (
        "ce_distr", "ece", "aps_80_vote_coverage", "oa")
    assert (k_label(None), k_label(3)) == ("all", "3")
