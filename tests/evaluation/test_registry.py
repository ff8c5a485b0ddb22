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
    keys = list(compute_metrics(p, p.argmax(1), p, n_bins=20))   # the paper's bins; keys do not depend on them
    assert keys == list(METRIC_KEYS) == list(G.keys(G.PAPER, G.EXTRA, G.ENTROPY_BIN))
    assert G.keys(G.PAPER) == ("oa", "maa", "waa", "kappa", "ce_one_hot", "ce_distr", "ece", "mce", "sce")
    assert G.keys(G.OTHER) == ("temperature", "mean_mutual_info", "mean_predictive_entropy")
    assert G.order_metrics(["zeta", "ece", "oa", "alpha"]) == ["oa", "ece", "zeta", "alpha"]


def test_directions():
    higher = {"oa", "maa", "waa", "kappa", "balanced_accuracy", "macro_f1", "entropy_spearman", "acc_at_80", "oa_u", "oa_bu",
              "acc_at_90"}
    for k, m in G.METRICS.items():
        if m.group == G.CONFORMAL:          # coverage is set by the level and vote coverage grows with the set
            want = {"coverage": None, "set_size": False, "vote_coverage": None, "plausible_jaccard": True}
            assert G.higher_is_better(k) is want[k.split("_", 2)[2]], k
        elif m.group == G.CONFORMAL_VOTES:  # the calibrated coverages are descriptive; sizes, gaps lower
            stat = k.removeprefix(G.VOTE_SET_PREFIX).split("_", 2)[2]
            assert G.higher_is_better(k) is (None if stat in ("coverage", "vote_coverage") else False), k
        elif m.group == G.SIGNAL:           # a signal should detect errors and follow the experts
            assert G.higher_is_better(k) is True, k
        elif m.group == G.OTHER or k in ("mean_confidence", "overconfidence"):
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


def test_beyond_keys_in_csv_order_and_other_levels():
    conformal = G.keys(G.CONFORMAL)
    assert len(conformal) == 3 * 2 * 4 and conformal[:4] == (
        "lac_90_coverage", "lac_90_set_size", "lac_90_vote_coverage", "lac_90_plausible_jaccard")
    assert conformal[-1] == "raps_95_plausible_jaccard"
    assert G.keys(G.SELECTIVE) == ("aurc", "eaurc", "acc_at_80", "acc_at_90")
    assert G.keys(G.SIGNAL) == ("auroc_max_prob", "auroc_entropy", "auroc_mutual_info", "auroc_disagreement",
                                "spearman_max_prob", "spearman_mutual_info", "spearman_disagreement")
    assert G.SIGNAL_SPEARMAN["entropy"] == "entropy_spearman"        # compute_metrics' own, not repeated
    voted = G.keys(G.CONFORMAL_VOTES)
    assert len(voted) == 3 * 2 * 4 + 3 * 2 * 7 and voted[:5] == (
        "lac_90_covgap_label", "lac_90_covgap_votes", "lac_90_sscv_label", "lac_90_sscv_votes", "aps_90_covgap_label")
    assert voted[24:27] == ("votecal_lac_90_vote_coverage", "votecal_lac_90_coverage", "votecal_lac_90_set_size")
    assert list(G.METRICS)[-len(conformal) - len(voted) - 11:][:len(conformal) + len(voted)] == [*conformal, *voted]
    m = G.metric("aps_97.5_set_size")
    assert m is not None and m.group == G.CONFORMAL and m.label == "APS 97.5 %: mean set size"
    assert G.higher_is_better("aps_97.5_set_size") is False and G.metric("aps_97.5_size") is None
    assert G.conformal_key("raps", 0.95, "coverage") == "raps_95_coverage"
    assert G.vote_conformal_key("aps", 0.9, "sscv_votes") == "votecal_aps_90_sscv_votes"
    m = G.metric("votecal_raps_97.5_covgap_votes")
    assert m is not None and m.group == G.CONFORMAL_VOTES and m.label == (
        "RAPS 97.5 % calibrated on the votes: CovGap vs the votes")
    m = G.metric("lac_80_sscv_label")
    assert m is not None and m.group == G.CONFORMAL_VOTES and m.label == "LAC 80 %: SSCV vs the majority label"
    assert G.metric("votecal_lac_90_plausible_jaccard") is None          # not a number of these sets
    assert G.fmt_mean_interval(0.81234, 0.8, 0.825) == "0.8123 [0.8000, 0.8250]"
    assert G.fmt_mean_interval(0.81234, math.nan, math.nan) == "0.8123"
