"""Owns prediction sets calibrated on the experts' votes: Monte Carlo conformal prediction (Stutz,
Roy, Matejovicova, Strachan, Cemgil, Doucet, "Conformal prediction under ambiguous ground truth",
TMLR 2023; the authors' code: google-deepmind/uncertain_ground_truth, ``monte_carlo.py``). Pure numpy.

The standard sets (:mod:`lczldl.evaluation.conformal`) are calibrated on the majority label, so
their guarantee is for the majority label. Here the ground truth of an image is a label Y drawn
from its experts' urban votes (the raw vote shares d, never a smoothed target: Stutz et al.'s
P_agg), and the target is P(Y in C(X)) = E[sum_k d_k [k in C(X)]] = the expected share of an
image's urban votes inside its set (``vote_coverage`` in set_metrics).

Procedure, with the project's scores s(x, y) (larger = less conforming, set = {y : s <= q_hat}):
- Calibration images without any urban vote have no vote distribution: they are left out and
  counted (``n_no_urban``).
- m labels per calibration image are drawn with replacement from its urban votes (one vote picked
  uniformly = a label drawn from the vote shares, exactly, in integers); the m * n scores
  s(X_i, Y_i^j) are the calibration scores. The same seed draws the same labels for every score and
  level.
- Variant ``"average"`` (the authors' ``calibrate_mc_threshold``): the set of the averaged
  conformal p-value, {y : pbar(x, y) > alpha} with pbar = mean over j of the p-value of the j-th
  draw, pbar(x, y) = (m + #{(i, j) : s_ij >= s(x, y)}) / (m (n + 1)). As a threshold: q_hat = the
  ceil(level * m * (n + 1))-th smallest of the m n scores, +inf when that exceeds m n (the authors
  write the same order statistic as an interpolated quantile; here it is exact). m = 1 is standard
  split conformal on one drawn label per image: coverage >= level. For m > 1 the m draws of an
  image are not exchangeable with the test image, and the guarantee is 1 - 2 alpha (twice an
  average of p-values is a p-value; the authors' docstring: "Otherwise, coverage 1 - 2*alpha is
  guaranteed"); in practice coverage is close to the level.
- Variant ``"ecdf"`` (the authors' ``compute_mc_ecdf_p_values``, their correction "if a
  finite-sample coverage guarantee of 1 - alpha is desired"): the calibration images are split at
  random, a share ``split`` (default 0.5, as theirs) give the m-draw averaged p-values as above and
  the other l images one drawn label each; their averaged p-values at the drawn labels form an
  ECDF, a test p-value is corrected to ECDF(pbar) = #{held-out pbar_i <= pbar} / l and the set is
  {y : ECDF(pbar(x, y)) >= alpha}. Given the first part, the held-out and the test p-values are
  i.i.d., so the miscoverage is at most ceil(alpha l) / (l + 1) (<= alpha + 1 / (l + 1)). As a
  threshold: with c_i = #{calibration scores >= the held-out image's score}, c* = the
  ceil(alpha l)-th smallest c_i, q_hat = the c*-th largest calibration score (+inf when c* = 0).
The guarantees are marginal, over calibration draws, images and labels drawn from the votes.
Scores are deterministic (APS / RAPS without u), as the study's standard sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lczldl.constants import VOTE_CONFORMAL_SAMPLES, VOTE_CONFORMAL_VARIANTS
from lczldl.evaluation.conformal import RAPS_K_REG, RAPS_LAMBDA, conformity_scores, urban_vote_counts

#: calibration variants: "ecdf" (guarantee 1 - alpha, half the images estimate the correction) and
#: "average" (averaged p-values; 1 - alpha for m = 1, 1 - 2 alpha for m > 1)
MC_VARIANTS: tuple[str, ...] = VOTE_CONFORMAL_VARIANTS
#: default variant: the one whose guarantee is the level
MC_VARIANT = MC_VARIANTS[0]
#: labels drawn per calibration image (the authors' default ``num_samples``)
MC_SAMPLES = VOTE_CONFORMAL_SAMPLES
#: "ecdf": share of the calibration images that give the m-draw p-values (the authors' ``split``)
ECDF_SPLIT = 0.5
#: relative tolerance when level * count lands a hair off an integer in floating point
_EPS = 1e-9


def _ceil(x: float) -> int:
    """ceil(x), with x within a relative 1e-9 of an integer taken as that integer."""
    r = round(x)
    return int(r) if abs(x - r) <= _EPS * max(1.0, abs(x)) else math.ceil(x)


def _floor(x: float) -> int:
    """floor(x), with x within a relative 1e-9 of an integer taken as that integer."""
    r = round(x)
    return int(r) if abs(x - r) <= _EPS * max(1.0, abs(x)) else math.floor(x)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


@dataclass(frozen=True)
class VoteSets:
    """Sets calibrated on the votes and how they were calibrated."""

    sets: np.ndarray     # (N_test, K) bool
    qhat: float          # threshold on the score: set = {y : s(x, y) <= qhat}
    variant: str         # "ecdf" or "average"
    m: int               # labels drawn per calibration image
    n_cal: int           # calibration images whose m drawn labels give the calibration scores
    n_ecdf: int          # images that estimated the ECDF correction (0 for "average")
    n_no_urban: int      # calibration images left out: no urban vote


def sample_vote_labels(counts: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """(n, K) urban vote counts -> (n, m) int64 class indices, each one of the image's urban votes
    picked uniformly with replacement (= a label drawn from its vote shares). Every row needs at
    least one vote."""
    counts = np.asarray(counts, dtype=np.int64)
    tot = counts.sum(axis=1)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if (tot < 1).any():
        raise ValueError(f"{int((tot < 1).sum())} rows have no vote to draw from")
    r = rng.integers(0, tot[:, None], size=(len(counts), m))                   # (n, m) vote index
    cum = np.cumsum(counts, axis=1)                                             # (n, K)
    return (cum[:, None, :] <= r[:, :, None]).sum(axis=2).astype(np.int64)


def mc_quantile(scores: np.ndarray, level: float) -> float:
    """Variant "average": (n, m) calibration scores (m drawn labels per image) -> q_hat = the
    ceil(level * m * (n + 1))-th smallest of the n m scores; +inf when that index exceeds n m.
    m = 1 gives :func:`lczldl.evaluation.conformal.conformal_quantile`."""
    _check_level(level)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores must be (n, m) with n, m >= 1, got shape {s.shape}")
    n, m = s.shape
    k = _ceil(level * m * (n + 1))
    return float("inf") if k > n * m else float(np.sort(s.ravel())[k - 1])


def mc_ecdf_quantile(cal_scores: np.ndarray, est_scores: np.ndarray, level: float) -> float:
    """Variant "ecdf": (n, m) scores of the m drawn labels of the calibrating images and (l,) scores of
    one drawn label of each held-out image -> q_hat of {y : ECDF(pbar(x, y)) >= 1 - level} (module
    docstring): c_i = #{calibration scores >= est_scores[i]}, c* = the ceil((1 - level) l)-th
    smallest c_i, q_hat = the c*-th largest calibration score, +inf when c* = 0."""
    _check_level(level)
    cal = np.sort(np.asarray(cal_scores, dtype=np.float64).ravel())
    est = np.asarray(est_scores, dtype=np.float64).ravel()
    if cal.size == 0 or est.size == 0:
        raise ValueError(f"need calibration and held-out scores, got {cal.size} and {est.size}")
    c = cal.size - np.searchsorted(cal, est, side="left")                      # #{cal >= s_i}
    l_ = est.size
    k = l_ - _floor(level * l_)                                                 # ceil(alpha l) >= 1
    c_star = int(np.sort(c)[k - 1])
    return float("inf") if c_star == 0 else float(cal[cal.size - c_star])


def vote_conformal(cal_probs: np.ndarray, cal_votes: np.ndarray, test_probs: np.ndarray, *,
                   score: str = "lac", level: float = 0.9, m: int = MC_SAMPLES, variant: str = MC_VARIANT,
                   split: float = ECDF_SPLIT, seed: int = 0, lam: float = RAPS_LAMBDA,
                   k_reg: int = RAPS_K_REG) -> VoteSets:
    """Monte Carlo conformal sets of ``test_probs`` (N_test, K) calibrated on ``cal_probs`` (n, K)
    with labels drawn from ``cal_votes`` (n, E) store votes (module docstring). ``seed`` seeds
    np.random.default_rng: "ecdf" permutes the usable calibration images, then draws m labels for
    the first int(split * n) of them and one label for the rest; "average" draws m labels each."""
    if variant not in MC_VARIANTS:
        raise ValueError(f"variant must be one of {MC_VARIANTS}, got {variant!r}")
    _check_level(level)
    cal_probs = np.asarray(cal_probs, dtype=np.float64)
    counts = urban_vote_counts(cal_votes, cal_probs.shape[1]).astype(np.int64)
    if counts.shape[0] != cal_probs.shape[0]:
        raise ValueError(f"cal_probs has {cal_probs.shape[0]} rows, cal_votes {counts.shape[0]}")
    voted = counts.sum(axis=1) > 0
    scores = conformity_scores(cal_probs[voted], score, lam=lam, k_reg=k_reg)
    counts = counts[voted]
    n = len(counts)
    rng = np.random.default_rng(seed)
    if variant == "average":
        if n < 1:
            raise ValueError("no calibration image with an urban vote")
        labels = sample_vote_labels(counts, m, rng)
        qhat = mc_quantile(np.take_along_axis(scores, labels, axis=1), level)
        n_cal, n_ecdf = n, 0
    else:
        if not 0.0 < split < 1.0:
            raise ValueError(f"split must be in (0, 1), got {split}")
        order = rng.permutation(n)
        n_cal = int(n * split)
        n_ecdf = n - n_cal
        if n_cal < 1 or n_ecdf < 1:
            raise ValueError(f"{n} calibration images with urban votes cannot be split {split}:{1 - split}")
        cal, est = order[:n_cal], order[n_cal:]
        cal_labels = sample_vote_labels(counts[cal], m, rng)
        est_labels = sample_vote_labels(counts[est], 1, rng)
        qhat = mc_ecdf_quantile(np.take_along_axis(scores[cal], cal_labels, axis=1),
                                np.take_along_axis(scores[est], est_labels, axis=1)[:, 0], level)
    sets = conformity_scores(test_probs, score, lam=lam, k_reg=k_reg) <= qhat
    return VoteSets(sets=sets, qhat=qhat, variant=variant, m=int(m), n_cal=int(n_cal), n_ecdf=int(n_ecdf),
                    n_no_urban=int((~voted).sum()))
