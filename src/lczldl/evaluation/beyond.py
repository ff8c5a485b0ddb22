"""Owns the beyond-the-paper numbers of one prediction (a run under one method, or a regime's
ensemble): split-conformal sets judged against the experts, selective prediction and the
uncertainty signals, as headline numbers (summary columns, named in
:mod:`lczldl.evaluation.registry`) and details for the figures (per class, per vote-entropy bin,
the risk-coverage curve). Pure numpy; :mod:`lczldl.evaluation.runs` writes the files.

Conventions (docs/metrics.md, "Beyond the paper"):
- Sets are calibrated on the validation split (``cal_probs``, majority labels) and evaluated on test,
  for every score (LAC, APS, RAPS) x level; q_hat is not resampled by the bootstrap (intervals are
  conditional on the validation split).
- With the validation votes (``cal_votes``) and ``vote`` settings, every score x level also gets the
  set calibrated on labels drawn from those votes (Monte Carlo conformal,
  :func:`lczldl.evaluation.conformal_votes.vote_conformal`, draws seeded with :data:`VOTE_DRAW_SEED`),
  named "votecal_<set>"; both kinds report how evenly they keep their level (CovGap, SSCV against
  the label and the votes: :func:`lczldl.evaluation.conformal.conditional_set_metrics`).
- Correctness is argmax(probs) == majority label; the selective confidence is max(probs).
- Signals are uncertainties (larger = less sure): ``max_prob`` (1 - max p) and ``entropy`` always,
  ``mutual_info`` (MC dropout) and ``disagreement`` (ensemble members) where given. The Spearman
  correlation of the predictive entropy with the vote entropy is compute_metrics'
  ``entropy_spearman``; it is not written a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lczldl.distributions import N_ENTROPY_BINS
from lczldl.evaluation.conformal import (
    DEFAULT_LEVELS,
    SCORES,
    conditional_set_metrics,
    set_features,
    set_metrics,
    set_name,
    split_conformal,
)
from lczldl.evaluation.conformal_votes import VoteSets, vote_conformal
from lczldl.evaluation.registry import (
    CONDITIONAL_STATS,
    CONFORMAL_STATS,
    SIGNAL_SPEARMAN,
    VOTE_SET_STATS,
    conformal_key,
    vote_conformal_key,
    vote_set_name,
)
from lczldl.evaluation.selective import (
    risk_coverage_curve,
    selective_metrics,
    signal_metrics,
    uncertainty_signals,
)

#: points of the saved risk-coverage curve (coverage k / N at k = 1 and N and evenly between)
CURVE_POINTS = 201
#: seed of the labels drawn from the validation votes (the same draws for every score and level)
VOTE_DRAW_SEED = 0
Sets = dict[tuple[str, float], tuple[np.ndarray, float]]
#: (score, level) -> the set calibrated on the votes
VoteSetMap = dict[tuple[str, float], VoteSets]


@dataclass(frozen=True)
class VoteSettings:
    """How the sets calibrated on the votes are made: ``m`` labels drawn per validation image,
    ``variant`` "ecdf" | "average" (the resolved ``evaluation.vote_samples`` / ``vote_variant``)."""

    m: int
    variant: str


def prediction_sets(cal_probs: np.ndarray, cal_labels: np.ndarray, probs: np.ndarray,
                    levels: Sequence[float] = DEFAULT_LEVELS) -> Sets:
    """{(score, level): ((N, K) bool sets of the test images, q_hat)} for every score x level."""
    return {(score, float(lv)): split_conformal(cal_probs, cal_labels, probs, score=score, level=float(lv))
            for score in SCORES for lv in levels}


def vote_prediction_sets(cal_probs: np.ndarray, cal_votes: np.ndarray, probs: np.ndarray,
                         levels: Sequence[float], vote: VoteSettings) -> VoteSetMap:
    """{(score, level): the test sets calibrated on labels drawn from ``cal_votes`` (V, E) store votes}
    for every score x level (:func:`~lczldl.evaluation.conformal_votes.vote_conformal`, seed
    :data:`VOTE_DRAW_SEED`)."""
    return {(score, float(lv)): vote_conformal(cal_probs, cal_votes, probs, score=score, level=float(lv),
                                               m=vote.m, variant=vote.variant, seed=VOTE_DRAW_SEED)
            for score in SCORES for lv in levels}


def _set_numbers(sets: np.ndarray, labels: np.ndarray, votes: np.ndarray | None, level: float,
                 weights: np.ndarray | None = None) -> dict[str, Any]:
    """set_metrics and conditional_set_metrics of one set, in one dict (without ``votes``: their
    label numbers only)."""
    return {**set_metrics(sets, labels, votes, weights=weights),
            **conditional_set_metrics(sets, labels, votes, level, weights=weights)}


def headline(probs: np.ndarray, labels: np.ndarray, votes: np.ndarray | None, vote_entropy: np.ndarray | None, *,
             sets: Sets | None = None, signals: Mapping[str, np.ndarray] | None = None,
             weights: np.ndarray | None = None, per_set: Mapping | None = None,
             per_signal: Mapping | None = None, vote_sets: VoteSetMap | None = None,
             per_vote_set: Mapping | None = None) -> dict[str, Any]:
    """The summary columns of one prediction: per set (score, level) its coverage, set size, vote
    coverage, plausible Jaccard, CovGap and SSCV (against label and votes); per set calibrated on
    the votes (``vote_sets``) :data:`~lczldl.evaluation.registry.VOTE_SET_STATS`; with ``signals``:
    aurc, eaurc, acc_at_80/90 and per signal auroc_<signal> and spearman_<signal>. Floats, or (B,)
    arrays under (B, N) image counts. ``per_set`` / ``per_vote_set`` / ``per_signal``: the
    unweighted numbers per set key (:func:`_set_numbers`) / signal_metrics, when the caller has
    them already (:func:`evaluate_prediction`)."""
    labels = np.asarray(labels, dtype=np.int64)
    out: dict[str, Any] = {}
    for key, (s, _) in (sets or {}).items():
        m = per_set[key] if per_set is not None else _set_numbers(s, labels, votes, key[1], weights)
        out.update({conformal_key(*key, stat): m[stat] for stat in (*CONFORMAL_STATS, *CONDITIONAL_STATS) if stat in m})
    for key, vs in (vote_sets or {}).items():
        m = per_vote_set[key] if per_vote_set is not None else _set_numbers(vs.sets, labels, votes, key[1], weights)
        out.update({vote_conformal_key(*key, stat): m[stat] for stat in VOTE_SET_STATS})
    if signals is not None:
        p = np.asarray(probs, dtype=np.float64)
        out.update(selective_metrics(p, labels, weights=weights))
        per = (per_signal if per_signal is not None
               else signal_metrics(dict(signals), p.argmax(axis=1) == labels, vote_entropy, weights))
        for sig, v in per.items():
            out[f"auroc_{sig}"] = v["auroc"]
            if "spearman" in v and SIGNAL_SPEARMAN.get(sig, f"spearman_{sig}") == f"spearman_{sig}":
                out[f"spearman_{sig}"] = v["spearman"]
    return out


def details(probs: np.ndarray, labels: np.ndarray, votes: np.ndarray | None, vote_entropy: np.ndarray | None, *,
            sets: Sets | None = None, signals: Mapping[str, np.ndarray] | None = None,
            per_set: Mapping | None = None, per_signal: Mapping | None = None,
            vote_sets: VoteSetMap | None = None, per_vote_set: Mapping | None = None) -> dict[str, Any]:
    """What the figures read (JSON-friendly): ``n`` and ``counts`` (test images per majority class
    and per vote-entropy bin of the urban votes, the groups of the per-class / per-bin numbers),
    ``sets`` {name: {score, level, qhat, every set_metrics and conditional_set_metrics key}},
    ``vote_sets`` {votecal_<name>: the same plus how they were calibrated: variant, m, seed, n_cal,
    n_ecdf, n_no_urban}, and with ``signals``: ``risk_coverage`` {coverage, risk} at CURVE_POINTS
    coverages and ``signals`` {signal: {auroc, spearman}}."""
    labels = np.asarray(labels, dtype=np.int64)
    k = np.asarray(probs).shape[1]
    out: dict[str, Any] = {"n": int(len(labels)), "counts": {"class": np.bincount(labels, minlength=k).tolist()}}
    if votes is not None:
        f = set_features(np.zeros((len(labels), k), dtype=bool), labels, votes)
        out["counts"]["ebin"] = np.bincount(f["ebin"], minlength=N_ENTROPY_BINS).tolist()
    if sets:
        out["sets"] = {set_name(score, lv): {"score": score, "level": lv, "qhat": qhat,
                                              **(per_set[score, lv] if per_set is not None
                                                 else _set_numbers(s, labels, votes, lv))}
                       for (score, lv), (s, qhat) in sets.items()}
    if vote_sets:
        out["vote_sets"] = {vote_set_name(score, lv): {
            "score": score, "level": lv, "qhat": vs.qhat, "variant": vs.variant, "m": vs.m, "seed": VOTE_DRAW_SEED,
            "n_cal": vs.n_cal, "n_ecdf": vs.n_ecdf, "n_no_urban": vs.n_no_urban,
            **(per_vote_set[score, lv] if per_vote_set is not None else _set_numbers(vs.sets, labels, votes, lv))}
            for (score, lv), vs in vote_sets.items()}
    if signals is not None:
        p = np.asarray(probs, dtype=np.float64)
        cov, risk = risk_coverage_curve(p.max(axis=1), p.argmax(axis=1) == labels)
        k = np.unique(np.round(np.linspace(0, len(cov) - 1, CURVE_POINTS)).astype(np.int64))
        out["risk_coverage"] = {"coverage": cov[k].tolist(), "risk": risk[k].tolist()}
        out["signals"] = (per_signal if per_signal is not None
                          else signal_metrics(dict(signals), p.argmax(axis=1) == labels, vote_entropy))
    return out


def evaluate_prediction(probs: np.ndarray, labels: np.ndarray, votes: np.ndarray | None,
                        vote_entropy: np.ndarray | None, *,
                        cal_probs: np.ndarray | None = None, cal_labels: np.ndarray | None = None,
                        levels: Sequence[float] = DEFAULT_LEVELS, conformal: bool = True, selective: bool = True,
                        mutual_info: np.ndarray | None = None, members: Sequence[np.ndarray] | None = None,
                        cal_votes: np.ndarray | None = None, vote: VoteSettings | None = None
                        ) -> tuple[dict[str, float], dict[str, Any], Sets | None, dict[str, np.ndarray] | None,
                                   VoteSetMap | None]:
    """(headline, details, sets, signals, vote sets) of one prediction: ``probs`` (N, K) test
    probabilities, ``labels`` (N,) majority labels, ``votes`` (N, E) store votes, ``vote_entropy``
    (N,) nats (both None for a store without votes: what needs them is left out); conformal sets
    need ``cal_probs`` / ``cal_labels`` (validation) and are skipped without them or with
    ``conformal`` off; the sets calibrated on the votes also need ``cal_votes`` (V, E), test
    ``votes`` and ``vote`` (skipped without any of them); ``selective`` off leaves out selective
    prediction and the signals. The sets and signals are returned for :func:`headline` under
    bootstrap weights."""
    sets = (prediction_sets(cal_probs, cal_labels, probs, levels)
            if conformal and cal_probs is not None and cal_labels is not None else None)
    vote_sets = (vote_prediction_sets(cal_probs, cal_votes, probs, levels, vote)
                 if conformal and cal_probs is not None and cal_votes is not None and votes is not None
                 and vote is not None else None)
    signals = uncertainty_signals(probs, mutual_info=mutual_info, members=members) if selective else None
    labels = np.asarray(labels, dtype=np.int64)
    per_set = {key: _set_numbers(s, labels, votes, key[1]) for key, (s, _) in (sets or {}).items()}
    per_vote_set = {key: _set_numbers(vs.sets, labels, votes, key[1]) for key, vs in (vote_sets or {}).items()}
    per_signal = (signal_metrics(dict(signals), np.asarray(probs).argmax(axis=1) == labels, vote_entropy)
                  if signals is not None else None)
    common = {"sets": sets, "signals": signals, "per_set": per_set, "per_signal": per_signal,
              "vote_sets": vote_sets, "per_vote_set": per_vote_set}
    return (headline(probs, labels, votes, vote_entropy, **common),
            details(probs, labels, votes, vote_entropy, **common), sets, signals, vote_sets)
