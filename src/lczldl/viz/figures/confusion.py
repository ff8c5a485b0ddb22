"""Owns the confusion-matrix figures: model predictions vs majority vote per regime, and original
So2Sat labels vs individual expert votes (row-normalised percent, LCZ names on the axes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lczldl.constants import N_URBAN
from lczldl.evaluation.metrics import confusion_matrix
from lczldl.regimes import order_regimes, regime_label
from lczldl.viz.style import (
    grid_shape,
    lcz_color,
    lcz_label,
    new_figure,
    panels_with_colorbar,
    save_figure,
    styled,
)

Array = np.ndarray


def _row_percent(cm: Array) -> Array:
    """Each row of a count matrix in percent of its sum; NaN rows where the sum is 0."""
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, 100.0 * cm / rows, np.nan)


def confusion_percent(labels: Array, preds: Array, k: int = N_URBAN) -> Array:
    """(K, K) confusion matrix in percent of each row (true class); rows without samples are NaN.

    ``labels``/``preds`` (N,) class indices 0..K-1; entry [i, j] = share of class-i samples
    predicted as j, x 100 (counts: :func:`lczldl.evaluation.metrics.confusion_matrix`).
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in shape")
    if labels.size and (min(labels.min(), preds.min()) < 0 or max(labels.max(), preds.max()) >= k):
        raise ValueError(f"class indices must be in 0..{k - 1}")
    return _row_percent(confusion_matrix(labels, preds, k))


def voting_confusion_percent(counts: Array) -> Array:
    """(K, K) vote counts [original label LCZ i+1, individual vote LCZ j+1] (the manifest's
    ``release_votes["voting_counts"]``, :func:`lczldl.data.labels.voting_counts`) -> (K, K) percent
    of each row's votes (NaN rows where an original label has no vote)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or (counts < 0).any():
        raise ValueError(f"counts must be a square (K, K) matrix of non-negative counts, got shape {counts.shape}")
    return _row_percent(counts.astype(np.float64))


def _heatmap(ax: Axes, mat: Array, *, vmax: float = 100.0, xlabels: Sequence[str],
             ylabels: Sequence[str], show_x: bool, show_y: bool, cmap: str = "Blues"):
    """Percent matrix as an image with its (rounded) values written in the cells."""
    k_r, k_c = mat.shape
    cmap_obj = matplotlib.colormaps[cmap].with_extremes(bad="#f2f2f2")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap_obj, vmin=0.0, vmax=vmax,
                   interpolation="nearest", aspect="equal")
    for i in range(k_r):
        for j in range(k_c):
            v = mat[i, j]
            if np.isfinite(v) and v != 0:
                ax.text(j, i, f"{v:.0f}" if v >= 0.5 else "<1", ha="center", va="center",
                        fontsize=6.5, color="white" if v > 0.55 * vmax else "#222222")
    long = show_x and max(map(len, xlabels)) > 3
    ax.set_xticks(range(k_c))
    ax.set_yticks(range(k_r))
    ax.set_xticklabels(xlabels if show_x else [""] * k_c, rotation=45 if long else 0,
                       ha="right" if long else "center", rotation_mode="anchor")
    ax.set_yticklabels(ylabels if show_y else [""] * k_r)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_xticks(np.arange(-0.5, k_c, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k_r, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    return im


def _color_ticklabels(labels, indices: Sequence[int]) -> None:
    for t, i in zip(labels, indices, strict=True):
        t.set_bbox({"boxstyle": "square,pad=0.15", "facecolor": lcz_color(i), "edgecolor": "none", "alpha": 0.35})


def _confusion_panel(ax: Axes, regime: str, labels: Array, preds: Array, k: int, first_col: bool):
    """One regime's panel: the heatmap, LCZ codes below (names on the first column's rows), OA."""
    names = [lcz_label(i) for i in range(k)]
    codes = [lcz_label(i, with_name=False) for i in range(k)]
    # x: LCZ codes on every panel (names are on the rows), so no panel hides another's labels
    im = _heatmap(ax, confusion_percent(labels, preds, k), xlabels=codes, ylabels=names, show_x=True,
                  show_y=first_col)
    _color_ticklabels(ax.get_xticklabels(), range(k))
    ax.set_xlabel("predicted LCZ")
    if first_col:
        _color_ticklabels(ax.get_yticklabels(), range(k))
        ax.set_ylabel("majority vote")
    acc = float(np.mean(np.asarray(labels) == np.asarray(preds))) if len(labels) else float("nan")
    ax.set_title(f"{regime_label(regime)}  (OA {100 * acc:.1f} %)")
    return im


def draw_confusion_matrices(results: Mapping[str, tuple[Array, Array]], k: int = N_URBAN,
                            title: str | None = None) -> Figure:
    """Row-normalised confusion matrices (percent of each majority-vote class), one panel per regime.

    ``results``: regime -> (labels (N,), preds (N,)) class indices 0..k-1 (pool seeds by
    concatenation). Rows = majority vote, columns = prediction, LCZ names on the axes. Panels in
    regime order; each panel's image holds :func:`confusion_percent`.
    """
    if not results:
        raise ValueError("plot_confusion_matrices: no regimes given")
    regimes = order_regimes(list(results))
    rows, cols = grid_shape(len(regimes))
    with styled():
        fig, axes, cax = panels_with_colorbar(len(regimes), rows, cols, (3.3, 3.55), (2.2, 0.6), wspace=0.08)
        for n, (reg, ax) in enumerate(zip(regimes, axes, strict=True)):
            im = _confusion_panel(ax, reg, *results[reg], k, first_col=n % cols == 0)
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("% of majority-vote class")
        cb.outline.set_visible(False)
        if title:
            fig.suptitle(title)
    return fig


def plot_confusion_matrices(results: Mapping[str, tuple[Array, Array]], out_stem: Path | str,
                            k: int = N_URBAN, title: str | None = None) -> list[Path]:
    """:func:`draw_confusion_matrices` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_confusion_matrices(results, k, title), out_stem)


def draw_voting_confusion(counts: Array) -> Figure:
    """Original So2Sat label (rows) vs individual expert votes (columns), LCZ 1..K, from the (K, K)
    vote counts: row-normalised percent (:func:`voting_confusion_percent`); the title gives the
    number of votes counted."""
    mat = voting_confusion_percent(counts)
    k = mat.shape[0]
    names = [lcz_label(i) for i in range(k)]
    n_votes = int(np.asarray(counts).sum())
    with styled():
        fig = new_figure(6.2, 5.4)
        ax = fig.add_subplot(1, 1, 1)
        im = _heatmap(ax, mat, xlabels=names, ylabels=names, show_x=True, show_y=True, cmap="Purples")
        _color_ticklabels(ax.get_yticklabels(), range(k))
        _color_ticklabels(ax.get_xticklabels(), range(k))
        ax.set_ylabel("original So2Sat label")
        ax.set_xlabel("individual expert vote")
        ax.set_title(f"Expert votes per original label ({n_votes:,} votes)")
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label("% of the row's votes")
        cb.outline.set_visible(False)
    return fig


def plot_voting_confusion(counts: Array, out_stem: Path | str) -> list[Path]:
    """:func:`draw_voting_confusion` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_voting_confusion(counts), out_stem)
