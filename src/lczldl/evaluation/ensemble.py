"""Deep ensembles: the mean of the member models' probabilities.

Default confidence = max of the mean probabilities (the ensemble is just another predictor).
Compat ``confidence="mean_member"``: the seed's ensemble.py used the mean over members of each
member's own top-1 confidence (each at its own argmax), while correctness came from the argmax of the
mean; pass it to :func:`lczldl.evaluation.compute_metrics` as ``confidence=`` to reproduce that ECE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lczldl.errors import DataError

CONFIDENCES = ("max", "mean_member")


def ensemble_probs(members: Sequence[np.ndarray]) -> np.ndarray:
    """Mean (N, K) float64 of the members' (N, K) probabilities (all the same shape)."""
    if len(members) == 0:
        raise DataError("ensemble: no member predictions to average")
    arrs = [np.asarray(m, dtype=np.float64) for m in members]
    shape = arrs[0].shape
    for i, a in enumerate(arrs):
        if a.shape != shape or a.ndim != 2:
            raise DataError(f"ensemble: member {i} has shape {a.shape}, member 0 has {shape}; "
                            "members must predict the same samples")
    return np.mean(np.stack(arrs), axis=0)


def ensemble_confidence(members: Sequence[np.ndarray], confidence: str = "max") -> np.ndarray:
    """(N,) confidence of the ensemble: "max" = max of the mean; "mean_member" = mean over members
    of each member's max probability (the seed's definition)."""
    if confidence == "max":
        return ensemble_probs(members).max(axis=1)
    if confidence == "mean_member":
        return np.mean([np.asarray(m, dtype=np.float64).max(axis=1) for m in members], axis=0)
    raise ValueError(f"confidence must be one of {CONFIDENCES}, got {confidence!r}")
