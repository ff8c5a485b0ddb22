"""Expert votes -> labels (pure numpy). Rules follow the authors' data-generation scripts.

Conventions: votes are LCZ ids 1..17 with 0 = no vote; column = expert. Class indices are 0-based
(index i <-> LCZ i+1); the study keeps the 10 urban classes (LCZ 1..10).

- counts: votes per LCZ, ignoring 0.
- majority: argmax of the counts; when the maximum is shared by more than one class (or there is
  no vote at all) the tie takes ``tie_label`` (the original So2Sat label for city files, LCZ 7 for
  addon files).
- urban subset: rows whose majority is LCZ 1..10.
- distribution: urban counts / their sum over LCZ 1..10 (non-urban votes dropped). Optional
  smoothing a: (c + a) / (n (1 + a)) with n = number of urban votes, as in the authors' variant
  (this sums to (n + 10 a) / (n (1 + a)), i.e. not 1 unless n = 10; we renormalise the rows and
  say so: ``renormalise=False`` keeps the formula as written).
- rows with no urban vote (possible when a tie falls back to an urban original label) are dropped
  and counted, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lczldl.constants import N_EXPERTS, N_LCZ, N_URBAN
from lczldl.errors import DataError

DROP_NON_URBAN = "non_urban_majority"
DROP_NO_URBAN_VOTES = "no_urban_votes"


def vote_counts(votes: np.ndarray, where: str = "votes") -> np.ndarray:
    """(N, V) LCZ ids 0..17 -> (N, 17) int64 counts of LCZ 1..17 (0 = no vote is ignored)."""
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise DataError(f"{where}: votes must be 2-D (rows, experts), got shape {votes.shape}")
    if votes.size and (votes.min() < 0 or votes.max() > N_LCZ):
        bad = votes[(votes < 0) | (votes > N_LCZ)]
        raise DataError(f"{where}: vote ids must be 0..17 (0 = no vote), found {int(bad.flat[0])} "
                        f"({bad.size} bad values)")
    n = votes.shape[0]
    flat = votes.astype(np.int64) + (np.arange(n, dtype=np.int64) * (N_LCZ + 1))[:, None]
    counts = np.bincount(flat.ravel(), minlength=n * (N_LCZ + 1)).reshape(n, N_LCZ + 1)
    return counts[:, 1:]


def majority_vote(counts: np.ndarray, tie_label: np.ndarray | int) -> np.ndarray:
    """(N, 17) counts -> (N,) LCZ id of the majority; shared maxima / no votes take ``tie_label``."""
    counts = np.asarray(counts)
    top = counts.max(axis=1)
    n_top = (counts == top[:, None]).sum(axis=1)
    majority = counts.argmax(axis=1) + 1
    tie = (n_top > 1) | (top == 0)
    tie_label = np.broadcast_to(np.asarray(tie_label, dtype=np.int64), majority.shape)
    return np.where(tie, tie_label, majority).astype(np.int64)


def has_urban_votes(counts: np.ndarray) -> np.ndarray:
    """(N,) bool: at least one vote for LCZ 1..10."""
    return np.asarray(counts)[:, :N_URBAN].sum(axis=1) > 0


def urban_distribution(counts: np.ndarray, smoothing: float = 0.0, renormalise: bool = True) -> np.ndarray:
    """(N, 17) counts -> (N, 10) float64 distribution over LCZ 1..10; zero rows where no urban vote."""
    urban = np.asarray(counts)[:, :N_URBAN].astype(np.float64)
    n = urban.sum(axis=1, keepdims=True)
    safe = np.where(n > 0, n, 1.0)
    if smoothing:
        dist = (urban + smoothing) / (safe * (1.0 + smoothing))
        if renormalise:
            dist = dist / dist.sum(axis=1, keepdims=True)
    else:
        dist = urban / safe
    return np.where(n > 0, dist, 0.0)


def vote_entropy(dist: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row, with 0 log 0 = 0."""
    d = np.asarray(dist, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def pad_votes(votes: np.ndarray, width: int = N_EXPERTS) -> np.ndarray:
    """Pad (N, k) votes with 0 (= no vote) to (N, width) int8; column = expert."""
    votes = np.asarray(votes)
    out = np.zeros((votes.shape[0], max(width, votes.shape[1])), dtype=np.int8)
    out[:, :votes.shape[1]] = votes
    return out


@dataclass
class VoteLabels:
    """Labels of one vote file. Arrays have one row per input row; ``keep`` marks the urban subset."""

    keep: np.ndarray
    majority: np.ndarray
    label: np.ndarray
    distribution: np.ndarray
    entropy: np.ndarray
    votes: np.ndarray
    original: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    drop_reason: np.ndarray | None = None


def build_labels(votes: np.ndarray, original: np.ndarray | int, *, smoothing: float = 0.0,
                 where: str = "votes") -> VoteLabels:
    """Apply every rule above to (N, V) votes with (N,) original labels (or 7 for addons)."""
    counts = vote_counts(votes, where=where)
    n = counts.shape[0]
    original = np.broadcast_to(np.asarray(original, dtype=np.int64), (n,))
    majority = majority_vote(counts, original)
    urban_majority = (majority >= 1) & (majority <= N_URBAN)
    urban_votes = has_urban_votes(counts)
    keep = urban_majority & urban_votes
    reason = np.full(n, "", dtype=object)
    reason[~urban_majority] = DROP_NON_URBAN
    reason[urban_majority & ~urban_votes] = DROP_NO_URBAN_VOTES
    dist = urban_distribution(counts, smoothing)
    raw_dist = urban_distribution(counts) if smoothing else dist
    return VoteLabels(
        keep=keep,
        majority=majority,
        label=np.where(keep, majority - 1, -1).astype(np.int64),
        distribution=dist.astype(np.float32),
        entropy=vote_entropy(raw_dist).astype(np.float32),
        votes=pad_votes(votes),
        original=original.astype(np.int8),
        dropped={DROP_NON_URBAN: int((~urban_majority).sum()),
                 DROP_NO_URBAN_VOTES: int((urban_majority & ~urban_votes).sum())},
        drop_reason=reason,
    )


def one_hot(labels: np.ndarray, num_classes: int = N_URBAN) -> np.ndarray:
    """(N,) class indices -> (N, K) float32 one-hot."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), np.asarray(labels)] = 1.0
    return out


def smooth_one_hot(labels: np.ndarray, eps: float = 0.1, num_classes: int = N_URBAN,
                   compat_17: bool = False) -> np.ndarray:
    """Label smoothing (1 - eps) y + eps / K.

    ``compat_17`` reproduces the seed's quirk: smoothing applied on 17 columns, then cut to the 10
    urban ones, so rows sum to 1 - eps + 10 eps / 17 (0.9588 for eps = 0.1).
    """
    k = N_LCZ if compat_17 else num_classes
    y = one_hot(labels, k)
    return ((1.0 - eps) * y + eps / k)[:, :num_classes].astype(np.float32)


def smooth_distribution(dist: np.ndarray, eps: float = 0.1) -> np.ndarray:
    """(1 - eps) d + eps / K for the dist_ls regime (train targets only)."""
    d = np.asarray(dist, dtype=np.float32)
    return ((1.0 - eps) * d + eps / d.shape[1]).astype(np.float32)
