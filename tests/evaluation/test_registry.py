"""The metric and method registry: it names every key the evaluation writes, directions follow the
definitions, the significance rule and the number formats by hand."""

from __future__ import annotations

import math

import numpy as np

from lczldl.evaluation import registry as G
from lczldl.evaluation.metrics import METRIC_KEYS, compute_metrics


def test_every_computed_key_is_registered_in_csv_order():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), 50)
    keys = list(compute_metrics(p, p.argmax(1), p))
    assert keys == list(METRIC_KEYS) == list(G.keys(G.PAPER, G.EXTRA, G.ENTROPY_BIN))
    assert G.keys(G.PAPER) == ("oa", "maa", "waa", "kappa", "ce_one_hot", "ce_distr", "ece", "mce", "sce")
    assert G.keys(G.OTHER) == ("temperature", "mean_mutual_info", "mean_predictive_entropy")
    assert G.order_metrics(["zeta", "ece", "oa", "alpha"]) == ["oa", "ece", "zeta", "alpha"]


def test_directions():
    higher = {"oa", "maa", "waa", "kappa", "balanced_accuracy", "macro_f1", "entropy_spearman"}
    for k, m in G.METRICS.items():
        if m.group == G.OTHER or k in ("mean_confidence", "overconfidence"):
            assert G.higher_is_better(k) is None, k
        elif k in higher or k.startswith("oa_ebin"):
            assert G.higher_is_better(k) is True, k
        else:
            assert G.higher_is_better(k) is False, k              # errors, losses, divergences
    assert G.higher_is_better("not_a_metric") is None


def test_methods_order_and_files():
    assert list(G.METHODS) == ["plain", "temperature", "mc_dropout", "ensemble"]
    assert G.PER_SEED_METHODS == ("plain", "temperature", "mc_dropout")
    assert [G.METHODS[m].metrics_file for m in G.PER_SEED_METHODS] == [
        "metrics.json", "metrics_ts.json", "metrics_mc.json"]
    assert G.method_label("mc_dropout") == "MC dropout" and G.method_label("other") == "other"


def test_significance_and_formats():
    assert G.significant(0.01, 0.2) and G.significant(-0.3, -0.001)
    assert not G.significant(-0.01, 0.02) and not G.significant(0.0, 0.1)   # touching 0 is not enough
    assert not G.significant(math.nan, math.nan) and not G.significant(0.1, math.nan)
    assert G.fmt_mean_std(0.81234, 0.01) == "0.8123 ± 0.0100"
    assert G.fmt_mean_std(0.81234, math.nan) == "0.8123" and G.fmt_mean_std(math.nan, 0.1) == "–"
    assert G.fmt_signed(0.00404) == "+0.0040" and G.fmt_signed(-0.0312) == "-0.0312"
    assert G.fmt_interval(-0.05, -0.01) == "[-0.0500, -0.0100]" and G.fmt_interval(math.nan, 1.0) == "–"
