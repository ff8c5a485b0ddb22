"""Owns every metric of the paper and more (the one formula of each), as vectorised pure numpy
functions; each also runs under bootstrap image counts (``weights``) for its intervals.

Inputs: ``probs`` (N, K) probabilities (rows sum to 1), ``labels`` (N,) class indices 0..K-1
(majority vote, or the one label of a store without votes), ``distributions`` (N, K) vote
distributions (rows sum to 1), None for a store without votes: the metrics that need votes
(:data:`lczldl.evaluation.registry.VOTE_METRICS`) are then left out, not NaN. With K = 17 (class i
<-> LCZ i + 1, So2Sat LCZ42) the LCZ community's OA_u and OA_bu are added. All logs natural.
Calibration binning conventions are in :mod:`lczldl.evaluation.calibration`; every definition,
including where the paper's names mean something unusual (maa / waa are *precision*), is in
docs/metrics.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lczldl.constants import N_LCZ, N_URBAN
from lczldl.distributions import LOG_FLOOR, N_ENTROPY_BINS, entropy_bin, entropy_nats, spearman
from lczldl.errors import DataError
from lczldl.evaluation import registry
from lczldl.evaluation.calibration import (
    adaptive_ece,
    bin_index,
    classwise_ece,
    ece_mce,
    n_buckets,
    sce_seed,
)
from lczldl.evaluation.intervals import Sums, masked_mean, weighted_spearman

#: Keras' backend epsilon used by categorical_crossentropy (ce_one_hot / ce_distr clip to it).
KERAS_EPS = 1e-7
#: (LOG_FLOOR, the floor applied to probabilities before log in nll / kl_distr / js_distr, is
#: lczldl.distributions.LOG_FLOOR.)
#: Tolerance on row sums of probabilities and distributions.
ROW_SUM_TOL = 1e-3
#: Keys by group, in summary.csv order (names, directions, labels: :mod:`lczldl.evaluation.registry`).
PAPER_METRICS = registry.keys(registry.PAPER)
EXTRA_METRICS = registry.keys(registry.EXTRA)
ENTROPY_BIN_METRICS = registry.keys(registry.ENTROPY_BIN)
#: Keys that depend on the top-label confidence (what ``compute_metrics(confidence=...)`` changes,
#: besides ece_ebin*); the ensemble's compat block repeats them.
CONFIDENCE_METRICS = tuple(k for k in PAPER_METRICS + EXTRA_METRICS if registry.METRICS[k].confidence)
#: Every key returned by :func:`compute_metrics` for K != 17 with votes, in order.
METRIC_KEYS = PAPER_METRICS + EXTRA_METRICS + ENTROPY_BIN_METRICS
#: The LCZ community's accuracies, added for K = 17 (:func:`lcz_accuracies`).
LCZ_METRICS = registry.keys(registry.LCZ)


def metric_keys(num_classes: int, votes: bool) -> tuple[str, ...]:
    """The keys :func:`compute_metrics` returns for K = ``num_classes``, with or without vote
    distributions, in registry (summary.csv) order."""
    wanted = set(METRIC_KEYS) | (set(LCZ_METRICS) if num_classes == N_LCZ else set())
    return tuple(k for k in registry.keys() if k in wanted and (votes or not registry.METRICS[k].votes))


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


def confusion_counts(labels: np.ndarray, preds: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(K, K) float64 counts (rows = true class, columns = predicted), or (B, K, K) under (B, N)
    image counts ``weights``."""
    cm = Sums(weights, labels.size).cells(labels * k + preds, k * k)
    return cm.reshape(cm.shape[:-1] + (k, k))


def lcz_accuracies(cm: np.ndarray) -> dict[str, Any]:
    """The LCZ community's accuracies from a (K, K) or (B, K, K) confusion matrix of all 17 LCZ
    (class i <-> LCZ i + 1; rows = reference): ``oa_u``, the accuracy on the images whose reference is
    urban (LCZ 1-10; NaN without any), and ``oa_bu``, the accuracy after merging the built classes
    1-10 and the natural classes 11-17 into two (Bechtel et al. 2019; Demuzere et al. 2021). OA_w
    (similarity-weighted accuracy) is not computed: its weight matrix was not available
    (docs/metrics.md)."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape[-2:] != (N_LCZ, N_LCZ):
        raise ValueError(f"lcz_accuracies needs a 17 x 17 confusion matrix, got {cm.shape}")
    u = N_URBAN
    urban_rows = cm[..., :u, :].sum(axis=(-2, -1))
    urban_hits = np.trace(cm[..., :u, :u], axis1=-2, axis2=-1)
    same_side = cm[..., :u, :u].sum(axis=(-2, -1)) + cm[..., u:, u:].sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"oa_u": np.where(urban_rows > 0, urban_hits / urban_rows, np.nan),
                "oa_bu": same_side / cm.sum(axis=(-2, -1))}


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """(support, predicted, tp, precision, recall, f1) per class of a (..., K, K) confusion matrix;
    precision (recall, F1) 0 where a class is never predicted (never true), as sklearn's."""
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return support, predicted, tp, precision, recall, f1


def per_class_metrics(labels: np.ndarray, preds: np.ndarray, k: int) -> dict[str, list[float | None]]:
    """Per class (index 0..K-1): ``support`` (test images of the class), ``precision``, ``recall``
    and ``f1`` as lists; precision is None (undefined) for a class never predicted, recall for a
    class without test images, F1 where either is None (metrics.json's ``per_class``)."""
    labels, preds = _as_labels(labels, "labels"), _as_labels(preds, "preds")
    support, predicted, _, precision, recall, f1 = _per_class(confusion_matrix(labels, preds, k))

    def col(v: np.ndarray, ok: np.ndarray) -> list[float | None]:
        return [float(x) if o else None for x, o in zip(v, ok, strict=True)]

    return {"support": [int(x) for x in support], "precision": col(precision, predicted > 0),
            "recall": col(recall, support > 0), "f1": col(f1, (predicted > 0) & (support > 0))}


def classification_metrics(labels: np.ndarray, preds: np.ndarray, k: int,
                           weights: np.ndarray | None = None) -> dict[str, Any]:
    """oa, maa / waa (sklearn classification_report macro / weighted *precision*), kappa (Cohen),
    balanced_accuracy, macro_f1. Like sklearn, classes averaged over are those present in labels or
    predictions; precision (recall, F1) of a class never predicted (never true) counts as 0.
    Floats, or (B,) arrays under (B, N) image counts ``weights``."""
    s = Sums(weights, labels.size)
    support, predicted, tp, precision, recall, f1 = _per_class(confusion_counts(labels, preds, k, weights))
    n = s.n
    with np.errstate(invalid="ignore", divide="ignore"):
        seen = (support > 0) | (predicted > 0)
        oa = tp.sum(axis=-1) / n
        pe = (support * predicted).sum(axis=-1) / n**2
        out = {"oa": oa, "maa": masked_mean(precision, seen), "waa": (precision * support).sum(axis=-1) / n,
               "kappa": np.where(pe < 1.0, (oa - pe) / (1.0 - pe), np.nan),
               "balanced_accuracy": masked_mean(recall, support > 0), "macro_f1": masked_mean(f1, seen)}
    return {key: (float(v) if weights is None else v) for key, v in out.items()}


def _as_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """(N,) int64 class indices; whole-number floats are accepted, anything else is a DataError."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        if not (labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0)):
            raise DataError(f"{where}: labels must be integer class indices, got dtype {labels.dtype}")
    return labels.astype(np.int64, copy=False)


def compute_metrics(probs: np.ndarray, labels: np.ndarray, distributions: np.ndarray | None, n_bins: int,
                    binning: str = "right", confidence: np.ndarray | None = None,
                    where: str = "predictions", weights: np.ndarray | None = None) -> dict[str, Any]:
    """The paper's metrics and the extras, keys :func:`metric_keys` (floats; NaN where undefined):
    METRIC_KEYS, without the vote metrics when ``distributions`` is None, with OA_u / OA_bu for K = 17.

    probs (N, K), labels (N,) int 0..K-1, distributions (N, K) or None; n_bins equal-width calibration bins,
    binning "right" (seed, default) or "left" (torchmetrics). ``confidence`` (N,) overrides the
    top-label confidence used by CONFIDENCE_METRICS and ece_ebin* (e.g. the seed's ensemble
    "mean of members' top-1 confidences"); correctness stays argmax(probs) == label. ``where``
    names the source in error messages. Raises DataError on invalid inputs.

    ``weights`` (B, N) image counts (bootstrap draws, :mod:`lczldl.evaluation.intervals`): every key
    becomes a (B,) array, value b being the metric of the sample in which image i appears w[b, i]
    times (the same formulas, reduced by weighted sums; tested equal to compute_metrics on the
    explicit resamples). Without weights the numbers are those of plain numpy reductions.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = _as_labels(labels, where)
    dist = None if distributions is None else np.asarray(distributions, dtype=np.float64)
    validate(probs, labels, dist, where)
    n, k = probs.shape
    try:
        s = Sums(weights, n)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    rows = np.arange(n)
    preds = probs.argmax(axis=1)
    correct = preds == labels
    if confidence is None:
        conf = probs[rows, preds]
    else:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != (n,) or not np.isfinite(conf).all():
            raise DataError(f"{where}: confidence must be (N,) = ({n},) finite values, got {conf.shape}")

    out: dict[str, Any] = classification_metrics(labels, preds, k, weights)
    # One log of the probabilities serves everything: log p floored at LOG_FLOOR for nll / kl /
    # entropy, and Keras' clipped log of the renormalised rows for ce_one_hot / ce_distr.
    logp = np.log(np.maximum(probs, LOG_FLOOR))
    logq = logp - np.log(probs.sum(axis=1, keepdims=True))
    np.clip(logq, math.log(KERAS_EPS), math.log1p(-KERAS_EPS), out=logq)
    p_lab = probs[rows, labels]
    out["ce_one_hot"] = -s.mean(logq[rows, labels])
    if dist is not None:
        out["ce_distr"] = -s.mean((dist * logq).sum(axis=1))
    del logq
    out["ece"], out["mce"] = ece_mce(conf, correct, n_bins, binning, weights)
    out["mean_confidence"] = s.mean(conf)
    out["overconfidence"] = out["mean_confidence"] - out["oa"]
    out["sce"] = sce_seed(probs, labels, n_bins, weights)

    sq_p = (probs * probs).sum(axis=1)
    out.update({
        "classwise_ece": classwise_ece(probs, labels, n_bins, binning, weights),
        "adaptive_ece": adaptive_ece(conf, correct, n_bins, weights),
        "brier_one_hot": s.mean(sq_p - 2.0 * p_lab + 1.0),
        "nll": -s.mean(logp[rows, labels]),
    })
    if dist is not None:
        out.update(_vote_metrics(probs, logp, sq_p, dist, s, weights))
        out.update(entropy_bin_metrics(conf, correct, entropy_nats(dist), n_bins, binning, weights))
    if k == N_LCZ:
        out.update(lcz_accuracies(confusion_counts(labels, preds, k, weights)))
    keys = metric_keys(k, dist is not None)
    if weights is None:
        return {key: float(out[key]) for key in keys}
    return {key: np.asarray(out[key], dtype=np.float64) for key in keys}


def _vote_metrics(probs: np.ndarray, logp: np.ndarray, sq_p: np.ndarray, dist: np.ndarray, s: Sums,
                  weights: np.ndarray | None) -> dict[str, Any]:
    """brier_distr, kl_distr, js_distr, tv_distr and entropy_spearman of (N, K) probabilities against
    (N, K) vote distributions (``logp``: log p floored at LOG_FLOOR; ``sq_p``: sum p^2 per row)."""
    pred_ent = -(probs * logp).sum(axis=1)           # differs from 0 log 0 = 0 by < 3e-11 per entry
    vote_ent = entropy_nats(dist)
    d_logp = (dist * logp).sum(axis=1)
    m = 0.5 * (dist + probs)
    tv = 0.5 * np.abs(probs - dist).sum(axis=1)
    brier_d = sq_p - 2.0 * (probs * dist).sum(axis=1) + (dist * dist).sum(axis=1)
    h_m = -(m * np.log(np.maximum(m, LOG_FLOOR))).sum(axis=1)   # JS = H(m) - (H(d) + H(p)) / 2
    del m
    return {
        "brier_distr": s.mean(brier_d),
        "kl_distr": s.mean(-vote_ent - d_logp),   # KL(d || p) = -H(d) - sum d log p
        "js_distr": s.mean(h_m - 0.5 * (vote_ent + pred_ent)),
        "tv_distr": s.mean(tv),
        "entropy_spearman": (spearman(pred_ent, vote_ent) if weights is None
                             else weighted_spearman(pred_ent, vote_ent, s.w)),
    }


def entropy_bin_metrics(conf: np.ndarray, correct: np.ndarray, vote_entropy: np.ndarray,
                        n_bins: int, binning: str = "right",
                        weights: np.ndarray | None = None) -> dict[str, Any]:
    """oa_ebin{b} and ece_ebin{b} per paper vote-entropy bin b (NaN for an empty bin), in one
    sum over (entropy bin, confidence bin) cells; floats, or (B,) arrays under (B, N) image counts
    ``weights``."""
    eb = entropy_bin(vote_entropy)
    nb = n_buckets(n_bins, binning)
    ci = bin_index(conf, n_bins, binning)
    e = N_ENTROPY_BINS
    s = Sums(weights, len(eb))
    size = s.cells(eb, e)
    hits = s.cells(eb, e, np.asarray(correct, dtype=np.float64))
    cell = np.where(ci >= 0, eb * nb + ci, -1)
    shape = (e, nb) if weights is None else (-1, e, nb)
    cnt = s.cells(cell, e * nb).reshape(shape)
    sc = s.cells(cell, e * nb, conf).reshape(shape)
    sa = s.cells(cell, e * nb, np.asarray(correct, dtype=np.float64)).reshape(shape)
    binned = cnt.sum(axis=-1)
    gaps = np.abs(sa - sc).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        oa = np.where(size > 0, hits / size, np.nan)
        ece = np.where(binned > 0, gaps / binned, np.nan)
    if weights is None:
        return {**{f"oa_ebin{b}": float(oa[b]) for b in range(e)},
                **{f"ece_ebin{b}": float(ece[b]) for b in range(e)}}
    return {**{f"oa_ebin{b}": oa[:, b] for b in range(e)}, **{f"ece_ebin{b}": ece[:, b] for b in range(e)}}
