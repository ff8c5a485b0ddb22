"""Binned calibration errors as vectorised numpy functions (np.bincount, no loops over samples).

Binning conventions (``binning``), n_bins equal-width bins on [0, 1] (edges np.linspace(0, 1, n+1)):
- ``"right"`` (default, the seed's hollance-derived code): bins (lo, hi] via
  ``np.digitize(conf, edges, right=True)``; confidence exactly 0 is dropped (not counted anywhere);
  confidence 1.0 falls into the last bin. Values above 1 (rounding) are kept in the last bin.
- ``"left"`` (torchmetrics' ``MulticlassCalibrationError``): bins [lo, hi) via
  ``bucketize(right=True)``; confidence 1.0 (and above) lands in an extra bucket n_bins of its own.

ECE = sum over non-empty bins of count * |accuracy - mean confidence| / (number of binned samples);
MCE = max over non-empty bins of |accuracy - mean confidence|. See docs/metrics.md.
"""

from __future__ import annotations

import numpy as np

BINNINGS = ("right", "left")
#: Default number of equal-width confidence bins (the seed's 20; ``evaluation.n_bins`` in the config)
N_BINS = 20


def bin_index(conf: np.ndarray, n_bins: int = N_BINS, binning: str = "right") -> np.ndarray:
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


def calibration_bins(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS,
                     binning: str = "right") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (count, mean confidence, accuracy); mean/accuracy NaN in empty buckets.

    ``conf`` (N,) top-label confidence, ``correct`` (N,) bool. For reliability diagrams.
    """
    idx = bin_index(conf, n_bins, binning)
    nb = n_buckets(n_bins, binning)
    keep = idx >= 0
    ik = idx[keep]
    cnt = np.bincount(ik, minlength=nb).astype(np.float64)
    s_conf = np.bincount(ik, weights=np.asarray(conf, dtype=np.float64)[keep], minlength=nb)
    s_acc = np.bincount(ik, weights=np.asarray(correct, dtype=np.float64)[keep], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cnt, s_conf / cnt, s_acc / cnt


def ece_mce(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS,
            binning: str = "right") -> tuple[float, float]:
    """(ECE, MCE) of top-label confidence; (nan, nan) when no sample is binned."""
    cnt, c, a = calibration_bins(conf, correct, n_bins, binning)
    nz = cnt > 0
    if not nz.any():
        return float("nan"), float("nan")
    gap = np.abs(a[nz] - c[nz])
    return float((cnt[nz] * gap).sum() / cnt.sum()), float(gap.max())


def sce_seed(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """The seed's "static calibration error" (utils/calibration.py of the authors' code).

    Right-closed bins on the top-label confidence. In each bin b and for each true class k, with
    n_bk the samples of bin b whose label is k: gap_bk = |accuracy of those samples - their mean
    predicted probability of class k|. SCE = (1/K) * sum_bk n_bk * gap_bk / sum_bk n_bk.
    (The seed hard-codes 1/10; K = 10 in the study.) Not Nixon et al.'s static calibration error.
    """
    n, k = probs.shape
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = bin_index(conf, n_bins, "right")
    keep = idx >= 0
    if not keep.any():
        return float("nan")
    lab = labels[keep]
    cell = idx[keep] * k + lab
    cnt = np.bincount(cell, minlength=n_bins * k).astype(np.float64)
    acc = np.bincount(cell, weights=correct[keep], minlength=n_bins * k)
    pk = np.bincount(cell, weights=probs[keep][np.arange(lab.size), lab], minlength=n_bins * k)
    nz = cnt > 0
    # n_bk * |acc_bk/n_bk - p_bk/n_bk| = |sum acc - sum p|
    return float(np.abs(acc[nz] - pk[nz]).sum() / cnt.sum() / k)


def classwise_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS, binning: str = "right") -> float:
    """Classwise ECE (Kull et al. 2019): mean over classes k of the ECE of p_k against 1[label = k],
    all N samples binned on p_k (equal-width bins, ``binning`` convention, except that p_k = 0 is
    kept in the first bin under "right": every sample counts for every class)."""
    n, k = probs.shape
    nb = n_buckets(n_bins, binning)
    idx = np.maximum(bin_index(probs.ravel(), n_bins, binning), 0)     # (N*K,)
    cell = (idx.reshape(n, k) + nb * np.arange(k)[None, :]).ravel()
    sp = np.bincount(cell, weights=probs.ravel(), minlength=nb * k)
    sy = np.bincount(cell[np.arange(n) * k + labels], minlength=nb * k).astype(np.float64)
    return float(np.abs(sy - sp).sum() / n / k)


def adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE with equal-mass bins: samples sorted by confidence (stable) and cut into n_bins groups
    of sizes as np.array_split (first N mod n_bins groups one larger); |sum acc - sum conf| / N."""
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
