"""Owns the per-seed dot plot: one dot per seed and a bar at the mean for a few key metrics of the
plain models, so the seed-to-seed spread can be compared with the differences between regimes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lczldl.evaluation.registry import METRICS, higher_is_better
from lczldl.regimes import order_regimes, regime_color, regime_label
from lczldl.viz.style import new_figure, save_figure, styled

#: Metrics of the seed dot plot (labels and directions: :mod:`lczldl.evaluation.registry`).
SEED_DOT_METRICS: tuple[str, ...] = ("oa", "kappa", "ce_one_hot", "ce_distr", "ece", "sce")


def _title(key: str) -> str:
    """Panel title: the metric's label and which way is better."""
    higher = higher_is_better(key)
    arrow = "" if higher is None else (" (\u2191 better)" if higher else " (\u2193 better)")
    return (METRICS[key].label if key in METRICS else key) + arrow


def draw_seed_dots(per_seed_metrics: Mapping[str, Sequence[Mapping[str, float]]],
                   metrics: Sequence[str] | None = None) -> Figure:
    """Per-seed metric dot plot: one panel (axes) per metric, one row per regime (first regime on
    top, at y = n_regimes - 1), one dot per seed (finite values; a small vertical jitter) and a bar
    at the mean. ``per_seed_metrics``: regime -> list of metrics dicts (metrics.json of each seed).
    ``metrics`` defaults to those of :data:`SEED_DOT_METRICS` present in the data."""
    if not per_seed_metrics:
        raise ValueError("plot_seed_dots: no regimes given")
    regimes = order_regimes(list(per_seed_metrics))
    present = {k for rows in per_seed_metrics.values() for r in rows for k in r}
    chosen = list(metrics) if metrics is not None else [m for m in SEED_DOT_METRICS if m in present]
    if not chosen:
        raise ValueError("plot_seed_dots: none of the metrics is in the data")
    cols = min(len(chosen), 3)
    rows = math.ceil(len(chosen) / cols)
    rng = np.random.default_rng(0)
    with styled():
        fig = new_figure(3.2 * cols + 1.0, (0.4 * len(regimes) + 1.3) * rows)
        for n, m in enumerate(chosen):
            ax = fig.add_subplot(rows, cols, n + 1)
            for i, reg in enumerate(regimes):
                vals = np.array([float(r[m]) for r in per_seed_metrics[reg] if m in r and r[m] is not None],
                                dtype=np.float64)
                vals = vals[np.isfinite(vals)]
                y = len(regimes) - 1 - i
                if vals.size == 0:
                    continue
                ax.scatter(vals, y + rng.uniform(-0.12, 0.12, vals.size), s=22, color=regime_color(reg, i),
                           edgecolor="white", linewidth=0.5, zorder=3)
                ax.plot([vals.mean()] * 2, [y - 0.3, y + 0.3], color="#222222", lw=1.4, zorder=2)
            ax.set_yticks(range(len(regimes)))
            ax.set_yticklabels([regime_label(r) for r in reversed(regimes)] if n % cols == 0 else [])
            ax.set_ylim(-0.6, len(regimes) - 0.4)
            ax.set_title(_title(m), fontsize=9)
            ax.grid(True, axis="x")
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.margins(x=0.12)
        fig.subplots_adjust(wspace=0.12, hspace=0.45)
    return fig


def plot_seed_dots(per_seed_metrics: Mapping[str, Sequence[Mapping[str, float]]], out_stem: Path | str,
                   metrics: Sequence[str] | None = None) -> list[Path]:
    """:func:`draw_seed_dots` saved as ``out_stem``.png/.pdf; returns the paths."""
    return save_figure(draw_seed_dots(per_seed_metrics, metrics), out_stem)
