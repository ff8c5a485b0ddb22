"""Owns the figures over the paper's vote-entropy bins: share of images per bin (urban vs non-urban
majority), accuracy and ECE per bin per regime, and predictive vs vote entropy (hexbin)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lczldl.distributions import (
    N_ENTROPY_BINS,
    entropy_bin_labels,
    entropy_histogram,
    entropy_nats,
    spearman,
)
from lczldl.evaluation.metrics import entropy_bin_metrics
from lczldl.regimes import order_regimes, regime_color, regime_label
from lczldl.viz.style import (
    ENTROPY_AXIS_LABEL,
    NEUTRAL,
    entropy_bin_axes,
    grid_shape,
    new_figure,
    panels_with_colorbar,
    save_figure,
    styled,
)

Array = np.ndarray
Triple = tuple[Array, Array, Array]
#: bar colours of the urban / non-urban majority groups
GROUP_COLORS = {"urban": "#b2182b", "non-urban": "#1b7837"}


def _bin_counts(counts: Array, name: str) -> Array:
    """(6,) non-negative image counts per paper entropy bin as int64 (ValueError otherwise)."""
    c = np.asarray(counts)
    if c.shape != (N_ENTROPY_BINS,) or (c < 0).any() or not np.all(c == np.round(c)):
        raise ValueError(f"{name}: expected ({N_ENTROPY_BINS},) non-negative image counts, got {c!r}")
    return c.astype(np.int64)


def vote_entropy_shares(urban: Array, non_urban: Array) -> dict[str, Array]:
    """Share (percent) of images per paper entropy bin within the urban (majority LCZ 1-10) and
    the non-urban (LCZ 11-17) group, from their (6,) image counts per bin (the manifest's
    ``release_votes["entropy_bins"]``): {"urban": (6,), "non-urban": (6,)}, each summing to 100
    (all zeros for an empty group), plus "n_urban"/"n_non_urban" image counts as 0-d arrays."""
    out: dict[str, Array] = {}
    for name, counts in (("urban", urban), ("non-urban", non_urban)):
        c = _bin_counts(counts, name)
        n = int(c.sum())
        out[name] = 100.0 * c / max(n, 1)
        out["n_" + name.replace("-", "_")] = np.asarray(n)
    return out


def metrics_by_entropy_bin(probs: Array, labels: Array, vote_entropy: Array,
                           n_bins: int) -> dict[str, Array]:
    """Accuracy, ECE (right-closed confidence bins) and sample count per paper vote-entropy bin:
    (6,) each, NaN for empty bins; the values of ``oa_ebin*`` / ``ece_ebin*``
    (:func:`lczldl.evaluation.metrics.entropy_bin_metrics`)."""
    probs = np.asarray(probs, dtype=np.float64)
    correct = probs.argmax(axis=1) == np.asarray(labels, dtype=np.int64)
    m = entropy_bin_metrics(probs.max(axis=1), correct, vote_entropy, n_bins, "right")
    return {"accuracy": np.array([m[f"oa_ebin{b}"] for b in range(N_ENTROPY_BINS)]),
            "ece": np.array([m[f"ece_ebin{b}"] for b in range(N_ENTROPY_BINS)]),
            "count": entropy_histogram(vote_entropy)}


def draw_vote_entropy_bars(urban: Array, non_urban: Array, note: str | None = None) -> Figure:
    """Share of images per paper vote-entropy bin, urban (majority LCZ 1-10) vs non-urban (11-17).

    ``urban``, ``non_urban``: (6,) image counts per bin. Each group is drawn in percent of its
    images, summing to 100 % (:func:`vote_entropy_shares`; bar containers in the order urban,
    non-urban; the legend gives each group's image count). ``note`` is printed under the plot
    (e.g. the source of the counts).
    """
    sh = vote_entropy_shares(urban, non_urban)
    labels = entropy_bin_labels()
    x = np.arange(len(labels))
    w = 0.38
    with styled():
        fig = new_figure(5.6, 3.4)
        ax = fig.add_subplot(1, 1, 1)
        for g, name in enumerate(("urban", "non-urban")):
            n = int(sh["n_" + name.replace("-", "_")])
            bars = ax.bar(x + (g - 0.5) * w, sh[name], width=w * 0.95, color=GROUP_COLORS[name],
                          alpha=0.85 if n else 0.25, label=f"{name} majority (n = {n:,})")
            if n:
                for b, v in zip(bars, sh[name], strict=True):
                    ax.text(b.get_x() + b.get_width() / 2, v + 0.8, f"{v:.1f}", ha="center", va="bottom",
                            fontsize=6.5, color="#333333")
        entropy_bin_axes(ax, labels, "% of images in group", tick_size=None)
        ax.set_ylim(0, max(float(np.max(sh["urban"])), float(np.max(sh["non-urban"])), 1.0) * 1.1)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
        if note:
            fig.text(0.01, -0.02, note, fontsize=7, color=NEUTRAL, ha="left", va="top")
    return fig


def plot_vote_entropy_bars(urban: Array, non_urban: Array, out_stem: Path | str,
                           note: str | None = None) -> list[Path]:
    """:func:`draw_vote_entropy_bars` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_vote_entropy_bars(urban, non_urban, note), out_stem)


def _mean_std(vals: Array) -> tuple[Array, Array | None]:
    """Mean over seeds (rows) ignoring NaN, and the std (None for one seed; NaN for empty bins)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN bins
        mean = np.nanmean(vals, axis=0)
        std = np.nanstd(vals, axis=0) if len(vals) > 1 else None
    return mean, None if std is None else np.where(np.isfinite(mean), np.nan_to_num(std), np.nan)


def draw_metrics_by_entropy_bin(per_regime: Mapping[str, Triple | Sequence[Triple]],
                                n_bins: int) -> Figure:
    """Accuracy and ECE (percent) per vote-entropy bin for each regime: axes [accuracy, ECE], one
    bar container per regime in regime order.

    ``per_regime``: regime -> (probs, labels, vote_entropy) or a list of those (one per seed:
    the mean is drawn, error bars = std over seeds). Tick labels give the number of test images
    per bin (of the first regime's first seed).
    """
    if not per_regime:
        raise ValueError("plot_metrics_by_entropy_bin: no regimes given")
    regimes = order_regimes(list(per_regime))
    labels = entropy_bin_labels()
    x = np.arange(len(labels))
    w = 0.8 / len(regimes)
    with styled():
        fig = new_figure(9.0, 3.6)
        axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
        counts = None
        for i, reg in enumerate(regimes):
            runs = per_regime[reg]
            if isinstance(runs, tuple) and len(runs) == 3 and np.ndim(runs[0]) == 2:
                runs = [runs]
            res = [metrics_by_entropy_bin(p, y, e, n_bins) for p, y, e in runs]
            counts = res[0]["count"] if counts is None else counts
            for ax, key in ((axes[0], "accuracy"), (axes[1], "ece")):
                mean, std = _mean_std(np.array([r[key] for r in res]) * 100)
                ax.bar(x + (i - (len(regimes) - 1) / 2) * w, mean, width=w * 0.92, yerr=std,
                       color=regime_color(reg, i), label=regime_label(reg),
                       error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
        ticks = [f"{lab}\nn={int(c):,}" for lab, c in zip(labels, counts, strict=True)]
        for ax, yl in zip(axes, ("accuracy (%)", "ECE (%)"), strict=True):
            entropy_bin_axes(ax, ticks, yl)
        axes[0].set_ylim(0, 100)
        axes[0].set_title("Accuracy vs. majority vote")
        axes[1].set_title("Expected calibration error")
        handles, names = axes[0].get_legend_handles_labels()
        fig.subplots_adjust(wspace=0.25, top=0.8)
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=len(regimes))
    return fig


def plot_metrics_by_entropy_bin(per_regime: Mapping[str, Triple | Sequence[Triple]], out_stem: Path | str,
                                n_bins: int) -> list[Path]:
    """:func:`draw_metrics_by_entropy_bin` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_metrics_by_entropy_bin(per_regime, n_bins), out_stem)


def draw_entropy_hexbin(per_regime: Mapping[str, tuple[Array, Array]], gridsize: int = 30) -> Figure:
    """Predictive entropy (of ``probs``) vs vote entropy, hexbin (log counts), one panel per regime
    in regime order (the colour bar is the last axes).

    ``per_regime``: regime -> (probs (N, K), vote_entropy (N,)). Spearman's rho is printed.
    """
    if not per_regime:
        raise ValueError("plot_entropy_hexbin: no regimes given")
    regimes = order_regimes(list(per_regime))
    rows, cols = (1, 4) if len(regimes) == 4 else grid_shape(len(regimes), 4)
    lim = math.log(max(np.asarray(p).shape[1] for p, _ in per_regime.values())) * 1.02
    with styled():
        fig, axes, cax = panels_with_colorbar(len(regimes), rows, cols, (2.9, 2.9), (0.8, 0.5), wspace=0.12)
        hb = None
        for n, (reg, ax) in enumerate(zip(regimes, axes, strict=True)):
            c = n % cols
            p, ve = per_regime[reg]
            pe, ve = entropy_nats(np.asarray(p, dtype=np.float64)), np.asarray(ve, dtype=np.float64)
            hb = ax.hexbin(ve, pe, gridsize=gridsize, extent=(0, lim, 0, lim), bins="log", cmap="viridis",
                           mincnt=1, linewidths=0.1, norm=None)
            ax.plot([0, lim], [0, lim], ls="--", color="#cc3333", lw=0.9)
            ax.set_xlim(0, lim)
            ax.set_ylim(0, lim)
            ax.set_aspect("equal")
            ax.set_title(regime_label(reg))
            ax.set_xlabel(ENTROPY_AXIS_LABEL)
            if c == 0:
                ax.set_ylabel("predictive entropy (nats)")
            else:
                ax.set_yticklabels([])
            ax.text(0.04, 0.96, f"Spearman \u03c1 = {spearman(pe, ve):.2f}", transform=ax.transAxes,
                    va="top", ha="left", fontsize=8, zorder=5,
                    bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "#bbbbbb",
                          "linewidth": 0.5, "alpha": 0.95})
        cb = fig.colorbar(hb, cax=cax)
        cb.set_label("images (log scale)")
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
        cb.outline.set_visible(False)
    return fig


def plot_entropy_hexbin(per_regime: Mapping[str, tuple[Array, Array]], out_stem: Path | str,
                        gridsize: int = 30) -> list[Path]:
    """:func:`draw_entropy_hexbin` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_entropy_hexbin(per_regime, gridsize), out_stem)
