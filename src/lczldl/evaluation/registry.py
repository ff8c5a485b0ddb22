"""Owns the vocabulary of results: every metric once (key, label, direction, group, digits), the
post-hoc methods (order, label, metrics file), the uncertainty signals, the significance rule of a
paired interval and how numbers are written in tables. Evaluation (metrics, summary), figures and
the report read it.

Order matters: :data:`METRICS` is the column order of summary.csv (``METRIC_KEYS`` of
:func:`lczldl.evaluation.metrics.compute_metrics`, then the descriptive numbers the methods' files
add, then the beyond-the-paper headline numbers: conformal sets, selective prediction, uncertainty
signals), and :data:`METHODS` the row order of every table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lczldl import layout
from lczldl.constants import CONFORMAL_LEVELS
from lczldl.distributions import N_ENTROPY_BINS, entropy_bin_labels
from lczldl.evaluation.conformal import SCORES, set_name
from lczldl.evaluation.selective import COVERAGES, coverage_key

HIGHER, LOWER, DESCRIPTIVE = "higher", "lower", "descriptive"
#: metric groups: the paper's table, further metrics, per vote-entropy bin, descriptive numbers
#: written beside the metrics (not computed by compute_metrics); beyond the paper: conformal
#: prediction sets, selective prediction, uncertainty signals (lczldl.evaluation.beyond)
PAPER, EXTRA, ENTROPY_BIN, OTHER = "paper", "extra", "entropy_bin", "descriptive"
#: the LCZ community's accuracies of a map over all 17 classes (computed for 17-class predictions only)
LCZ = "lcz"
CONFORMAL, SELECTIVE, SIGNAL = "conformal", "selective", "signal"
#: beyond the paper: sets calibrated on the experts' votes (lczldl.evaluation.conformal_votes) and how
#: evenly both kinds of set keep their promise (CovGap, SSCV against the label and the votes)
CONFORMAL_VOTES = "conformal_votes"
#: conformal scores (lczldl.evaluation.conformal.SCORES) and their display names
SCORE_LABELS: dict[str, str] = {s: s.upper() for s in SCORES}
#: headline numbers of a conformal set (set_metrics keys): label and direction. Coverage is
#: calibrated to the level (not ranked); vote coverage grows with the set size (not ranked)
CONFORMAL_STATS: dict[str, tuple[str, str]] = {
    "coverage": ("coverage of the majority label", DESCRIPTIVE),
    "set_size": ("mean set size", LOWER),
    "vote_coverage": ("vote coverage", DESCRIPTIVE),
    "plausible_jaccard": ("Jaccard with the experts' plausible set", HIGHER),
}
#: the conformal headline numbers judged against the experts' votes (none without votes)
VOTE_CONFORMAL_STATS: tuple[str, ...] = ("vote_coverage", "plausible_jaccard", "covgap_votes", "sscv_votes")
#: how evenly a set keeps its level (lczldl.evaluation.conformal.conditional_set_metrics): label and
#: direction; the sets of both kinds report them
CONDITIONAL_STATS: dict[str, tuple[str, str]] = {
    "covgap_label": ("CovGap vs the majority label", LOWER),
    "covgap_votes": ("CovGap vs the votes", LOWER),
    "sscv_label": ("SSCV vs the majority label", LOWER),
    "sscv_votes": ("SSCV vs the votes", LOWER),
}
#: headline numbers of a set calibrated on the votes: label and direction (vote coverage is what
#: the calibration targets, so it is descriptive like the standard sets' coverage)
VOTE_SET_STATS: dict[str, tuple[str, str]] = {
    "vote_coverage": ("vote coverage", DESCRIPTIVE),
    "coverage": ("coverage of the majority label", DESCRIPTIVE),
    "set_size": ("mean set size", LOWER),
    **CONDITIONAL_STATS,
}
#: prefix of the sets calibrated on the votes: "votecal_aps_90" beside the standard "aps_90"
VOTE_SET_PREFIX = "votecal_"
#: uncertainty signals (larger = less sure) and their display names
SIGNALS: dict[str, str] = {"max_prob": "1 - max p", "entropy": "predictive entropy",
                           "mutual_info": "MC-dropout mutual info", "disagreement": "ensemble disagreement"}
#: decimals of every number in the summary tables and the report
DIGITS = 4


@dataclass(frozen=True)
class Metric:
    """One metric. ``direction``: "higher" / "lower" is better, or "descriptive" (not ranked)."""

    key: str
    label: str
    direction: str
    group: str
    #: depends on the top-label confidence (``compute_metrics(confidence=...)`` changes it)
    confidence: bool = False
    #: needs the experts' votes (a vote distribution, vote entropy or the votes themselves): left out
    #: for a store without votes (So2Sat LCZ42)
    votes: bool = False
    digits: int = DIGITS

    @property
    def higher_is_better(self) -> bool | None:
        """True / False, or None for a descriptive number."""
        return None if self.direction == DESCRIPTIVE else self.direction == HIGHER


def _m(key: str, label: str, direction: str, group: str, confidence: bool = False, votes: bool = False) -> Metric:
    return Metric(key, label, direction, group, confidence, votes)


def conformal_key(score: str, level: float, stat: str) -> str:
    """Summary column of a conformal set's headline number, e.g. ("aps", 0.9, "set_size") ->
    "aps_90_set_size" (the set's name, "aps_90", is lczldl.evaluation.conformal.set_name)."""
    return f"{set_name(score, level)}_{stat}"


def vote_set_name(score: str, level: float) -> str:
    """Name of the set calibrated on the votes of a score at a level, e.g. ("aps", 0.9) -> "votecal_aps_90"."""
    return f"{VOTE_SET_PREFIX}{set_name(score, level)}"


def vote_conformal_key(score: str, level: float, stat: str) -> str:
    """Summary column of a vote-calibrated set's headline number, e.g. ("aps", 0.9, "set_size") ->
    "votecal_aps_90_set_size"."""
    return f"{vote_set_name(score, level)}_{stat}"


_BIN_LABELS = entropy_bin_labels()
#: Every metric, in summary.csv column order (definitions: docs/metrics.md).
METRICS: dict[str, Metric] = {m.key: m for m in (
    _m("oa", "overall accuracy", HIGHER, PAPER),
    _m("maa", "macro precision (maa)", HIGHER, PAPER),
    _m("waa", "weighted precision (waa)", HIGHER, PAPER),
    _m("kappa", "Cohen's kappa", HIGHER, PAPER),
    _m("ce_one_hot", "CE vs one-hot", LOWER, PAPER),
    _m("ce_distr", "CE vs vote distribution", LOWER, PAPER, votes=True),
    _m("ece", "ECE", LOWER, PAPER, confidence=True),
    _m("mce", "MCE", LOWER, PAPER, confidence=True),
    _m("sce", "SCE (seed)", LOWER, PAPER),
    _m("oa_u", "OA_u (accuracy on urban LCZ 1-10)", HIGHER, LCZ),
    _m("oa_bu", "OA_bu (built 1-10 vs natural 11-17)", HIGHER, LCZ),
    _m("balanced_accuracy", "balanced accuracy", HIGHER, EXTRA),
    _m("macro_f1", "macro F1", HIGHER, EXTRA),
    _m("classwise_ece", "classwise ECE", LOWER, EXTRA),
    _m("adaptive_ece", "adaptive ECE", LOWER, EXTRA, confidence=True),
    _m("mean_confidence", "mean confidence", DESCRIPTIVE, EXTRA, confidence=True),
    _m("overconfidence", "over-confidence (mean confidence - oa)", DESCRIPTIVE, EXTRA, confidence=True),
    _m("brier_one_hot", "Brier vs one-hot", LOWER, EXTRA),
    _m("brier_distr", "Brier vs vote distribution", LOWER, EXTRA, votes=True),
    _m("nll", "NLL", LOWER, EXTRA),
    _m("kl_distr", "KL(votes || prediction)", LOWER, EXTRA, votes=True),
    _m("js_distr", "JS divergence to the votes", LOWER, EXTRA, votes=True),
    _m("tv_distr", "TV distance to the votes", LOWER, EXTRA, votes=True),
    _m("entropy_spearman", "Spearman(predictive, vote entropy)", HIGHER, EXTRA, votes=True),
    *(_m(f"oa_ebin{b}", f"oa {_BIN_LABELS[b]}", HIGHER, ENTROPY_BIN, votes=True) for b in range(N_ENTROPY_BINS)),
    *(_m(f"ece_ebin{b}", f"ece {_BIN_LABELS[b]}", LOWER, ENTROPY_BIN, confidence=True, votes=True)
      for b in range(N_ENTROPY_BINS)),
    _m("temperature", "temperature T", DESCRIPTIVE, OTHER),
    _m("mean_mutual_info", "mean mutual information (MC dropout)", DESCRIPTIVE, OTHER),
    _m("mean_predictive_entropy", "mean predictive entropy (MC dropout)", DESCRIPTIVE, OTHER),
    *(_m(conformal_key(score, lv, stat), f"{SCORE_LABELS[score]} {100 * lv:g} %: {label}", d, CONFORMAL,
         votes=stat in VOTE_CONFORMAL_STATS)
      for lv in CONFORMAL_LEVELS for score in SCORE_LABELS for stat, (label, d) in CONFORMAL_STATS.items()),
    *(_m(conformal_key(score, lv, stat), f"{SCORE_LABELS[score]} {100 * lv:g} %: {label}", d, CONFORMAL_VOTES,
         votes=stat in VOTE_CONFORMAL_STATS)
      for lv in CONFORMAL_LEVELS for score in SCORE_LABELS for stat, (label, d) in CONDITIONAL_STATS.items()),
    *(_m(vote_conformal_key(score, lv, stat), f"{SCORE_LABELS[score]} {100 * lv:g} % calibrated on the votes: "
         f"{label}", d, CONFORMAL_VOTES, votes=True)
      for lv in CONFORMAL_LEVELS for score in SCORE_LABELS for stat, (label, d) in VOTE_SET_STATS.items()),
    _m("aurc", "AURC (selective risk)", LOWER, SELECTIVE),
    _m("eaurc", "E-AURC (AURC minus the perfect ranking's)", LOWER, SELECTIVE),
    *(_m(coverage_key(c), f"accuracy at {100 * c:g} % coverage", HIGHER, SELECTIVE) for c in COVERAGES),
    *(_m(f"auroc_{sig}", f"AUROC for errors: {label}", HIGHER, SIGNAL) for sig, label in SIGNALS.items()),
    *(_m(f"spearman_{sig}", f"Spearman with vote entropy: {label}", HIGHER, SIGNAL, votes=True)
      for sig, label in SIGNALS.items() if sig != "entropy"),
)}
#: the registered metrics that need the experts' votes (:attr:`Metric.votes`)
VOTE_METRICS: tuple[str, ...] = tuple(k for k, m in METRICS.items() if m.votes)
#: the Spearman correlation of each signal with the vote entropy; the predictive entropy's is
#: ``entropy_spearman`` of compute_metrics (not written twice)
SIGNAL_SPEARMAN: dict[str, str] = {sig: ("entropy_spearman" if sig == "entropy" else f"spearman_{sig}")
                                   for sig in SIGNALS}
_CONFORMAL_KEY = re.compile(r"^(" + VOTE_SET_PREFIX + r")?(" + "|".join(SCORE_LABELS) + r")_(\d+(?:\.\d+)?)_("
                            + "|".join({**CONFORMAL_STATS, **VOTE_SET_STATS}) + r")$")


def metric(key: str) -> Metric | None:
    """The registered metric ``key``; a conformal headline number (either kind of set) at a level
    outside the defaults (``evaluation.conformal_levels``) is described on the fly; None for
    anything else."""
    if key in METRICS:
        return METRICS[key]
    m = _CONFORMAL_KEY.match(key)
    if m is None:
        return None
    voted, score, level, stat = m.groups()
    if voted:
        if stat not in VOTE_SET_STATS:
            return None
        label, direction = VOTE_SET_STATS[stat]
        return _m(key, f"{SCORE_LABELS[score]} {level} % calibrated on the votes: {label}", direction, CONFORMAL_VOTES,
                  votes=True)
    label, direction = {**CONFORMAL_STATS, **CONDITIONAL_STATS}.get(stat, (None, None))
    if label is None:
        return None
    group = CONFORMAL if stat in CONFORMAL_STATS else CONFORMAL_VOTES
    return _m(key, f"{SCORE_LABELS[score]} {level} %: {label}", direction, group, votes=stat in VOTE_CONFORMAL_STATS)


def keys(*groups: str) -> tuple[str, ...]:
    """Metric keys of the given groups (all groups when none is given), in :data:`METRICS` order."""
    return tuple(k for k, m in METRICS.items() if not groups or m.group in groups)


def order_metrics(found: list[str] | tuple[str, ...]) -> list[str]:
    """Registered keys in :data:`METRICS` order, then unregistered keys in the order found."""
    return [k for k in METRICS if k in found] + [k for k in found if k not in METRICS]


def higher_is_better(key: str) -> bool | None:
    """Direction of a metric: True / False, None when descriptive or not registered."""
    m = metric(key)
    return None if m is None else m.higher_is_better


@dataclass(frozen=True)
class Method:
    """A way of turning a trained run into test predictions."""

    key: str
    label: str
    #: the run's metrics file (layout name); None for the ensemble (one model per regime)
    metrics_file: str | None


#: The method whose model is the mean of a regime's seeds (no per-seed std, no pairing).
ENSEMBLE = "ensemble"
#: The post-hoc methods in table order.
METHODS: dict[str, Method] = {m.key: m for m in (
    Method("plain", "plain", layout.METRICS),
    Method("temperature", "temperature scaling", layout.METRICS_TS),
    Method("mc_dropout", "MC dropout", layout.METRICS_MC),
    Method(ENSEMBLE, "ensemble", None),
)}
#: Methods with one model per seed (a metrics file in each run folder), in table order.
PER_SEED_METHODS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if m.metrics_file)


def method_label(key: str) -> str:
    """Display name of a method (unknown keys pass through)."""
    m = METHODS.get(key)
    return m.label if m else key


def significant(ci_low: float, ci_high: float) -> bool:
    """A paired difference is marked significant when its interval excludes 0 (both ends finite)."""
    return math.isfinite(ci_low) and math.isfinite(ci_high) and (ci_low > 0 or ci_high < 0)


def fmt_mean_std(mean: float, std: float, digits: int = DIGITS) -> str:
    """"0.8123 ± 0.0100" ("0.8123" without a finite std; "–" without a finite mean)."""
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def fmt_mean_interval(mean: float, lo: float, hi: float, digits: int = DIGITS) -> str:
    """"0.8123 [0.8000, 0.8200]" ("0.8123" without a finite interval; "–" without a finite mean)."""
    if not math.isfinite(mean):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_signed(value: float, digits: int = DIGITS) -> str:
    """"+0.0123" / "-0.0123"; "–" when not finite."""
    return f"{value:+.{digits}f}" if math.isfinite(value) else "–"


def fmt_interval(ci_low: float, ci_high: float, digits: int = DIGITS) -> str:
    """"[-0.0200, +0.0300]"; "–" when the interval is undefined (fewer than 2 pairs)."""
    if not math.isfinite(ci_low):
        return "–"
    return f"[{fmt_signed(ci_low, digits)}, {fmt_signed(ci_high, digits)}]"
