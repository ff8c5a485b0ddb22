"""Owns the bootstrap intervals of :func:`lczldl.evaluation.metrics.compute_metrics`' keys: every key
computed for many (B, N) image-count vectors at once (one matrix product per group of keys instead
of B calls), the same definitions as compute_metrics (tested equal on explicit resamples).

Phase-2 note: the definitions live in metrics.py; this module re-expresses them as weighted sums
for speed (compute_metrics takes ~9 ms on 1,157 x 10, so 1,000 draws would take ~9 s per run and
method). Folding a ``weights`` argument into metrics.py would leave one owner.
"""

from __future__ import annotations

import math

import numpy as np

from lczldl.distributions import N_ENTROPY_BINS, entropy_bin, entropy_nats
from lczldl.evaluation.calibration import bin_index, n_buckets
from lczldl.evaluation.intervals import (
    LEVEL,
    N_BOOT,
    SEED,
    bootstrap_counts,
    cell_sums,
    percentile_interval,
    weighted_spearman,
)
from lczldl.evaluation.metrics import KERAS_EPS, LOG_FLOOR, METRIC_KEYS, validate


def _cell_sums(wt: np.ndarray, cell: np.ndarray, n_cells: int, values: np.ndarray | None = None) -> np.ndarray:
    """intervals.cell_sums with the transposed counts ``wt`` (N, B) computed once per call."""
    return cell_sums(wt.T, cell, n_cells, values, wt=wt)


def _classification(w: np.ndarray, wt: np.ndarray, labels: np.ndarray, preds: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """oa, maa, waa, kappa, balanced_accuracy, macro_f1 per draw (metrics.classification_metrics)."""
    cm = _cell_sums(wt, labels * k + preds, k * k).reshape(-1, k, k)
    n = w.sum(axis=1)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        seen = (support > 0) | (predicted > 0)
        oa = tp.sum(axis=1) / n
        pe = (support * predicted).sum(axis=1) / n**2
        return {"oa": oa, "maa": (precision * seen).sum(1) / seen.sum(1),
                "waa": (precision * support).sum(axis=1) / n,
                "kappa": np.where(pe < 1.0, (oa - pe) / (1.0 - pe), np.nan),
                "balanced_accuracy": (recall * (support > 0)).sum(1) / (support > 0).sum(1),
                "macro_f1": (f1 * seen).sum(1) / seen.sum(1)}


def _ece_cells(wt, cell, n_cells, conf, correct):
    return (_cell_sums(wt, cell, n_cells), _cell_sums(wt, cell, n_cells, conf),
            _cell_sums(wt, cell, n_cells, correct))


def _calibration(w, wt, probs, labels, conf, correct, n_bins, binning) -> dict[str, np.ndarray]:
    """ece, mce, sce, classwise_ece per draw (calibration.ece_mce, sce_seed, classwise_ece)."""
    n, k = probs.shape
    nb = n_buckets(n_bins, binning)
    cnt, sc, sa = _ece_cells(wt, bin_index(conf, n_bins, binning), nb, conf, correct)
    tot = cnt.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(sa / cnt - sc / cnt)
        out = {"ece": np.where(tot > 0, np.abs(sa - sc).sum(1) / tot, np.nan),
               "mce": np.where(tot > 0, np.where(cnt > 0, gap, -np.inf).max(axis=1), np.nan)}
    top = probs.max(axis=1)                              # sce bins the top probability, "right"
    ri = bin_index(top, n_bins, "right")
    cell = np.where(ri >= 0, ri * k + labels, -1)
    c_cnt, c_pk, c_acc = _ece_cells(wt, cell, n_bins * k, probs[np.arange(n), labels],
                                    (probs.argmax(1) == labels).astype(np.float64))
    c_tot = c_cnt.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sce"] = np.where(c_tot > 0, np.abs(c_acc - c_pk).sum(1) / c_tot / k, np.nan)
    idx = np.maximum(bin_index(probs.ravel(), n_bins, binning), 0).reshape(n, k) + nb * np.arange(k)
    sy = _cell_sums(wt, idx[np.arange(n), labels], nb * k)
    out["classwise_ece"] = np.abs(sy - _cell_sums(wt, idx, nb * k, probs)).sum(axis=1) / w.sum(axis=1) / k
    return out


def _adaptive_ece(w: np.ndarray, conf: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """calibration.adaptive_ece per draw: the expanded sample sorted by confidence (ties by image
    index), cut into groups of np.array_split sizes; a group boundary may split an image's copies."""
    order = np.argsort(conf, kind="stable")
    ws, cs, acs = w[:, order], conf[order], correct[order].astype(np.float64)
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


def weighted_metrics(probs: np.ndarray, labels: np.ndarray, distributions: np.ndarray, weights: np.ndarray,
                     n_bins: int = 20, binning: str = "right", confidence: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """compute_metrics' keys (METRIC_KEYS) for each row of (B, N) image counts -> {key: (B,)}."""
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    d = np.asarray(distributions, dtype=np.float64)
    validate(p, labels, d)
    w = np.asarray(weights, dtype=np.float64)
    n, k = p.shape
    rows = np.arange(n)
    preds = p.argmax(axis=1)
    correct = (preds == labels).astype(np.float64)
    conf = p[rows, preds] if confidence is None else np.asarray(confidence, dtype=np.float64)
    wt = np.ascontiguousarray(w.T)
    out = _classification(w, wt, labels, preds, k)
    logp = np.log(np.maximum(p, LOG_FLOOR))
    logq = np.clip(logp - np.log(p.sum(axis=1, keepdims=True)), math.log(KERAS_EPS), math.log1p(-KERAS_EPS))
    pred_ent = -(p * logp).sum(axis=1)
    vote_ent = entropy_nats(d)
    m = 0.5 * (d + p)
    per_image = {
        "ce_one_hot": -logq[rows, labels], "ce_distr": -(d * logq).sum(axis=1),
        "mean_confidence": conf,
        "brier_one_hot": (p * p).sum(axis=1) - 2.0 * p[rows, labels] + 1.0,
        "brier_distr": ((p - d) ** 2).sum(axis=1), "nll": -logp[rows, labels],
        "kl_distr": -vote_ent - (d * logp).sum(axis=1),
        "js_distr": -(m * np.log(np.maximum(m, LOG_FLOOR))).sum(axis=1) - 0.5 * (vote_ent + pred_ent),
        "tv_distr": 0.5 * np.abs(p - d).sum(axis=1)}
    names = list(per_image)
    means = (np.stack([per_image[c] for c in names], axis=0) @ wt).T / w.sum(axis=1, keepdims=True)
    out.update({c: means[:, j] for j, c in enumerate(names)})
    out["overconfidence"] = out["mean_confidence"] - out["oa"]
    out.update(_calibration(w, wt, p, labels, conf, correct, n_bins, binning))
    out["adaptive_ece"] = _adaptive_ece(w, conf, correct, n_bins)
    out["entropy_spearman"] = weighted_spearman(pred_ent, vote_ent, w)
    eb = entropy_bin(vote_ent)
    size, hits = _cell_sums(wt, eb, N_ENTROPY_BINS), _cell_sums(wt, eb, N_ENTROPY_BINS, correct)
    nb = n_buckets(n_bins, binning)
    ci = bin_index(conf, n_bins, binning)
    cnt, sc, sa = _ece_cells(wt, np.where(ci >= 0, eb * nb + ci, -1), N_ENTROPY_BINS * nb, conf, correct)
    binned = cnt.reshape(-1, N_ENTROPY_BINS, nb).sum(axis=2)
    gaps = np.abs(sa - sc).reshape(-1, N_ENTROPY_BINS, nb).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        for b in range(N_ENTROPY_BINS):
            out[f"oa_ebin{b}"] = np.where(size[:, b] > 0, hits[:, b] / size[:, b], np.nan)
        for b in range(N_ENTROPY_BINS):
            out[f"ece_ebin{b}"] = np.where(binned[:, b] > 0, gaps[:, b] / binned[:, b], np.nan)
    return {key: out[key] for key in METRIC_KEYS}


def metric_intervals(probs: np.ndarray, labels: np.ndarray, distributions: np.ndarray, *,
                     n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL, n_bins: int = 20,
                     binning: str = "right", confidence: np.ndarray | None = None,
                     chunk: int = 2_000_000) -> dict[str, tuple[float, float]]:
    """95 % percentile bootstrap interval over test images of every compute_metrics key:
    {key: (lo, hi)}. Draws in chunks of at most ``chunk`` counts (memory: ~8 bytes x chunk x 25)."""
    n = len(labels)
    w = bootstrap_counts(n, n_boot, seed)
    step = max(1, chunk // max(n, 1))
    parts = [weighted_metrics(probs, labels, distributions, w[i:i + step], n_bins, binning, confidence)
             for i in range(0, n_boot, step)]
    out = {}
    for key in METRIC_KEYS:
        lo, hi = percentile_interval(np.concatenate([pt[key] for pt in parts]), level)
        out[key] = (float(lo), float(hi))
    return out
