"""Dawid-Skene (1979) label aggregation: per-expert confusion matrices fitted by EM (pure numpy).

Votes are LCZ ids (0 = missing); only votes for the K study classes (LCZ 1..K) enter the
likelihood, other votes are treated as missing. Column index = expert. Vectorised: one E- and one
M-step cost O(N * E * K) with no Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DawidSkeneResult:
    posteriors: np.ndarray   # (N, K) P(true class | votes)
    confusion: np.ndarray    # (E, K, K) row = true class, column = vote
    priors: np.ndarray       # (K,)
    n_iter: int
    converged: bool
    log_likelihood: float


def _one_hot_votes(votes: np.ndarray, k: int) -> np.ndarray:
    """(N, E) LCZ ids -> (N, E, K) float one-hot of votes within 1..K (others all-zero)."""
    v = np.asarray(votes).astype(np.int64)
    valid = (v >= 1) & (v <= k)
    oh = np.zeros(v.shape + (k,), dtype=np.float64)
    idx = np.nonzero(valid)
    oh[idx[0], idx[1], v[valid] - 1] = 1.0
    return oh


def fit_dawid_skene(votes: np.ndarray, num_classes: int = 10, *, max_iter: int = 100, tol: float = 1e-6,
                    smoothing: float = 0.01, init: np.ndarray | None = None) -> DawidSkeneResult:
    """Fit DS by EM. ``init`` (N, K) initial posteriors; default = normalised vote counts."""
    k = num_classes
    oh = _one_hot_votes(votes, k)                 # (N, E, K)
    counts = oh.sum(axis=1)                       # (N, K)
    if init is None:
        tot = counts.sum(axis=1, keepdims=True)
        post = np.where(tot > 0, counts / np.where(tot > 0, tot, 1), 1.0 / k)
    else:
        post = np.asarray(init, dtype=np.float64)
    prev_ll = -np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        # M-step: priors and confusion[e, true, vote]
        priors = (post.sum(axis=0) + smoothing) / (post.shape[0] + k * smoothing)
        conf = np.einsum("nt,nev->etv", post, oh) + smoothing
        conf /= conf.sum(axis=2, keepdims=True)
        # E-step: log P(true = t | votes) = log prior_t + sum_e sum_v oh[n,e,v] log conf[e,t,v]
        log_conf = np.log(conf)
        log_like = np.einsum("nev,etv->nt", oh, log_conf) + np.log(priors)[None, :]
        m = log_like.max(axis=1, keepdims=True)
        norm = m + np.log(np.exp(log_like - m).sum(axis=1, keepdims=True))
        post = np.exp(log_like - norm)
        ll = float(norm.sum())
        if abs(ll - prev_ll) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        prev_ll = ll
    return DawidSkeneResult(posteriors=post, confusion=conf, priors=priors, n_iter=it,
                            converged=converged, log_likelihood=ll)
