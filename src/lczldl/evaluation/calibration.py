"""Binned calibration errors as vectorised numpy functions (np.bincount, no loops over samples).

Binning conventions (``binning``), n_bins equal-width bins on [0, 1] (edges np.linspace(0, 1, n+1)):
- ``"right"`` (default, the seed's hollance-derived code): bins (lo, hi] via
  ``np.digitize(conf, edges, right=True)``; confidence exactly 0 is dropped (not counted anywhere);
  confidence 1.0 falls into the last bin. Values above 1 (rounding) are kept in the last bin.
- ``"left"`` (torchmetrics' ``MulticlassCalibrationError``): bins [lo, hi) via
  ``bucketize(right=True)``; confidence 1.0 (and above) lands in an extra bucket n_bins of its own.

ECE = sum over non-empty bins of count * |accuracy - mean confidence| / (number of binned samples);
MCE = max over non-empty bins of |accuracy - mean confidence|. See docs/metrics.md.

Every error takes optional (B, N) image counts ``weights`` (bootstrap draws, see
:mod:`lczldl.evaluation.intervals`) and then returns (B,) values: the same formula on the sample
in which image i appears w[b, i] times. Without weights the reductions are numpy's plain ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lczldl.evaluation.intervals import Sums, masked_max, masked_sum

BINNINGS = ("right", "left")


def bin_index(conf: np.ndarray, n_bins: int, binning: str = "right") -> np.ndarray:
    """Bin of each confidence (N,) -> (N,) int64 in 0..n_bins-1 ("left": 0..n_bins), -1 = dropped."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be 'right' or 'left', got {binning!r}")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(conf, dtype=np.float64)
    n = int(n_bins)
    edges = np.linspace(0.0, 1.0, n + 1)
    # Arithmetic guess (off by at most one near an edge), then one exact fix-up against the same
    # linspace edges np.digitize would use: identical result, no binary search.
    if binning == "right":                                    # bin i = (edges[i], edges[i+1]]
        idx = np.clip(np.ceil(conf * n), 1, n).astype(np.int64) - 1
        idx -= (conf <= edges[idx]) & (idx > 0)
        idx += (conf > edges[idx + 1]) & (idx < n - 1)
        idx[conf <= 0] = -1                                   # confidence 0 is dropped
        return idx
    ext = np.append(edges, np.inf)                            # bin i = [ext[i], ext[i+1]), i <= n
    idx = np.clip(np.floor(conf * n), 0, n).astype(np.int64)
    idx -= (conf < ext[idx]) & (idx > 0)
    idx += (conf >= ext[idx + 1]) & (idx < n)
    return idx


def n_buckets(n_bins: int, binning: str) -> int:
    """Number of buckets a binning produces (n_bins, or n_bins + 1 for "left")."""
    return n_bins + (1 if binning == "left" else 0)


def bin_sums(conf: np.ndarray, correct: np.ndarray, n_bins: int, binning: str = "right",
             weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (count, sum of confidences, number correct): (buckets,) each, or (B, buckets)
    under (B, N) image counts ``weights`` (bootstrap draws, :class:`~lczldl.evaluation.intervals.Sums`)."""
    idx = bin_index(conf, n_bins, binning)
    nb = n_buckets(n_bins, binning)
    s = Sums(weights, len(idx))
    return (s.cells(idx, nb), s.cells(idx, nb, np.asarray(conf, dtype=np.float64)),
            s.cells(idx, nb, np.asarray(correct, dtype=np.float64)))


def calibration_bins(conf: np.ndarray, correct: np.ndarray, n_bins: int,
                     binning: str = "right") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (count, mean confidence, accuracy); mean/accuracy NaN in empty buckets.

    ``conf`` (N,) top-label confidence, ``correct`` (N,) bool. For reliability diagrams.
    """
    cnt, s_conf, s_acc = bin_sums(conf, correct, n_bins, binning)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cnt, s_conf / cnt, s_acc / cnt


def ece_mce(conf: np.ndarray, correct: np.ndarray, n_bins: int, binning: str = "right",
            weights: np.ndarray | None = None) -> tuple[Any, Any]:
    """(ECE, MCE) of top-label confidence; (nan, nan) when no sample is binned. With (B, N) image
    counts ``weights``: two (B,) arrays, one value per draw."""
    cnt, s_conf, s_acc = bin_sums(conf, correct, n_bins, binning, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(s_acc / cnt - s_conf / cnt)
    nz = cnt > 0
    tot = cnt.sum(axis=-1)
    if weights is None:
        if not nz.any():
            return float("nan"), float("nan")
        return float(masked_sum(cnt * gap, nz) / tot), float(masked_max(gap, nz))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, masked_sum(cnt * gap, nz) / tot, np.nan), masked_max(gap, nz)


def sce_seed(probs: np.ndarray, labels: np.ndarray, n_bins: int,
             weights: np.ndarray | None = None) -> Any:
    """The seed's "static calibration error" (utils/calibration.py of the authors' code).

    Right-closed bins on the top-label confidence. In each bin b and for each true class k, with
    n_bk the samples of bin b whose label is k: gap_bk = |accuracy of those samples - their mean
    predicted probability of class k|. SCE = (1/K) * sum_bk n_bk * gap_bk / sum_bk n_bk.
    (The seed hard-codes 1/10; K = 10 in the study.) Not Nixon et al.'s static calibration error.
    A float, or (B,) under (B, N) image counts ``weights``.
    """
    n, k = probs.shape
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = bin_index(conf, n_bins, "right")
    cell = np.where(idx >= 0, idx * k + labels, -1)
    s = Sums(weights, n)
    cnt = s.cells(cell, n_bins * k)
    acc = s.cells(cell, n_bins * k, correct)
    pk = s.cells(cell, n_bins * k, probs[np.arange(n), labels])
    tot = cnt.sum(axis=-1)
    # n_bk * |acc_bk/n_bk - p_bk/n_bk| = |sum acc - sum p|
    if weights is None:
        return float(masked_sum(np.abs(acc - pk), cnt > 0) / tot / k) if tot > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, masked_sum(np.abs(acc - pk), cnt > 0) / tot / k, np.nan)


def classwise_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int, binning: str = "right",
                  weights: np.ndarray | None = None) -> Any:
    """Classwise ECE (Kull et al. 2019): mean over classes k of the ECE of p_k against 1[label = k],
    all N samples binned on p_k (equal-width bins, ``binning`` convention, except that p_k = 0 is
    kept in the first bin under "right": every sample counts for every class). A float, or (B,)
    under (B, N) image counts ``weights``."""
    n, k = probs.shape
    nb = n_buckets(n_bins, binning)
    idx = np.maximum(bin_index(probs.ravel(), n_bins, binning), 0)     # (N*K,)
    cell = idx.reshape(n, k) + nb * np.arange(k)[None, :]               # (N, K)
    s = Sums(weights, n)
    sp = s.cells(cell, nb * k, probs)
    sy = s.cells(cell[np.arange(n), labels], nb * k)
    out = np.abs(sy - sp).sum(axis=-1) / s.n / k
    return float(out) if weights is None else out


def adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int,
                 weights: np.ndarray | None = None) -> Any:
    """ECE with equal-mass bins: samples sorted by confidence (stable) and cut into n_bins groups
    of sizes as np.array_split (first N mod n_bins groups one larger); |sum acc - sum conf| / N.

    With (B, N) image counts ``weights``: (B,) values, each the adaptive ECE of the sample in which
    image i appears w[b, i] times (:func:`_adaptive_ece_weighted`, tested equal on explicit resamples)."""
    if weights is not None:
        return _adaptive_ece_weighted(np.asarray(weights, dtype=np.float64), np.asarray(conf, dtype=np.float64),
                                      np.asarray(correct, dtype=np.float64), n_bins)
    n = len(conf)
    if n == 0:
        return float("nan")
    b = min(int(n_bins), n)
    order = np.argsort(conf, kind="stable")
    sizes = np.full(b, n // b)
    sizes[: n % b] += 1
    gid = np.empty(n, dtype=np.int64)
    gid[order] = np.repeat(np.arange(b), sizes)
    sc = np.bincount(gid, weights=np.asarray(conf, dtype=np.float64), minlength=b)
    sa = np.bincount(gid, weights=np.asarray(correct, dtype=np.float64), minlength=b)
    return float(np.abs(sa - sc).sum() / n)


def _adaptive_ece_weighted(w: np.ndarray, conf: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """:func:`adaptive_ece` per row of (B, N) counts without expanding the samples: the expanded
    sample sorted by confidence (ties by image index, the one difference to sorting the resampled
    array), cut at the np.array_split group boundaries; a boundary may split an image's copies."""
    order = np.argsort(conf, kind="stable")
    ws, cs, acs = w[:, order], conf[order], correct[order]
    n_draw = int(round(float(w[0].sum())))
    b = min(int(n_bins), n_draw)
    sizes = np.full(b, n_draw // b)
    sizes[: n_draw % b] += 1
    bounds = np.r_[0, np.cumsum(sizes)].astype(np.float64)                  # positions 0..n
    cw = np.cumsum(ws, axis=1)                                              # (B, N)
    nrow, n = ws.shape
    off = np.arange(nrow)[:, None] * (n_draw + 1.0)      # rows of cw live in disjoint ranges
    j = np.searchsorted((cw + off).ravel(), (bounds[None, :] + off).ravel(), side="right")
    j = j.reshape(nrow, -1) - np.arange(nrow)[:, None] * n                  # images fully before
    jc = np.minimum(j, n - 1)
    before = np.where(j > 0, np.take_along_axis(cw, np.maximum(j - 1, 0), axis=1), 0.0)
    part = bounds[None, :] - before                                         # copies of image j
    zero = np.zeros((nrow, 1))
    f_conf = np.take_along_axis(np.hstack([zero, np.cumsum(ws * cs, axis=1)]), j, axis=1) + part * cs[jc]
    f_acc = np.take_along_axis(np.hstack([zero, np.cumsum(ws * acs, axis=1)]), j, axis=1) + part * acs[jc]
    return np.abs(np.diff(f_acc, axis=1) - np.diff(f_conf, axis=1)).sum(axis=1) / n_draw
