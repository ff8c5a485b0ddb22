"""Owns the reliability diagrams: accuracy per top-label confidence bin with the gap to calibration
and the confidence histogram, binned exactly as the evaluation bins (so the printed ECE is the ECE
of metrics.json), one diagram or a grid of regimes x methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lczldl.evaluation.calibration import calibration_bins, ece_mce
from lczldl.regimes import order_regimes, regime_label
from lczldl.viz.style import ACCENT, GAP, NEUTRAL, new_figure, save_figure, styled

Array = np.ndarray
#: column titles of the reliability grid per method
METHOD_TITLES = {"plain": "before TS", "temperature": "after TS"}


def reliability_data(probs: Array, labels: Array, n_bins: int) -> dict[str, Array | float]:
    """What a reliability diagram draws, from (N, K) probs and (N,) labels.

    Returns per bin (``n_bins``): ``count``, ``confidence`` (mean), ``accuracy`` (NaN when empty),
    ``share`` (count / binned samples), ``edges`` (n_bins + 1); scalars ``ece``, ``mce``
    (:func:`lczldl.evaluation.calibration.ece_mce`), ``avg_confidence`` and ``avg_accuracy`` over
    the binned samples. Bins are the evaluation's: (lo, hi], confidence 0 dropped.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    cnt, c, a = calibration_bins(conf, correct, n_bins, "right")
    ece, mce = ece_mce(conf, correct, n_bins, "right")
    total = cnt.sum()
    kept = conf > 0
    return {
        "count": cnt, "confidence": c, "accuracy": a,
        "share": cnt / total if total else cnt,
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "ece": ece, "mce": mce,
        "avg_confidence": float(conf[kept].mean()) if kept.any() else float("nan"),
        "avg_accuracy": float(correct[kept].mean()) if kept.any() else float("nan"),
    }


def _draw_reliability(ax: Axes, axh: Axes, data: dict, *, title: str | None, ece: float | None,
                      show_ylabel: bool = True, show_legend: bool = True) -> None:
    """Accuracy bars (label "accuracy"), gap bars to the bin's mean confidence (label "gap"),
    alpha = bin importance; the confidence histogram (percent of samples) below on ``axh``."""
    edges = data["edges"]
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    cnt = data["count"]
    acc = np.nan_to_num(data["accuracy"])
    conf = np.where(cnt > 0, data["confidence"], centers)
    importance = cnt / cnt.max() if cnt.max() > 0 else cnt
    acc_col = np.array([mcolors.to_rgba(ACCENT, 0.2 + 0.8 * a) for a in importance])
    gap_col = np.array([mcolors.to_rgba(GAP, 0.15 + 0.45 * a) for a in importance])
    nz = cnt > 0
    ax.bar(centers[nz], acc[nz], width=width * 0.96, color=acc_col[nz], edgecolor=ACCENT, linewidth=0.4,
           label="accuracy")
    ax.bar(centers[nz], np.abs(acc - conf)[nz], bottom=np.minimum(acc, conf)[nz], width=width * 0.96,
           color=gap_col[nz], edgecolor=GAP, linewidth=0.4, hatch="////", label="gap")
    ax.hlines(acc[nz], centers[nz] - width * 0.48, centers[nz] + width * 0.48, color="#08306b", lw=1.3)
    ax.plot([0, 1], [0, 1], ls="--", color=NEUTRAL, lw=0.9, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticklabels([])
    ax.grid(True, axis="y")
    ax.set_axisbelow(True)
    if show_ylabel:
        ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    e = data["ece"] if ece is None else ece
    ax.text(0.97, 0.04, f"ECE = {100 * e:.2f} %", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8.5, bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#999999",
                                "linewidth": 0.6})
    if show_legend:
        ax.legend(loc="upper left", fontsize=7)
    axh.bar(centers, 100 * data["share"], width=width * 0.96, color=ACCENT, alpha=0.75, linewidth=0)
    axh.axvline(data["avg_accuracy"], color=NEUTRAL, ls="--", lw=1.0, label="accuracy")
    axh.axvline(data["avg_confidence"], color=GAP, ls="-", lw=1.0, label="avg. confidence")
    axh.set_xlim(0, 1)
    axh.set_xlabel("confidence")
    if show_ylabel:
        axh.set_ylabel("% samples")
    if show_legend:
        axh.legend(loc="upper left", fontsize=7)


def draw_reliability(probs: Array, labels: Array, n_bins: int, title: str | None = None,
                     ece: float | None = None) -> Figure:
    """One reliability diagram (paper style) with the confidence histogram below.

    ``probs`` (N, K), ``labels`` (N,). ``ece`` overrides the printed value (default: computed
    from the same bins, equal to the evaluation's ECE). Axes: [diagram, histogram].
    """
    data = reliability_data(probs, labels, n_bins)
    with styled():
        fig = new_figure(3.6, 4.9)
        gs = fig.add_gridspec(2, 1, height_ratios=[3.2, 1], hspace=0.06)
        _draw_reliability(fig.add_subplot(gs[0]), fig.add_subplot(gs[1]), data, title=title, ece=ece)
    return fig


def plot_reliability(probs: Array, labels: Array, out_stem: Path | str, n_bins: int,
                     title: str | None = None, ece: float | None = None) -> list[Path]:
    """:func:`draw_reliability` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_reliability(probs, labels, n_bins, title, ece), out_stem)


def draw_reliability_grid(panels: Mapping[str, Mapping[str, tuple[Array, Array]]], n_bins: int,
                          methods: Sequence[str] = ("plain", "temperature"),
                          method_titles: Mapping[str, str] | None = None,
                          ece: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    """Reliability diagrams in a grid: rows = regimes (regime order), columns = methods.
    ``panels``: regime -> method -> (probs, labels); a missing panel says "not available". Axes
    come in pairs [diagram, histogram] per panel, row by row (a missing panel's pair too)."""
    if not panels:
        raise ValueError("plot_reliability_grid: no regimes given")
    regimes = order_regimes(list(panels))
    titles = {**METHOD_TITLES, **(method_titles or {})}
    with styled():
        fig = new_figure(3.3 * len(methods) + 0.6, 4.1 * len(regimes) + 0.3)
        outer = fig.add_gridspec(len(regimes), len(methods), hspace=0.3, wspace=0.14)
        for i, reg in enumerate(regimes):
            for j, m in enumerate(methods):
                sub = outer[i, j].subgridspec(2, 1, height_ratios=[3.2, 1], hspace=0.07)
                ax, axh = fig.add_subplot(sub[0]), fig.add_subplot(sub[1])
                t = f"{regime_label(reg)}, {titles.get(m, m)}"
                pair = panels[reg].get(m)
                if pair is None:
                    ax.set_title(t)
                    ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes,
                            color=NEUTRAL)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    axh.set_axis_off()
                    continue
                e = (ece or {}).get(reg, {}).get(m)
                _draw_reliability(ax, axh, reliability_data(pair[0], pair[1], n_bins), title=t, ece=e,
                                  show_ylabel=j == 0, show_legend=i == 0 and j == 0)
    return fig


def plot_reliability_grid(panels: Mapping[str, Mapping[str, tuple[Array, Array]]], out_stem: Path | str,
                          n_bins: int, methods: Sequence[str] = ("plain", "temperature"),
                          method_titles: Mapping[str, str] | None = None,
                          ece: Mapping[str, Mapping[str, float]] | None = None) -> list[Path]:
    """:func:`draw_reliability_grid` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_reliability_grid(panels, n_bins, methods, method_titles, ece), out_stem)
