"""Owns selective prediction (risk-coverage curves, AURC, accuracy at a coverage) and the uncertainty
signals judged by how well they detect errors (AUROC) and follow expert disagreement (Spearman with
the vote entropy). Pure numpy; every metric takes optional (B, N) bootstrap counts.

Conventions (docs/beyond_the_paper.md):
- Selective prediction keeps the k most confident images (confidence = max probability unless
  given); risk = error rate among them, coverage = k / N. Images with equal confidence are
  exchangeable: within a tie group the risk at coverage k is its expectation over the orders of
  the group (errors before the group + (k - n_before) x the group's error rate) / k, so the curve
  does not depend on input order.
- AURC = (1/N) sum_{k=1..N} risk(k / N) (Geifman et al. 2019's discrete AURC); E-AURC = AURC minus
  the AURC of a perfect ranking (all correct images first).
- Accuracy at coverage c = 1 - risk(k), k = ceil(c N).
- Signals are uncertainties (larger = less sure): 1 - max probability, predictive entropy H(p),
  MC-dropout mutual information, ensemble disagreement. AUROC of a signal = probability that a
  random misclassified image has a larger signal than a random correct one, ties counting one
  half (Mann-Whitney; equals sklearn's roc_auc_score with errors as the positive class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lczldl.distributions import entropy_nats
from lczldl.evaluation.intervals import as_weights, spearman_from_ranks, weighted_ranks

#: coverages at which selective accuracy is reported
COVERAGES: tuple[float, ...] = (0.8, 0.9)


def coverage_key(coverage: float) -> str:
    """Key of the accuracy at a coverage, e.g. 0.8 -> "acc_at_80"."""
    return f"acc_at_{round(100 * coverage, 6):g}"


def _tie_groups(confidence: np.ndarray, errors: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Groups of equal confidence, most confident first: (B, G) copies m, (B, G) errors e,
    (B, G) copies before the group n0, errors before the group e0."""
    conf = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    cs = conf[order]
    starts = np.r_[0, np.nonzero(np.diff(cs))[0] + 1]
    m = np.add.reduceat(w[:, order], starts, axis=1)
    e = np.add.reduceat(w[:, order] * errors[order], starts, axis=1)
    return m, e, np.cumsum(m, axis=1) - m, np.cumsum(e, axis=1) - e


def aurc(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """(AURC, E-AURC) with tie-averaged risks; floats, or (B,) arrays with (B, N) counts.

    Within a group of m tied images after n0 images with e0 errors, the risks at k = n0 + j
    (j = 1..m) sum to (e0 - n0 r)(H(n0 + m) - H(n0)) + r m with r = e / m and H the harmonic
    numbers."""
    correct = np.asarray(correct, dtype=bool)
    w = as_weights(weights, correct.size)
    a, ea = _aurc(_tie_groups(confidence, (~correct).astype(np.float64), w))
    return (float(a[0]), float(ea[0])) if weights is None else (a, ea)


def _aurc(groups: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    m, e, n0, e0 = groups
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(m > 0, e / np.where(m > 0, m, 1.0), 0.0)
    harm = _harmonic(n0 + m) - _harmonic(n0)
    n = m.sum(axis=1)
    a = ((e0 - n0 * r) * harm + r * m).sum(axis=1) / n
    # perfect ranking: n_c correct first (risk 0), then errors: risk (k - n_c) / k for k > n_c
    n_err = e.sum(axis=1)
    n_c = n - n_err
    best = (n_err - n_c * (_harmonic(n) - _harmonic(n_c))) / n
    return a, a - best


def _harmonic(x: np.ndarray) -> np.ndarray:
    """Harmonic numbers H(x) = sum_{j<=x} 1/j: a table for whole numbers (bootstrap counts),
    digamma(x + 1) + Euler's gamma otherwise."""
    x = np.asarray(x, dtype=np.float64)
    xi = np.rint(x)
    if x.size and np.array_equal(x, xi) and xi.min() >= 0:
        table = np.r_[0.0, np.cumsum(1.0 / np.arange(1, int(xi.max()) + 1))]
        return table[xi.astype(np.int64)]
    from scipy.special import digamma

    return digamma(x + 1.0) + np.euler_gamma


def accuracy_at_coverage(confidence: np.ndarray, correct: np.ndarray, coverage: float,
                         weights: np.ndarray | None = None) -> Any:
    """Accuracy of the ceil(coverage x N) most confident images (ties: expectation over orders)."""
    correct = np.asarray(correct, dtype=bool)
    w = as_weights(weights, correct.size)
    acc = _accuracy_at(_tie_groups(confidence, (~correct).astype(np.float64), w), coverage)
    return float(acc[0]) if weights is None else acc


def _accuracy_at(groups: tuple[np.ndarray, ...], coverage: float) -> np.ndarray:
    m, e, n0, e0 = groups
    n = m.sum(axis=1)
    k = np.ceil(coverage * n - 1e-9)
    g = np.minimum(((n0 + m) < k[:, None]).sum(axis=1), m.shape[1] - 1)   # group holding position k
    rows = np.arange(len(m))
    mg, eg = m[rows, g], e[rows, g]
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = (e0[rows, g] + (k - n0[rows, g]) * np.where(mg > 0, eg / np.where(mg > 0, mg, 1.0), 0.0)) / k
    return 1.0 - risk


def risk_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk), each (N,): coverage k / N and the tie-averaged risk of the k most confident
    images, k = 1..N (for plots; AURC is the mean of ``risk``)."""
    correct = np.asarray(correct, dtype=bool)
    n = correct.size
    m, e, n0, e0 = (a[0] for a in _tie_groups(confidence, (~correct).astype(np.float64), np.ones((1, n))))
    k = np.arange(1, n + 1, dtype=np.float64)
    g = np.repeat(np.arange(m.size), m.astype(np.int64))
    risk = (e0[g] + (k - n0[g]) * (e[g] / m[g])) / k
    return k / n, risk


def error_auroc(uncertainty: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """AUROC of ``uncertainty`` for detecting errors (Mann-Whitney, ties one half); NaN when all
    images are correct or all wrong."""
    err = ~np.asarray(correct, dtype=bool)
    w = as_weights(weights, err.size)
    auc = _auroc_from_ranks(weighted_ranks(uncertainty, w), err, w)
    return float(auc[0]) if weights is None else auc


def _auroc_from_ranks(ranks: np.ndarray, err: np.ndarray, w: np.ndarray) -> np.ndarray:
    n1 = (w * err).sum(axis=1)
    n0 = (w * ~err).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0),
                        ((w * err * ranks).sum(axis=1) - n1 * (n1 + 1.0) / 2.0) / (n1 * n0), np.nan)


def ensemble_disagreement(members: Sequence[np.ndarray], kind: str = "kl") -> np.ndarray:
    """(N,) disagreement of M members' (N, K) probabilities. "kl" (default): mean over members of
    KL(p_m || mean p) = H(mean p) - mean_m H(p_m), the ensemble's mutual information (nats; the
    analogue of MC-dropout's). "vote": share of members whose argmax differs from the mean's."""
    p = np.stack([np.asarray(a, dtype=np.float64) for a in members])        # (M, N, K)
    mean = p.mean(axis=0)
    if kind == "kl":
        return np.maximum(entropy_nats(mean) - entropy_nats(p).mean(axis=0), 0.0)
    if kind == "vote":
        return (p.argmax(axis=2) != mean.argmax(axis=1)[None, :]).mean(axis=0)
    raise ValueError(f"kind must be 'kl' or 'vote', got {kind!r}")


def uncertainty_signals(probs: np.ndarray, *, mutual_info: np.ndarray | None = None,
                        members: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The signals available for one prediction, (N,) each: "max_prob" (1 - max p),
    "entropy" (H(p), nats), "mutual_info" (MC dropout, when given), "disagreement" (members' KL
    disagreement, when given)."""
    p = np.asarray(probs, dtype=np.float64)
    out = {"max_prob": 1.0 - p.max(axis=1), "entropy": entropy_nats(p)}
    if mutual_info is not None:
        out["mutual_info"] = np.asarray(mutual_info, dtype=np.float64)
    if members is not None:
        out["disagreement"] = ensemble_disagreement(members)
    return out


def signal_metrics(signals: dict[str, np.ndarray], correct: np.ndarray, vote_entropy: np.ndarray | None,
                   weights: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Per signal: {"auroc": error-detection AUROC, "spearman": Spearman with the vote entropy}
    (each signal ranked once for both); without ``vote_entropy`` (no votes) the AUROC only."""
    err = ~np.asarray(correct, dtype=bool)
    w = as_weights(weights, err.size)
    r_vote = None if vote_entropy is None else weighted_ranks(vote_entropy, w)
    out: dict[str, dict[str, Any]] = {}
    for name, u in signals.items():
        r = weighted_ranks(u, w)
        found = {"auroc": _auroc_from_ranks(r, err, w)}
        if r_vote is not None:
            found["spearman"] = spearman_from_ranks(r, r_vote, w)
        out[name] = {k: (float(v[0]) if weights is None else v) for k, v in found.items()}
    return out


def selective_metrics(probs: np.ndarray, labels: np.ndarray, *, confidence: np.ndarray | None = None,
                      coverages: Sequence[float] = COVERAGES, weights: np.ndarray | None = None
                      ) -> dict[str, Any]:
    """aurc, eaurc and acc_at_{100c:g} (e.g. acc_at_80) of one prediction; confidence defaults to
    the max probability and correctness is argmax(probs) == labels."""
    p = np.asarray(probs, dtype=np.float64)
    correct = p.argmax(axis=1) == np.asarray(labels)
    conf = p.max(axis=1) if confidence is None else np.asarray(confidence, dtype=np.float64)
    groups = _tie_groups(conf, (~correct).astype(np.float64), as_weights(weights, correct.size))
    vals = dict(zip(("aurc", "eaurc"), _aurc(groups), strict=True))
    vals.update({coverage_key(c): _accuracy_at(groups, c) for c in coverages})
    return {k: (float(v[0]) if weights is None else v) for k, v in vals.items()}
