"""Owns split conformal prediction sets (LAC, APS, RAPS) and how they are judged against the experts'
votes: coverage, set size, vote coverage, agreement with the experts' plausible set. Pure numpy.

Conventions (docs/beyond_the_paper.md):
- Calibrate on validation, evaluate on test; labels are the majority-vote class indices.
- Scores s(x, y), larger = less conforming; the set of a test image is {y : s(x, y) <= q_hat}
  (so any score may give an empty set). Classes are ranked by descending probability, ties by
  the lower class index.
  LAC: 1 - p_y.  APS: the probability mass of the classes ranked at or above y (deterministic,
  default), or randomised (Romano et al. 2020) mass ranked strictly above y + u p_y with one
  u ~ U(0, 1) per image.  RAPS (Angelopoulos et al. 2021): APS + lambda * max(0, rank(y) - k_reg),
  rank 1 = top class.
- q_hat: the ceil((n + 1)(1 - alpha))-th smallest of the n calibration scores of the true labels
  (the exact finite-sample order statistic; coverage >= 1 - alpha for exchangeable data); +inf
  (every set = all classes) when that index exceeds n.
- Judged against votes in the store's format (N, 11) LCZ ids: only urban votes LCZ 1..10 count, as
  in the vote distribution; vote entropy and its paper bins come from that distribution.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lczldl.constants import CONFORMAL_LEVELS
from lczldl.data.labels import vote_counts
from lczldl.distributions import N_ENTROPY_BINS, entropy_bin, entropy_nats
from lczldl.evaluation.intervals import as_weights, weighted_group_means, weighted_means

SCORES: tuple[str, ...] = ("lac", "aps", "raps")
#: coverage levels 1 - alpha evaluated by default (``evaluation.conformal_levels``)
DEFAULT_LEVELS: tuple[float, ...] = CONFORMAL_LEVELS
#: RAPS penalty per class beyond the k_reg most probable ones (Angelopoulos et al. 2021 tune
#: lambda in {0.001, 0.01, 0.1, 0.2, 0.5}; 0.01 is their usual choice)
RAPS_LAMBDA = 0.01
#: RAPS: classes allowed without penalty; 2 = the size of the typical experts' plausible set
RAPS_K_REG = 2
#: a class is in the experts' plausible set when it has at least this share of the urban votes
#: (2 of 11 votes = 0.18 is in, a single dissenting vote of 11 = 0.09 is not)
PLAUSIBLE_SHARE = 0.15
#: set-size strata (inclusive size ranges) of the size-stratified coverage violation: 1, 2, 3 and
#: 4 or more classes; an empty set counts with the singletons, as in the first stratum "0-1" of
#: Angelopoulos et al. (2021) and TorchCP's SSCV
SSCV_STRATA: tuple[tuple[int, float], ...] = ((0, 1), (2, 2), (3, 3), (4, math.inf))


def set_name(score: str, level: float) -> str:
    """Name of a score at a level, e.g. ("lac", 0.9) -> "lac_90", ("aps", 0.975) -> "aps_97.5"."""
    return f"{score}_{round(100 * level, 6):g}"


def class_ranks(probs: np.ndarray) -> np.ndarray:
    """(N, K) probabilities -> (N, K) int64 rank of each class, 1 = most probable; ties by the
    lower class index first."""
    order = np.argsort(-np.asarray(probs, dtype=np.float64), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
    return ranks


def conformity_scores(probs: np.ndarray, score: str = "lac", *, u: np.ndarray | None = None,
                      lam: float = RAPS_LAMBDA, k_reg: int = RAPS_K_REG) -> np.ndarray:
    """(N, K) score of every class for every image (see the module docstring). ``u`` (N,) in
    [0, 1] randomises APS / RAPS; None = deterministic (mass ranked at or above the class)."""
    p = np.asarray(probs, dtype=np.float64)
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if score == "lac":
        return 1.0 - p
    order = np.argsort(-p, axis=1, kind="stable")
    cum_sorted = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    cum = np.empty_like(cum_sorted)
    np.put_along_axis(cum, order, cum_sorted, axis=1)          # mass ranked at or above y
    s = cum if u is None else cum - (1.0 - np.asarray(u, dtype=np.float64)[:, None]) * p
    if score == "raps":
        s = s + lam * np.maximum(0, class_ranks(p) - int(k_reg))
    return s


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """q_hat = the ceil((n + 1) * level)-th smallest of the n calibration scores; +inf when that
    index exceeds n (too few calibration points for the level)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if s.size == 0:
        raise ValueError("no calibration scores")
    k = math.ceil((s.size + 1) * level - 1e-12)        # guard (n+1)*level landing a hair above an integer
    return float("inf") if k > s.size else float(s[k - 1])


def split_conformal(cal_probs: np.ndarray, cal_labels: np.ndarray, test_probs: np.ndarray, *,
                    score: str = "lac", level: float = 0.9, randomized: bool = False, seed: int = 0,
                    lam: float = RAPS_LAMBDA, k_reg: int = RAPS_K_REG,
                    u_cal: np.ndarray | None = None, u_test: np.ndarray | None = None
                    ) -> tuple[np.ndarray, float]:
    """Split conformal sets: calibrate q_hat on (cal_probs, cal_labels), return the (N_test, K) bool
    sets of test_probs and q_hat. ``randomized`` draws u for calibration then test from
    np.random.default_rng(seed) (or takes ``u_cal`` / ``u_test``); LAC ignores it."""
    cal_labels = np.asarray(cal_labels, dtype=np.int64)
    if randomized and score != "lac":
        rng = np.random.default_rng(seed)
        u_cal = rng.uniform(size=len(cal_labels)) if u_cal is None else u_cal
        u_test = rng.uniform(size=len(test_probs)) if u_test is None else u_test
    else:
        u_cal = u_test = None
    cal = conformity_scores(cal_probs, score, u=u_cal, lam=lam, k_reg=k_reg)
    qhat = conformal_quantile(cal[np.arange(len(cal_labels)), cal_labels], level)
    return conformity_scores(test_probs, score, u=u_test, lam=lam, k_reg=k_reg) <= qhat, qhat


def urban_vote_counts(votes: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """(N, E) store votes -> (N, K) float64 counts of the urban votes LCZ 1..K (0 and others dropped)."""
    return vote_counts(votes)[:, :num_classes].astype(np.float64)


def urban_vote_shares(votes: np.ndarray, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(N, E) store votes -> ((N, K) float64 share of each urban class among the image's urban
    votes, zeros for a row without urban votes; (N,) bool: the row has at least one urban vote)."""
    counts = urban_vote_counts(votes, num_classes)
    tot = counts.sum(axis=1, keepdims=True)
    return counts / np.where(tot > 0, tot, 1.0), tot[:, 0] > 0


def set_features(sets: np.ndarray, labels: np.ndarray, votes: np.ndarray | None,
                 plausible_share: float = PLAUSIBLE_SHARE) -> dict[str, np.ndarray]:
    """Per-image quantities behind :func:`set_metrics` ((N,) arrays): covered, size, empty,
    vote_coverage (share of the image's urban votes whose class is in the set), plausible_jaccard
    (|set & P| / |set | P|, 1 when both are empty), plausible_exact (set == P), plausible_size,
    with P = classes with vote share >= plausible_share; plus label and ebin (vote-entropy bin).
    Without ``votes`` (a store without votes) only covered, size, empty and label."""
    sets = np.asarray(sets, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = sets.shape
    if votes is None:
        return {"covered": sets[np.arange(n), labels].astype(np.float64),
                "size": sets.sum(axis=1).astype(np.float64),
                "empty": (~sets.any(axis=1)).astype(np.float64), "label": labels}
    shares, voted = urban_vote_shares(votes, k)
    dist = np.where(voted[:, None], shares, np.nan)
    plaus = dist >= plausible_share - 1e-12
    inter = (sets & plaus).sum(axis=1)
    union = (sets | plaus).sum(axis=1)
    return {"covered": sets[np.arange(n), labels].astype(np.float64),
            "size": sets.sum(axis=1).astype(np.float64),
            "empty": (~sets.any(axis=1)).astype(np.float64),
            "vote_coverage": np.where(voted, (shares * sets).sum(axis=1), np.nan),
            "plausible_jaccard": np.where(union > 0, inter / np.maximum(union, 1), 1.0),
            "plausible_exact": (sets == plaus).all(axis=1).astype(np.float64),
            "plausible_size": plaus.sum(axis=1).astype(np.float64),
            "label": labels, "ebin": entropy_bin(entropy_nats(np.nan_to_num(dist)))}


def set_metrics(sets: np.ndarray, labels: np.ndarray, votes: np.ndarray | None, *,
                plausible_share: float = PLAUSIBLE_SHARE,
                weights: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of (N, K) bool prediction sets on test, flat dict of floats (NaN where undefined):
    coverage (of the majority label), set_size, empty_share, vote_coverage, plausible_jaccard,
    plausible_exact, plausible_size, coverage_cls{k} per true class k, coverage_ebin{b},
    set_size_ebin{b} and plausible_size_ebin{b} per paper vote-entropy bin; without ``votes`` only
    coverage, set_size, empty_share and coverage_cls{k}. ``weights`` (B, N) (bootstrap counts, see
    lczldl.evaluation.intervals) gives (B,) arrays instead of floats."""
    f = set_features(sets, labels, votes, plausible_share)
    k = np.asarray(sets).shape[1]
    pairs = [(c, key) for c, key in (("covered", "coverage"), ("size", "set_size"), ("empty", "empty_share"),
                                     ("vote_coverage", "vote_coverage"), ("plausible_jaccard", "plausible_jaccard"),
                                     ("plausible_exact", "plausible_exact"), ("plausible_size", "plausible_size"))
             if c in f]
    means = weighted_means(np.stack([f[c] for c, _ in pairs], axis=1), weights)
    out: dict[str, Any] = {key: means[..., j] for j, (_, key) in enumerate(pairs)}
    wt = None if weights is None else np.ascontiguousarray(np.asarray(weights, dtype=np.float64).T)
    by_cls = weighted_group_means(f["covered"], f["label"], k, weights, wt=wt)
    out.update({f"coverage_cls{c}": by_cls[..., c] for c in range(k)})
    if "ebin" in f:
        by_bin = weighted_group_means(np.stack([f["covered"], f["size"], f["plausible_size"]], axis=1), f["ebin"],
                                      N_ENTROPY_BINS, weights, wt=wt)
        out.update({f"coverage_ebin{b}": by_bin[..., b, 0] for b in range(N_ENTROPY_BINS)})
        out.update({f"set_size_ebin{b}": by_bin[..., b, 1] for b in range(N_ENTROPY_BINS)})
        out.update({f"plausible_size_ebin{b}": by_bin[..., b, 2] for b in range(N_ENTROPY_BINS)})
    return {key: (float(v) if weights is None else v) for key, v in out.items()}


def size_stratum(size: np.ndarray) -> np.ndarray:
    """(N,) set sizes -> (N,) int64 index into :data:`SSCV_STRATA` (0: size 0-1, 1: 2, 2: 3, 3: >= 4)."""
    lows = np.array([lo for lo, _ in SSCV_STRATA[1:]])
    return np.searchsorted(lows, np.asarray(size, dtype=np.float64), side="right").astype(np.int64)


def _coverage_gap(cov: np.ndarray, target: float, reduce: str) -> np.ndarray:
    """Mean ("mean") or max ("max") over the last axis of |cov - target|, skipping NaN (empty
    groups); NaN when every group is empty."""
    gap = np.abs(np.asarray(cov, dtype=np.float64) - target)
    fin = np.isfinite(gap)
    if reduce == "mean":
        num, cnt = np.where(fin, gap, 0.0).sum(axis=-1), fin.sum(axis=-1)
        return np.where(cnt > 0, num / np.maximum(cnt, 1), np.nan)
    return np.where(fin.any(axis=-1), np.where(fin, gap, -np.inf).max(axis=-1), np.nan)


def conditional_set_metrics(sets: np.ndarray, labels: np.ndarray, votes: np.ndarray | None, level: float, *,
                            weights: np.ndarray | None = None) -> dict[str, Any]:
    """How evenly (N, K) bool prediction sets on test keep their promise ``level`` (= 1 - alpha),
    against the majority label and against the experts' votes; flat dict of floats (NaN where
    undefined), or (B,) arrays under (B, N) bootstrap image counts ``weights`` (as set_metrics).

    - ``covgap_label``: CovGap (Ding et al. 2023, "Class-conditional conformal prediction with many
      classes"; TorchCP's ``CovGap``, which reports it in percent) = mean over the classes k that
      have test images of |coverage of the images of majority class k - level|.
    - ``covgap_votes``: the same with the votes as ground truth: each urban vote counts for its own
      class, weighted 1 / (urban votes of its image) so that every image weighs 1 as in
      ``vote_coverage``; coverage of class k = sum_i d_ik [k in C_i] / sum_i d_ik (d = vote shares),
      i.e. P(Y in C(X) | Y = k) for Y drawn from the image's votes (with equal vote numbers per
      image: the share of class-k votes that fall in their image's set). Per class: ``vote_coverage_cls{k}``.
    - ``sscv_label``: size-stratified coverage violation (Angelopoulos et al. 2021, "Uncertainty sets
      for image classifiers using conformal prediction"; TorchCP's ``SSCV``) = max over the non-empty
      set-size strata of :data:`SSCV_STRATA` of |coverage of the label within the stratum - level|.
    - ``sscv_votes``: the same with the mean vote coverage of the stratum's images.
    - per stratum j: ``share_stratum{j}`` (share of images), ``coverage_stratum{j}``,
      ``vote_coverage_stratum{j}``; per paper vote-entropy bin b: ``vote_coverage_ebin{b}``
      (label coverage and mean size per bin are set_metrics' ``coverage_ebin{b}``, ``set_size_ebin{b}``).
    Images without urban votes have no vote coverage and weigh nothing in the vote numbers. Without
    ``votes`` (a store without votes) only the label numbers: covgap_label, sscv_label and per
    stratum share_stratum{j}, coverage_stratum{j}.
    """
    sets = np.asarray(sets, dtype=bool)
    n, k = sets.shape
    f = set_features(sets, labels, votes)
    stratum = size_stratum(f["size"])
    ns = len(SSCV_STRATA)
    wt = None if weights is None else np.ascontiguousarray(np.asarray(weights, dtype=np.float64).T)
    cov_cls = weighted_group_means(f["covered"], f["label"], k, weights, wt=wt)
    share_stratum = weighted_means((stratum[:, None] == np.arange(ns)[None, :]).astype(np.float64), weights)
    if votes is None:
        cov_stratum = weighted_group_means(f["covered"], stratum, ns, weights, wt=wt)
        out: dict[str, Any] = {"covgap_label": _coverage_gap(cov_cls, level, "mean"),
                               "sscv_label": _coverage_gap(cov_stratum, level, "max")}
        out.update({f"share_stratum{j}": share_stratum[..., j] for j in range(ns)})
        out.update({f"coverage_stratum{j}": cov_stratum[..., j] for j in range(ns)})
        return {key: (float(v) if weights is None else np.asarray(v, dtype=np.float64)) for key, v in out.items()}
    shares, _ = urban_vote_shares(votes, k)
    by_stratum = weighted_group_means(np.stack([f["covered"], f["vote_coverage"]], axis=1), stratum, ns,
                                      weights, wt=wt)
    vote_ebin = weighted_group_means(f["vote_coverage"], f["ebin"], N_ENTROPY_BINS, weights, wt=wt)
    w = as_weights(weights, n)
    num, den = w @ (shares * sets), w @ shares                                   # (B, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        vote_cls = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    vote_cls = vote_cls[0] if weights is None else vote_cls
    out = {
        "covgap_label": _coverage_gap(cov_cls, level, "mean"),
        "covgap_votes": _coverage_gap(vote_cls, level, "mean"),
        "sscv_label": _coverage_gap(by_stratum[..., 0], level, "max"),
        "sscv_votes": _coverage_gap(by_stratum[..., 1], level, "max"),
    }
    out.update({f"vote_coverage_cls{c}": vote_cls[..., c] for c in range(k)})
    out.update({f"share_stratum{j}": share_stratum[..., j] for j in range(ns)})
    out.update({f"coverage_stratum{j}": by_stratum[..., j, 0] for j in range(ns)})
    out.update({f"vote_coverage_stratum{j}": by_stratum[..., j, 1] for j in range(ns)})
    out.update({f"vote_coverage_ebin{b}": vote_ebin[..., b] for b in range(N_ENTROPY_BINS)})
    return {key: (float(v) if weights is None else np.asarray(v, dtype=np.float64)) for key, v in out.items()}


def conformal_metrics(cal_probs: np.ndarray, cal_labels: np.ndarray, test_probs: np.ndarray,
                      test_labels: np.ndarray, test_votes: np.ndarray, *,
                      scores: tuple[str, ...] = SCORES, levels: tuple[float, ...] = DEFAULT_LEVELS,
                      randomized: bool = False, seed: int = 0, lam: float = RAPS_LAMBDA,
                      k_reg: int = RAPS_K_REG, plausible_share: float = PLAUSIBLE_SHARE
                      ) -> dict[str, dict[str, float]]:
    """Every score x level on one run / method: {"{score}_{100 * level:g}": set_metrics + qhat},
    e.g. "lac_90", "raps_95"."""
    out: dict[str, dict[str, float]] = {}
    for score in scores:
        for level in levels:
            sets, qhat = split_conformal(cal_probs, cal_labels, test_probs, score=score, level=level,
                                         randomized=randomized, seed=seed, lam=lam, k_reg=k_reg)
            m = set_metrics(sets, test_labels, test_votes, plausible_share=plausible_share)
            out[set_name(score, level)] = {"qhat": qhat, **m}
    return out
