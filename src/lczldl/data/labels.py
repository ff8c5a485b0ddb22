"""Expert votes -> labels (pure numpy). Rules follow the authors' data-generation scripts.

Conventions: votes are LCZ ids 1..17 with 0 = no vote; column = expert. Class indices are 0-based
(index i <-> LCZ i+1); the study keeps the 10 urban classes (LCZ 1..10).

- counts: votes per LCZ 1..17; 0 (no vote) is ignored. For city files only the 11 vote columns
  count (column 11, the original So2Sat label, is not a vote); addon files: every column is a vote.
- majority (the authors' ``to_one_hot_majority``): the classes whose count equals the row maximum
  are the candidates; exactly one candidate -> that class; more than one -> the tie label, i.e.
  the original So2Sat label (column 11) for city files and LCZ 7 for addon files. A row with no
  vote at all has all 17 counts equal to 0 = the maximum, so it is a 17-way tie and also takes
  the tie label.
- urban subset: rows whose majority is LCZ 1..10; the others are dropped ("non_urban_majority").
- distribution: urban counts / their sum over LCZ 1..10 (non-urban votes dropped). A kept row with
  no urban vote (a tie resolved to an urban original label, e.g. votes 11,11,12,12 with original
  6) would be 0/0 = NaN in the authors' files (the 17 NaN rows of the real test file); here it is
  dropped and counted ("no_urban_votes"), never NaN.
- smoothing a (the authors' variant, a = 0.08): (c + a) / (n (1 + a)) with c the urban count of a
  class and n the number of urban votes of the row, implemented exactly as written. A row then
  sums to (n + 10 a) / (n (1 + a)), which is 1 only when n = 10 (e.g. 1.0067 for n = 11, a = 0.08;
  1.667 for n = 1): it is NOT a probability distribution in general. ``renormalise=True`` divides
  each row by its sum, i.e. (c + a) / (n + 10 a), which is additive (Laplace) smoothing.
- vote entropy: Shannon entropy in nats of the unsmoothed distribution, 0 log 0 = 0.
- release counts (:func:`release_vote_counts`, the manifest's ``release_votes``): over every row
  of the raw files, before the urban filter, the paper's entropy-bin counts of the votes' entropy
  over all 17 LCZ per majority group (urban LCZ 1..10, non-urban 11..17; rows without any vote
  have no vote distribution and are left out) and the original label x individual vote counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lczldl.constants import N_EXPERTS, N_LCZ, N_URBAN
from lczldl.distributions import entropy_histogram, entropy_nats
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
    tie_label = np.broadcast_to(np.asarray(tie_label, dtype=np.int64), majority.shape)  # (N,) or scalar
    return np.where(tie, tie_label, majority).astype(np.int64)


def has_urban_votes(counts: np.ndarray) -> np.ndarray:
    """(N,) bool: at least one vote for LCZ 1..10."""
    return np.asarray(counts)[:, :N_URBAN].sum(axis=1) > 0


def urban_distribution(counts: np.ndarray, smoothing: float = 0.0, renormalise: bool = False) -> np.ndarray:
    """(N, 17) counts -> (N, 10) float64 distribution over LCZ 1..10.

    ``smoothing`` a > 0 applies (c + a) / (n (1 + a)) as written (rows need not sum to 1, see the
    module docstring); ``renormalise`` then rescales rows to sum 1. Rows without any urban vote
    are all zeros (use :func:`has_urban_votes` to find them), never NaN.
    """
    if smoothing < 0 or not np.isfinite(smoothing):
        raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing}")
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


def vote_entropy_all_lcz(counts: np.ndarray) -> np.ndarray:
    """(N, 17) vote counts -> (N,) float64 entropy in nats of each row's vote shares over all 17
    LCZ (non-urban votes included); 0 for a row without votes."""
    counts = np.asarray(counts, dtype=np.float64)
    tot = counts.sum(axis=1, keepdims=True)
    return entropy_nats(np.where(tot > 0, counts / np.maximum(tot, 1.0), 0.0))


def voting_counts(votes: np.ndarray, original: np.ndarray, k: int = N_URBAN) -> np.ndarray:
    """(N, V) votes (LCZ ids, 0 = no vote) and (N,) original LCZ ids -> (k, k) int64 counts:
    [i, j] = individual votes for LCZ j+1 on images whose original label is LCZ i+1. Votes of 0 and
    votes or original labels outside 1..k are not counted."""
    votes = np.asarray(votes, dtype=np.int64)
    original = np.asarray(original, dtype=np.int64)
    if votes.ndim != 2 or original.shape != (votes.shape[0],):
        raise ValueError(f"votes must be (N, V) and original (N,), got {votes.shape} and {original.shape}")
    rows = np.broadcast_to(original[:, None], votes.shape)
    ok = (votes >= 1) & (votes <= k) & (rows >= 1) & (rows <= k)
    return np.bincount((rows[ok] - 1) * k + (votes[ok] - 1), minlength=k * k).reshape(k, k).astype(np.int64)


def release_vote_counts(votes: np.ndarray, majority: np.ndarray, original: np.ndarray) -> dict[str, Any]:
    """What the vote figures need about a set of rows, JSON-ready (the manifest's ``release_votes``
    without its note; docs/architecture.md).

    ``votes`` (N, V) LCZ ids 0..17, ``majority`` (N,) LCZ id after the tie rule
    (:attr:`VoteLabels.majority`), ``original`` (N,) LCZ id. Returns ``rows`` (N),
    ``rows_without_votes`` (left out of the entropy bins), ``entropy_bins`` {"urban", "non_urban"}:
    (6,) image counts per paper bin (:func:`lczldl.distributions.entropy_histogram`) of
    :func:`vote_entropy_all_lcz`, by majority LCZ 1..10 / 11..17, and ``voting_counts`` (10, 10)
    (:func:`voting_counts`, every row).
    """
    counts = vote_counts(votes)
    majority = np.asarray(majority, dtype=np.int64)
    if majority.shape != (counts.shape[0],):
        raise ValueError(f"majority must be ({counts.shape[0]},), got {majority.shape}")
    voted = counts.sum(axis=1) > 0
    ent = vote_entropy_all_lcz(counts)
    groups = {"urban": voted & (majority >= 1) & (majority <= N_URBAN),
              "non_urban": voted & (majority > N_URBAN) & (majority <= N_LCZ)}
    return {"rows": int(counts.shape[0]), "rows_without_votes": int((~voted).sum()),
            "entropy_bins": {g: entropy_histogram(ent[sel]).tolist() for g, sel in groups.items()},
            "voting_counts": voting_counts(votes, original).tolist()}


def pad_votes(votes: np.ndarray, width: int = N_EXPERTS) -> np.ndarray:
    """Pad (N, k <= width) votes with 0 (= no vote) to (N, width) int8; column = expert."""
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] > width:
        raise ValueError(f"votes must be (N, k <= {width}), got shape {votes.shape}")
    out = np.zeros((votes.shape[0], width), dtype=np.int8)
    out[:, :votes.shape[1]] = votes
    return out


@dataclass
class VoteLabels:
    """Labels of one vote file. Arrays have one row per input row; ``keep`` marks the urban subset."""

    keep: np.ndarray           # (N,) bool: urban majority and at least one urban vote
    majority: np.ndarray       # (N,) int64 LCZ id 1..17 after the tie rule
    label: np.ndarray          # (N,) int64 class index 0..9 where keep, -1 elsewhere
    distribution: np.ndarray   # (N, 10) float32 urban vote distribution (zeros where dropped)
    entropy: np.ndarray        # (N,) float32 entropy (nats) of the unsmoothed distribution
    votes: np.ndarray          # (N, 11) int8 LCZ ids 0..17, column = expert, padded with 0
    original: np.ndarray       # (N,) int8 original So2Sat label (LCZ id; 7 for addons)
    dropped: dict[str, int] = field(default_factory=dict)   # reason -> number of rows
    drop_reason: np.ndarray | None = None                    # (N,) object: "" or the reason


def build_labels(votes: np.ndarray, original: np.ndarray | int, *, smoothing: float = 0.0,
                 renormalise: bool = False, where: str = "votes") -> VoteLabels:
    """Apply every rule above to (N, V) votes with (N,) original labels (LCZ id; 7 for addons).

    ``where`` names the source in error messages. ``distribution`` is smoothed when
    ``smoothing`` > 0; ``entropy`` is always that of the unsmoothed distribution. ``label`` is the
    class index 0..9 where ``keep``, -1 elsewhere; ``drop_reason`` is "" for kept rows.
    """
    counts = vote_counts(votes, where=where)
    if np.asarray(votes).shape[1] > N_EXPERTS:
        raise DataError(f"{where}: {np.asarray(votes).shape[1]} vote columns, at most {N_EXPERTS} experts")
    n = counts.shape[0]
    try:
        original = np.broadcast_to(np.asarray(original, dtype=np.int64), (n,))
    except ValueError:
        raise DataError(f"{where}: original labels of shape {np.shape(original)} do not match "
                        f"{n} vote rows") from None
    majority = majority_vote(counts, original)
    urban_majority = (majority >= 1) & (majority <= N_URBAN)
    urban_votes = has_urban_votes(counts)
    keep = urban_majority & urban_votes
    reason = np.full(n, "", dtype=object)
    reason[~urban_majority] = DROP_NON_URBAN
    reason[urban_majority & ~urban_votes] = DROP_NO_URBAN_VOTES
    dist = urban_distribution(counts, smoothing, renormalise)
    raw_dist = urban_distribution(counts) if smoothing else dist
    return VoteLabels(
        keep=keep,
        majority=majority,
        label=np.where(keep, majority - 1, -1).astype(np.int64),
        distribution=dist.astype(np.float32),
        entropy=entropy_nats(np.asarray(raw_dist, dtype=np.float64)).astype(np.float32),
        votes=pad_votes(votes),
        original=original.astype(np.int8),
        dropped={DROP_NON_URBAN: int((~urban_majority).sum()),
                 DROP_NO_URBAN_VOTES: int((urban_majority & ~urban_votes).sum())},
        drop_reason=reason,
    )


def one_hot(labels: np.ndarray, num_classes: int = N_URBAN) -> np.ndarray:
    """(N,) class indices 0..K-1 -> (N, K) float32 one-hot."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"class indices must be 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
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
