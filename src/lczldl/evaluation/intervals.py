"""Owns the 95 % intervals of the study: bootstrap over test images within a run (percentile, draws as
(B, N) count matrices so that metrics are computed for all draws at once), the weighted reductions
that metrics use under those counts (:class:`Sums`, means, group means, average ranks, Spearman),
intervals over seeds for a regime mean, and the intervals and tests of paired differences with
the baseline: the paired Student t over seeds (:func:`paired_t`), the two-level interval that adds
test-image sampling (:func:`paired_two_level`) and Holm's step-down adjustment (:func:`holm`).

Conventions (docs/metrics.md, "Intervals"):
- Image bootstrap: ``n_boot`` = 1000 draws of N images with replacement from
  ``np.random.default_rng(seed)``, seed 0: draw b is ``rng.integers(0, N, N)`` (the index form,
  :func:`bootstrap_indices`), used as counts ``w[b, i]`` = how often image i was drawn. Every
  metric of a run uses the same draws (intervals of differences stay paired). Interval = the
  (1 - level) / 2 and (1 + level) / 2 quantiles (np.quantile, linear) of the finite draw values;
  NaN when fewer than half of the draws are finite (e.g. an almost empty entropy bin).
- A statistic under weights ``w`` equals the statistic on the resampled images (tested against
  the unweighted functions on explicit resamples), with one difference: ties in a sort key are
  ordered by image index, not by their position in the resampled array.
- Over seeds (regime mean): Student-t interval mean +- t_{n-1} s / sqrt(n) (default), or the
  percentile bootstrap over seeds of :func:`bootstrap_ci`. With 2 seeds
  the t-interval is mean +- 12.71 |a - b| / 2 (very wide, honest about 2 seeds); the bootstrap over
  2 seeds can only return values between a and b (too narrow), so it is not the default.
- Paired differences regime - baseline (same seed), docs/metrics.md "Intervals":
  :func:`paired_t` is the Student t interval over seeds (n - 1 df), conditional on the test set;
  :func:`paired_two_level` adds the test-image sampling of the seed-mean difference (image
  bootstrap, the same draws for every run) as a variance component (t quantile on n - 1 df).
  Either one's two-sided p-value goes to :func:`holm` where comparisons are read as one family.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: image-bootstrap draws, seed and interval level
N_BOOT = 1000
SEED = 0
LEVEL = 0.95
#: resamples of the bootstrap over seeds (:func:`bootstrap_ci`: paired differences with one-hot)
SEED_N_BOOT = 10_000


def bootstrap_indices(n: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n) int64 indices of the images of each draw (with replacement)."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 and n_boot >= 1, got n={n}, n_boot={n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(int(n_boot), int(n)))


def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n) float64 counts: how often each image is in each draw (rows sum to n); the same
    draws as :func:`bootstrap_indices` for the same n, n_boot, seed."""
    idx = bootstrap_indices(n, n_boot, seed)
    flat = idx + (np.arange(idx.shape[0]) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=idx.size).reshape(idx.shape).astype(np.float64)


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of (B, ...) draw values, ignoring non-finite draws; NaN
    where fewer than half of the draws are finite. Returns (lo, hi) of shape (...)."""
    s = np.asarray(samples, dtype=np.float64)
    fin = np.isfinite(s)
    a = (1.0 - level) / 2.0
    with warnings.catch_warnings():                 # all-NaN columns: NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(np.where(fin, s, np.nan), [a, 1.0 - a], axis=0)
    few = fin.sum(axis=0) < 0.5 * s.shape[0]
    return np.where(few, np.nan, lo), np.where(few, np.nan, hi)


def as_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """(B, N) float64 image counts of a sample: ``weights`` as given, or one plain sample (1, N) of ones."""
    return np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)


class Sums:
    """Sums over the N images of a sample, either plain (``weights`` None: numpy's own reductions,
    ``mean`` / ``np.bincount``, so a metric written with them gives exactly the numbers it gave before
    weights existed) or under (B, N) image counts (bootstrap draws: one product for all B draws).

    ``n``: the number of images (an int), or (B,) the counts' row sums. Results have a leading (B,)
    axis under weights and none without."""

    def __init__(self, weights: np.ndarray | None, n: int) -> None:
        self.w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.w is not None and (self.w.ndim != 2 or self.w.shape[1] != n or not np.isfinite(self.w).all()
                                   or (self.w < 0).any()):
            raise ValueError(f"weights must be (B, {n}) finite counts >= 0, got shape {self.w.shape}")
        self.wt = None if self.w is None else np.ascontiguousarray(self.w.T)
        self.n = n if self.w is None else self.w.sum(axis=1)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of (N,) per-image values: ``values.mean()``, or (B,) weighted means (summed image by
        image, so a draw's value does not depend on how many draws are computed together)."""
        v = np.asarray(values, dtype=np.float64)
        return v.mean() if self.w is None else (self.wt * v[:, None]).sum(axis=0) / self.n

    def cells(self, cell: np.ndarray, n_cells: int, values: np.ndarray | None = None) -> np.ndarray:
        """Sums of ``values`` (ones if None) per cell: (n_cells,) float64 by ``np.bincount``, or
        (B, n_cells) under weights (:func:`cell_sums`). ``cell`` (N,) or (N, r) ints, < 0 left out."""
        if self.w is not None:
            return cell_sums(self.w, cell, n_cells, values, wt=self.wt)
        c = np.asarray(cell).ravel()
        keep = c >= 0
        if values is None:
            return np.bincount(c[keep], minlength=n_cells).astype(np.float64)
        return np.bincount(c[keep], weights=np.asarray(values, dtype=np.float64).ravel()[keep], minlength=n_cells)


def masked_sum(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum over the last axis of the entries where ``mask``: ``x[mask].sum()`` for 1-D input."""
    return x[mask].sum() if x.ndim == 1 else np.where(mask, x, 0.0).sum(axis=-1)


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the entries where ``mask`` (NaN where none): ``x[mask].mean()``
    for 1-D input."""
    if x.ndim == 1:
        return x[mask].mean() if mask.any() else np.float64(np.nan)
    m = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, np.where(mask, x, 0.0).sum(axis=-1) / np.maximum(m, 1), np.nan)


def masked_max(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Max over the last axis of the entries where ``mask`` (NaN where none)."""
    if x.ndim == 1:
        return x[mask].max() if mask.any() else np.float64(np.nan)
    return np.where(mask.any(axis=-1), np.where(mask, x, -np.inf).max(axis=-1), np.nan)


def weighted_means(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over images of (N,) or (N, m) values, skipping NaN values: (m,) or () without
    weights, (B, m) or (B,) with (B, N) weights (NaN where no finite value has weight)."""
    v = np.asarray(values, dtype=np.float64)
    w = as_weights(weights, v.shape[0])
    v2 = v.reshape(v.shape[0], -1)
    fin = np.isfinite(v2)
    if fin.all():
        num, den = w @ v2, w.sum(axis=1, keepdims=True)
    else:
        num, den = w @ np.where(fin, v2, 0.0), w @ fin.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    out = out.reshape((w.shape[0],) + v.shape[1:])
    return out[0] if weights is None else out


def cell_sums(weights: np.ndarray | None, cell: np.ndarray, n_cells: int, values: np.ndarray | None = None,
              *, wt: np.ndarray | None = None) -> np.ndarray:
    """(B, n_cells) weighted sums of ``values`` (ones if None) of the images in each cell (one
    sparse product); ``cell`` (N,) or (N, r) ints (r cells per image), cell < 0 left out.
    ``wt``: the counts transposed and contiguous, np.ascontiguousarray(weights.T), when the caller
    reuses it. (n_cells,) without weights."""
    from scipy import sparse

    cell = np.asarray(cell).reshape(len(cell), -1)
    if wt is None:
        wt = np.ascontiguousarray(as_weights(weights, len(cell)).T)
    vals = np.ones(cell.shape) if values is None else np.asarray(values, dtype=np.float64).reshape(cell.shape)
    rows = np.broadcast_to(np.arange(len(cell))[:, None], cell.shape)
    keep = cell >= 0
    m = sparse.csc_matrix((vals[keep], (cell[keep], rows[keep])), shape=(n_cells, len(cell)))
    out = np.asarray(m @ wt).T
    return out[0] if weights is None and out.shape[0] == 1 else out


def weighted_group_means(values: np.ndarray, groups: np.ndarray, n_groups: int,
                         weights: np.ndarray | None = None, *, wt: np.ndarray | None = None) -> np.ndarray:
    """Mean of (N,) or (N, m) values within each group 0..n_groups-1 of (N,) int groups, skipping
    NaN values (NaN for an empty group): (G,) / (G, m) without weights, (B, G) / (B, G, m) with
    (B, N) weights (``wt`` as in :func:`cell_sums`)."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    w = as_weights(weights, v.shape[0])
    wt = np.ascontiguousarray(w.T) if wt is None else wt
    v2 = v.reshape(v.shape[0], -1)
    fin = np.isfinite(v2)
    cells = g[:, None] * v2.shape[1] + np.arange(v2.shape[1])[None, :]         # (N, m) cells
    num = cell_sums(w, cells, n_groups * v2.shape[1], np.where(fin, v2, 0.0), wt=wt)
    den = cell_sums(w, np.where(fin, cells, -1), n_groups * v2.shape[1], wt=wt)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    out = out.reshape((w.shape[0], n_groups) + v.shape[1:])
    return out[0] if weights is None else out


def weighted_ranks(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) of (N,) values in the sample where image
    i appears w[b, i] times: (B, N) (an image's rank is that of each of its copies); (N,) without
    weights (= :func:`lczldl.distributions.average_ranks`, scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64)
    w = as_weights(weights, x.size)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.r_[0, np.nonzero(np.diff(xs))[0] + 1]                   # tie groups in sorted order
    group = np.cumsum(np.r_[0, np.diff(xs) != 0])                       # (N,) group of sorted pos
    ws = w[:, order]
    wg = ws if len(starts) == len(xs) else np.add.reduceat(ws, starts, axis=1)   # (B, G) copies
    below = np.cumsum(wg, axis=1) - wg
    rank_g = below + (wg + 1.0) / 2.0
    ranks = np.empty_like(w)
    ranks[:, order] = rank_g[:, group]
    return ranks[0] if weights is None else ranks


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Spearman correlation (average ranks for ties) of (N,) x and y in each weighted sample:
    (B,) (NaN where either is constant); a float without weights (= distributions.spearman)."""
    w = as_weights(weights, len(np.asarray(x)))
    out = spearman_from_ranks(weighted_ranks(x, w), weighted_ranks(y, w), w)
    return float(out[0]) if weights is None else out


def spearman_from_ranks(rx: np.ndarray, ry: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) Pearson correlation of (B, N) ranks from :func:`weighted_ranks` under (B, N) counts."""
    n = w.sum(axis=1, keepdims=True)
    mid = (n + 1.0) / 2.0                                              # mean rank of n values
    dx, dy = rx - mid, ry - mid
    cov = (w * dx * dy).sum(axis=1)
    den = np.sqrt((w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, cov / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_interval(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, n_boot: int = N_BOOT,
                       seed: int = SEED, level: float = LEVEL, chunk: int = 4_000_000
                       ) -> tuple[float, float]:
    """Percentile interval of a vectorised statistic: ``statistic(w)`` maps (b, n) counts to (b,)
    values; draws are passed in chunks of at most ``chunk`` counts (memory)."""
    w = bootstrap_counts(n, n_boot, seed)
    step = max(1, chunk // max(n, 1))
    vals = np.concatenate([np.asarray(statistic(w[i:i + step]), dtype=np.float64)
                           for i in range(0, len(w), step)])
    lo, hi = percentile_interval(vals, level)
    return float(lo), float(hi)


def bootstrap_intervals(statistic: Callable[[np.ndarray], dict[str, np.ndarray]], n: int, *,
                        n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL,
                        chunk: int = 2_000_000) -> dict[str, tuple[float, float]]:
    """Percentile intervals of several statistics on the same draws: ``statistic(w)`` maps (b, n)
    counts to {key: (b,) values}; returns {key: (lo, hi)} in the statistic's key order. Draws are
    passed in chunks of at most ``chunk`` counts (memory: the metrics of one chunk)."""
    w = bootstrap_counts(n, n_boot, seed)
    step = max(1, chunk // max(n, 1))
    parts = [statistic(w[i:i + step]) for i in range(0, len(w), step)]
    out = {}
    for key in parts[0]:
        lo, hi = percentile_interval(np.concatenate([np.asarray(pt[key], dtype=np.float64) for pt in parts]), level)
        out[key] = (float(lo), float(hi))
    return out


def bootstrap_interval_loop(statistic: Callable[..., float], arrays: Sequence[np.ndarray], *,
                            n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
                            ) -> tuple[float, float]:
    """Percentile interval of any statistic(*arrays) recomputed on each draw of the rows of the
    arrays (same draws as :func:`bootstrap_counts`); slow, for statistics without weights."""
    arrays = [np.asarray(a) for a in arrays]
    idx = bootstrap_indices(len(arrays[0]), n_boot, seed)
    vals = np.array([statistic(*[a[i] for a in arrays]) for i in idx], dtype=np.float64)
    lo, hi = percentile_interval(vals, level)
    return float(lo), float(hi)


def seed_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL, method: str = "t",
                  n_boot: int = SEED_N_BOOT, seed: int = SEED) -> tuple[float, float]:
    """Interval of the mean over seeds of per-seed values (NaN skipped); (nan, nan) with fewer
    than 2. ``method`` "t": mean +- t_{n-1, (1+level)/2} * s / sqrt(n); "bootstrap": the percentile
    bootstrap of :func:`bootstrap_ci`."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan"), float("nan")
    if method == "bootstrap":
        return bootstrap_ci(v, n_boot=n_boot, level=level, seed=seed)
    if method != "t":
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    half = t_quantile((1.0 + level) / 2.0, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def bootstrap_ci(diffs: np.ndarray, n_boot: int = SEED_N_BOOT, level: float = LEVEL,
                 seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs``, resampling with replacement; (nan,
    nan) with fewer than 2 finite values. Not valid over a few seeds (with 2 it returns the two
    values themselves, which exclude 0 half the time without any effect: tests/evaluation/
    test_paired_coverage.py); paired differences use :func:`paired_t` / :func:`paired_two_level`."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(int(n_boot), d.size))].mean(axis=1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


@dataclass(frozen=True)
class Paired:
    """A paired difference's estimate: ``mean`` over seeds, its standard error ``se``, the
    ``level`` interval (``lo``, ``hi``), the two-sided p-value of "no difference" ``p``, the t
    distribution's degrees of freedom ``df`` and the number of seed pairs ``n``. All NaN (n kept)
    where the data cannot give them (fewer than 2 pairs, or no spread at all)."""

    mean: float
    se: float
    lo: float
    hi: float
    p: float
    df: float
    n: int

    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0 (both ends finite)."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi) and (self.lo > 0 or self.hi < 0))


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """Student t quantile for q in (0, 1), cached: the intervals ask for the same few (level, df).
    scipy.special's ``stdtrit`` (what ``scipy.stats.t.ppf`` calls): scipy.stats costs a unit
    process a second to import, scipy.special a third of it."""
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def _t_estimate(mean: float, se: float, df: float, n: int, level: float) -> Paired:
    """Paired from a mean, its standard error and df (Student t quantile and two-sided p-value;
    ``stdtr(df, -x)`` is ``scipy.stats.t.sf(x, df)``)."""
    from scipy.special import stdtr

    if not (np.isfinite(se) and se > 0 and df > 0):
        return Paired(mean, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), n)
    half = t_quantile((1.0 + level) / 2.0, df) * se
    p = float(2.0 * stdtr(df, -abs(mean) / se))
    return Paired(mean, se, mean - half, mean + half, p, float(df), n)


def paired_t(diffs: Sequence[float] | np.ndarray, level: float = LEVEL) -> Paired:
    """Paired Student t over seeds: ``diffs`` (n,) per-seed differences regime - baseline (NaN
    skipped); mean +- t_{n-1, (1+level)/2} s / sqrt(n), p from the same t. Valid at any n >= 2 when
    the per-seed differences are independent and roughly normal; it treats the test set as fixed
    (its inference is about training on this test set, not about new test images)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n < 2:
        return Paired(float(d.mean()) if n else float("nan"), *(float("nan"),) * 5, n)
    return _t_estimate(float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n), n - 1, n, level)


def paired_two_level(diffs: Sequence[float] | np.ndarray, draws: np.ndarray, level: float = LEVEL) -> Paired:
    """Paired difference over seeds and test images (two-level variance components).

    ``diffs`` (n,): per-seed differences on the test set; ``draws`` (B, n): the same differences
    on B image-bootstrap draws (one draw = one resample of the test images, the same for every
    run, so the draws keep seeds and regimes paired). Variance of the seed mean:
    V = s^2 / n (seeds: training variability, which also holds each seed's own image noise) + v
    (v = variance over draws of the draws' seed mean: test-image sampling, including the part that
    all seeds share and the seed spread cannot show). The double-counted own-image noise makes V
    conservative; so does the t quantile with n - 1 df (the seed part's): Welch-Satterthwaite's
    larger df starred 9 % of null studies at 2 seeds (s^2 on 1 df is often tiny), this one stays
    within 5 % (tests/evaluation/test_paired_coverage.py). Seeds with a NaN difference (or NaN
    draws) are left out."""
    d = np.asarray(diffs, dtype=np.float64)
    w = np.asarray(draws, dtype=np.float64).reshape(-1, d.size)
    keep = np.isfinite(d) & np.isfinite(w).all(axis=0)
    d, w = d[keep], w[:, keep]
    n = int(d.size)
    if n < 2:
        return Paired(float(d.mean()) if n else float("nan"), *(float("nan"),) * 5, n)
    seed_part = float(d.var(ddof=1)) / n
    image_part = float(w.mean(axis=1).var(ddof=1)) if w.shape[0] > 1 else 0.0
    return _t_estimate(float(d.mean()), math.sqrt(seed_part + image_part), n - 1, n, level)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate): the i-th smallest p times
    (m - i + 1), made monotone, capped at 1; NaN p-values stay NaN and do not count in m.
    Rejecting where the adjusted p <= alpha controls the chance of any false claim at alpha."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    fin = np.flatnonzero(np.isfinite(p))
    m = fin.size
    if m == 0:
        return out
    order = fin[np.argsort(p[fin], kind="stable")]
    adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adj, 1.0)
    return out
