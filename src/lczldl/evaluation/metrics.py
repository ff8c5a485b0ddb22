"""Every metric of the paper and more, as vectorised pure numpy functions.

Inputs: ``probs`` (N, K) probabilities (rows sum to 1), ``labels`` (N,) class indices 0..K-1
(majority vote), ``distributions`` (N, K) vote distributions (rows sum to 1). All logs natural.
Calibration binning conventions are in :mod:`lczldl.evaluation.calibration`; every definition,
including where the paper's names mean something unusual (maa / waa are *precision*), is in
docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np

from lczldl.distributions import N_ENTROPY_BINS, entropy_bin, entropy_nats, spearman
from lczldl.errors import DataError
from lczldl.evaluation import registry
from lczldl.evaluation.calibration import (
    N_BINS,
    adaptive_ece,
    bin_index,
    classwise_ece,
    ece_mce,
    n_buckets,
    sce_seed,
)

#: Keras' backend epsilon used by categorical_crossentropy (ce_one_hot / ce_distr clip to it).
KERAS_EPS = 1e-7
#: Floor applied to probabilities before log in nll / kl_distr / js_distr (keeps them finite).
LOG_FLOOR = 1e-12
#: Tolerance on row sums of probabilities and distributions.
ROW_SUM_TOL = 1e-3
#: Keys by group, in summary.csv order (names, directions, labels: :mod:`lczldl.evaluation.registry`).
PAPER_METRICS = registry.keys(registry.PAPER)
EXTRA_METRICS = registry.keys(registry.EXTRA)
ENTROPY_BIN_METRICS = registry.keys(registry.ENTROPY_BIN)
#: Keys that depend on the top-label confidence (what ``compute_metrics(confidence=...)`` changes,
#: besides ece_ebin*); the ensemble's compat block repeats them.
CONFIDENCE_METRICS = tuple(k for k in PAPER_METRICS + EXTRA_METRICS if registry.METRICS[k].confidence)
#: Every key returned by :func:`compute_metrics`, in order.
METRIC_KEYS = PAPER_METRICS + EXTRA_METRICS + ENTROPY_BIN_METRICS


def _check_rows(a: np.ndarray, name: str, where: str) -> None:
    if not np.isfinite(a).all():
        raise DataError(f"{where}: {name} contain NaN or inf ({int((~np.isfinite(a)).sum())} values); "
                        "check the model outputs / data")
    if (a < 0).any():
        raise DataError(f"{where}: {name} contain negative values ({int((a < 0).sum())}); "
                        "pass probabilities, not logits or log-probabilities")
    dev = np.abs(a.sum(axis=1) - 1.0)
    bad = dev > ROW_SUM_TOL
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} rows of {name} do not sum to 1 (first row "
                        f"{int(np.argmax(bad))}, worst {float(dev.max()):.3g} off); pass normalised rows")


def validate(probs: np.ndarray, labels: np.ndarray | None = None,
             distributions: np.ndarray | None = None, where: str = "predictions") -> None:
    """Raise DataError (one line) on bad shapes, NaN/inf/negative values, rows not summing to 1
    (tolerance ROW_SUM_TOL) or labels outside 0..K-1."""
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise DataError(f"{where}: probs must be (N, K) with K >= 2, got shape {probs.shape}")
    if probs.shape[0] == 0:
        raise DataError(f"{where}: no samples (probs has shape {probs.shape})")
    _check_rows(probs, "probs", where)
    if labels is not None:
        if labels.shape != (probs.shape[0],):
            raise DataError(f"{where}: labels shape {labels.shape} does not match probs {probs.shape}")
        if labels.min() < 0 or labels.max() >= probs.shape[1]:
            raise DataError(f"{where}: labels must be class indices 0..{probs.shape[1] - 1}, got "
                            f"range {int(labels.min())}..{int(labels.max())}")
    if distributions is not None:
        if distributions.shape != probs.shape:
            raise DataError(f"{where}: distributions shape {distributions.shape} does not match "
                            f"probs {probs.shape}")
        _check_rows(distributions, "distributions", where)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """(K, K) float64 counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k).astype(np.float64)


def classification_metrics(labels: np.ndarray, preds: np.ndarray, k: int) -> dict[str, float]:
    """oa, maa / waa (sklearn classification_report macro / weighted *precision*), kappa (Cohen),
    balanced_accuracy, macro_f1. Like sklearn, classes averaged over are those present in labels or
    predictions; precision (recall, F1) of a class never predicted (never true) counts as 0."""
    n = labels.size
    cm = confusion_matrix(labels, preds, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    seen = (support > 0) | (predicted > 0)
    oa = float(tp.sum() / n)
    pe = float((support * predicted).sum() / n**2)
    return {
        "oa": oa,
        "maa": float(precision[seen].mean()),
        "waa": float((precision * support).sum() / n),
        "kappa": float((oa - pe) / (1.0 - pe)) if pe < 1.0 else float("nan"),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "macro_f1": float(f1[seen].mean()),
    }


def compute_metrics(probs: np.ndarray, labels: np.ndarray, distributions: np.ndarray, n_bins: int = N_BINS,
                    binning: str = "right", confidence: np.ndarray | None = None,
                    where: str = "predictions") -> dict[str, float]:
    """The paper's metrics and the extras, keys METRIC_KEYS (floats; NaN where undefined).

    probs (N, K), labels (N,) int 0..K-1, distributions (N, K); n_bins equal-width calibration bins,
    binning "right" (seed, default) or "left" (torchmetrics). ``confidence`` (N,) overrides the
    top-label confidence used by CONFIDENCE_METRICS and ece_ebin* (e.g. the seed's ensemble
    "mean of members' top-1 confidences"); correctness stays argmax(probs) == label. ``where``
    names the source in error messages. Raises DataError on invalid inputs.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"{where}: labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    dist = np.asarray(distributions, dtype=np.float64)
    validate(probs, labels, dist, where)
    n, k = probs.shape
    rows = np.arange(n)
    preds = probs.argmax(axis=1)
    correct = preds == labels
    if confidence is None:
        conf = probs[rows, preds]
    else:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != (n,) or not np.isfinite(conf).all():
            raise DataError(f"{where}: confidence must be (N,) = ({n},) finite values, got {conf.shape}")

    out = classification_metrics(labels, preds, k)
    # One log of the probabilities serves everything: log p floored at LOG_FLOOR for nll / kl /
    # entropy, and Keras' clipped log of the renormalised rows for ce_one_hot / ce_distr.
    logp = np.log(np.maximum(probs, LOG_FLOOR))
    logq = logp - np.log(probs.sum(axis=1, keepdims=True))
    np.clip(logq, math.log(KERAS_EPS), math.log1p(-KERAS_EPS), out=logq)
    p_lab = probs[rows, labels]
    out["ce_one_hot"] = float(-logq[rows, labels].mean())
    out["ce_distr"] = float(-(dist * logq).sum(axis=1).mean())
    del logq
    out["ece"], out["mce"] = ece_mce(conf, correct, n_bins, binning)
    out["mean_confidence"] = float(conf.mean())
    out["overconfidence"] = out["mean_confidence"] - out["oa"]
    out["sce"] = sce_seed(probs, labels, n_bins)

    pred_ent = -(probs * logp).sum(axis=1)           # differs from 0 log 0 = 0 by < 3e-11 per entry
    vote_ent = entropy_nats(dist)
    d_logp = (dist * logp).sum(axis=1)
    sq_p = (probs * probs).sum(axis=1)
    m = 0.5 * (dist + probs)
    tv = 0.5 * np.abs(probs - dist).sum(axis=1)
    brier_d = sq_p - 2.0 * (probs * dist).sum(axis=1) + (dist * dist).sum(axis=1)
    h_m = -(m * np.log(np.maximum(m, LOG_FLOOR))).sum(axis=1)   # JS = H(m) - (H(d) + H(p)) / 2
    del m
    out.update({
        "classwise_ece": classwise_ece(probs, labels, n_bins, binning),
        "adaptive_ece": adaptive_ece(conf, correct, n_bins),
        "brier_one_hot": float((sq_p - 2.0 * p_lab + 1.0).mean()),
        "brier_distr": float(brier_d.mean()),
        "nll": float(-logp[rows, labels].mean()),
        "kl_distr": float((-vote_ent - d_logp).mean()),   # KL(d || p) = -H(d) - sum d log p
        "js_distr": float((h_m - 0.5 * (vote_ent + pred_ent)).mean()),
        "tv_distr": float(tv.mean()),
        "entropy_spearman": spearman(pred_ent, vote_ent),
    })
    out.update(entropy_bin_metrics(conf, correct, vote_ent, n_bins, binning))
    return {key: out[key] for key in METRIC_KEYS}


def entropy_bin_metrics(conf: np.ndarray, correct: np.ndarray, vote_entropy: np.ndarray,
                        n_bins: int = N_BINS, binning: str = "right") -> dict[str, float]:
    """oa_ebin{b} and ece_ebin{b} per paper vote-entropy bin b (NaN for an empty bin), in one
    bincount over (entropy bin, confidence bin) cells."""
    eb = entropy_bin(vote_entropy)
    nb = n_buckets(n_bins, binning)
    ci = bin_index(conf, n_bins, binning)
    e = N_ENTROPY_BINS
    size = np.bincount(eb, minlength=e).astype(np.float64)
    hits = np.bincount(eb, weights=correct.astype(np.float64), minlength=e)
    keep = ci >= 0
    cell = eb[keep] * nb + ci[keep]
    cnt = np.bincount(cell, minlength=e * nb).astype(np.float64).reshape(e, nb)
    sc = np.bincount(cell, weights=conf[keep], minlength=e * nb).reshape(e, nb)
    sa = np.bincount(cell, weights=correct[keep].astype(np.float64), minlength=e * nb).reshape(e, nb)
    binned = cnt.sum(axis=1)
    out: dict[str, float] = {}
    for b in range(e):
        out[f"oa_ebin{b}"] = float(hits[b] / size[b]) if size[b] else float("nan")
    for b in range(e):
        out[f"ece_ebin{b}"] = float(np.abs(sa[b] - sc[b]).sum() / binned[b]) if binned[b] else float("nan")
    return out
