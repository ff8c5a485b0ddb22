"""Owns the formulas on discrete distributions that data, evaluation, viz and maps share: row
entropy in nats, the paper's vote-entropy bins (edges, a row's bin, counts, tick labels), total
variation distance and Spearman rank correlation. Pure numpy."""

from __future__ import annotations

import math

import numpy as np

#: the paper's vote-entropy bin edges (nats); bins are left-closed [lo, hi), values outside the
#: edges are clipped into the first / last bin
ENTROPY_BIN_EDGES: tuple[float, ...] = (-0.1, 0.2, 0.5, 0.7, 1.0, 1.3, math.inf)
#: number of vote-entropy bins
N_ENTROPY_BINS = len(ENTROPY_BIN_EDGES) - 1
#: floor applied to probabilities before a log in a divergence or likelihood (keeps them finite:
#: -log 1e-12 = 27.6 nats per unit of mass put where the other distribution has none)
LOG_FLOOR = 1e-12


def entropy_nats(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``p`` (..., K) -> (...), with 0 log 0 = 0.

    Computed in ``p``'s floating dtype (integers as float64); pass float64 for float64 results."""
    p = np.asarray(p)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = p * np.log(p)
    return -np.where(p > 0, plogp, 0.0).sum(axis=-1)


def entropy_bin(entropy: np.ndarray) -> np.ndarray:
    """Paper vote-entropy bin 0..5 of each entropy (nats), left-closed [lo, hi) on
    :data:`ENTROPY_BIN_EDGES`, values outside clipped into the first / last bin; int64."""
    edges = np.asarray(ENTROPY_BIN_EDGES, dtype=np.float64)
    e = np.asarray(entropy, dtype=np.float64)
    return np.clip(np.searchsorted(edges, e, side="right") - 1, 0, N_ENTROPY_BINS - 1)


def entropy_histogram(entropy: np.ndarray) -> np.ndarray:
    """(N,) entropies (nats) -> (6,) int64 counts per paper bin (see :func:`entropy_bin`)."""
    return np.bincount(entropy_bin(entropy), minlength=N_ENTROPY_BINS)


def entropy_bin_shares(entropy: np.ndarray) -> np.ndarray:
    """(N,) entropies (nats) -> (6,) float64 shares per paper bin; zeros when N = 0."""
    counts = entropy_histogram(entropy).astype(np.float64)
    return counts / max(int(counts.sum()), 1)


def entropy_bin_labels() -> list[str]:
    """Tick labels of the paper's entropy bins: "< 0.2", "0.2–0.5", ..., "≥ 1.3"."""
    e = ENTROPY_BIN_EDGES
    out = []
    for lo, hi in zip(e[:-1], e[1:], strict=True):
        if lo < 0:
            out.append(f"< {hi:g}")
        elif math.isinf(hi):
            out.append(f"\u2265 {lo:g}")
        else:
            out.append(f"{lo:g}\u2013{hi:g}")
    return out


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance 0.5 * sum |p - q| of two discrete distributions (same shape)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"tv_distance: shapes differ {p.shape} vs {q.shape}")
    return float(0.5 * np.abs(p - q).sum())


def average_ranks(x: np.ndarray) -> np.ndarray:
    """(N,) 1-based ranks of the values of ``x`` (flattened), ties sharing their mean rank (scipy's
    ``rankdata``, whose module costs a unit process a second to import); all NaN if one is NaN.
    The ranks are exact (multiples of 1/2), so any correct ranking gives the same floats.
    (:func:`lczldl.evaluation.intervals.weighted_ranks` is its version under bootstrap counts.)"""
    x = np.asarray(x, dtype=np.float64).ravel()
    if np.isnan(x).any():
        return np.full(x.shape, np.nan)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.ravel()]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties; NaN if either is constant, empty or
    holds a NaN."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean() if rx.size else 0.0
    ry -= ry.mean() if ry.size else 0.0
    den = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")
