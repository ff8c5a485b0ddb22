"""The study's figures as pure functions: arrays in, ``out_stem``.png/.pdf out (paths returned).

Each plot has a pure data function next to it (``confusion_percent``, ``reliability_data``, ...)
that computes exactly what is drawn; tests check those numbers, the plots only draw them.

Conventions: class indices 0..9 <-> LCZ 1..10; probabilities (N, K) rows sum to 1; entropies in
nats; vote-entropy bins are the paper's :data:`lczldl.distributions.ENTROPY_BIN_EDGES`, left-closed
[lo, hi) as in the prepared store's manifest. Reliability diagrams bin the top-label confidence with
the evaluation's default convention (:func:`lczldl.evaluation.calibration.calibration_bins`,
``binning="right"``: equal-width bins (lo, hi], confidence 0 dropped), so the ECE printed on a
diagram is the ECE of ``metrics.json``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lczldl.constants import N_LCZ, N_URBAN
from lczldl.distributions import (
    N_ENTROPY_BINS,
    entropy_bin,
    entropy_bin_labels,
    entropy_nats,
    spearman,
)
from lczldl.evaluation.calibration import calibration_bins
from lczldl.viz.style import (
    ACCENT,
    GAP,
    NEUTRAL,
    lcz_label,
    new_figure,
    order_regimes,
    regime_color,
    regime_label,
    save_figure,
    styled,
)

Array = np.ndarray


# ---------------------------------------------------------------------------------------------
# pure data functions
# ---------------------------------------------------------------------------------------------


def confusion_percent(labels: Array, preds: Array, k: int = N_URBAN) -> Array:
    """(K, K) confusion matrix in percent of each row (true class); rows without samples are NaN.

    ``labels``/``preds`` (N,) class indices 0..K-1; entry [i, j] = share of class-i samples
    predicted as j, x 100.
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in shape")
    if labels.size and (min(labels.min(), preds.min()) < 0 or max(labels.max(), preds.max()) >= k):
        raise ValueError(f"class indices must be in 0..{k - 1}")
    cm = np.bincount(labels * k + preds, minlength=k * k).reshape(k, k).astype(np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, 100.0 * cm / rows, np.nan)


def voting_confusion_percent(votes: Array, original: Array, k: int = N_URBAN) -> Array:
    """(K, K) percent: row = original label LCZ 1..K, column = individual expert vote LCZ 1..K.

    ``votes`` (N, V) LCZ ids (0 = no vote), ``original`` (N,) LCZ id. Votes of 0 and votes or
    original labels outside 1..K are ignored; each row is normalised over its votes in 1..K
    (NaN where a row has none).
    """
    votes = np.asarray(votes, dtype=np.int64)
    original = np.asarray(original, dtype=np.int64)
    if votes.ndim != 2 or original.shape != (votes.shape[0],):
        raise ValueError(f"votes must be (N, V) and original (N,), got {votes.shape} and {original.shape}")
    rows = np.broadcast_to(original[:, None], votes.shape)
    ok = (votes >= 1) & (votes <= k) & (rows >= 1) & (rows <= k)
    cell = (rows[ok] - 1) * k + (votes[ok] - 1)
    cm = np.bincount(cell, minlength=k * k).reshape(k, k).astype(np.float64)
    tot = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, 100.0 * cm / tot, np.nan)


def vote_entropy_shares(entropy: Array, majority_lcz: Array) -> dict[str, Array]:
    """Share (percent) of images per paper entropy bin within the urban (majority LCZ 1-10) and
    the non-urban (LCZ 11-17) group: {"urban": (6,), "non-urban": (6,)}, each summing to 100
    (all zeros for an empty group), plus "n_urban"/"n_non_urban" counts as 0-d arrays."""
    entropy = np.asarray(entropy, dtype=np.float64)
    maj = np.asarray(majority_lcz, dtype=np.int64)
    if entropy.shape != maj.shape:
        raise ValueError(f"entropy {entropy.shape} and majority_lcz {maj.shape} differ in shape")
    nb = N_ENTROPY_BINS
    idx = entropy_bin(entropy)
    out: dict[str, Array] = {}
    for name, sel in (("urban", (maj >= 1) & (maj <= N_URBAN)), ("non-urban", (maj > N_URBAN) & (maj <= N_LCZ))):
        cnt = np.bincount(idx[sel], minlength=nb).astype(np.float64)
        out[name] = 100.0 * cnt / cnt.sum() if cnt.sum() else cnt
        out["n_" + name.replace("-", "_")] = np.asarray(int(sel.sum()))
    return out


def reliability_data(probs: Array, labels: Array, n_bins: int = 20) -> dict[str, Array | float]:
    """What a reliability diagram draws, from (N, K) probs and (N,) labels.

    Returns per bin (``n_bins``): ``count``, ``confidence`` (mean), ``accuracy`` (NaN when empty),
    ``share`` (count / binned samples), ``edges`` (n_bins + 1); scalars ``ece``, ``mce``,
    ``avg_confidence`` and ``avg_accuracy`` over the binned samples. Bins are the evaluation's
    default: (lo, hi], confidence 0 dropped.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    cnt, c, a = calibration_bins(conf, correct, n_bins, "right")
    total = cnt.sum()
    nz = cnt > 0
    gap = np.abs(a[nz] - c[nz])
    kept = conf > 0
    return {
        "count": cnt, "confidence": c, "accuracy": a,
        "share": cnt / total if total else cnt,
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "ece": float((cnt[nz] * gap).sum() / total) if total else float("nan"),
        "mce": float(gap.max()) if nz.any() else float("nan"),
        "avg_confidence": float(conf[kept].mean()) if kept.any() else float("nan"),
        "avg_accuracy": float(correct[kept].mean()) if kept.any() else float("nan"),
    }


def metrics_by_entropy_bin(probs: Array, labels: Array, vote_entropy: Array,
                           n_bins: int = 20) -> dict[str, Array]:
    """Accuracy, ECE (right-closed bins) and sample count per paper vote-entropy bin: (6,) each,
    NaN for empty bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    eb = entropy_bin(vote_entropy)
    nb = N_ENTROPY_BINS
    acc = np.full(nb, np.nan)
    ece = np.full(nb, np.nan)
    cnt = np.bincount(eb, minlength=nb)
    for b in range(nb):
        sel = eb == b
        if sel.any():
            r = reliability_data(probs[sel], labels[sel], n_bins)
            acc[b] = float((probs[sel].argmax(axis=1) == labels[sel]).mean())
            ece[b] = r["ece"]
    return {"accuracy": acc, "ece": ece, "count": cnt}


# ---------------------------------------------------------------------------------------------
# drawing helpers
# ---------------------------------------------------------------------------------------------


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols) if n != 4 else 2
    return math.ceil(n / cols), cols


def _heatmap(ax: Axes, mat: Array, *, vmax: float = 100.0, annotate: bool = True,
             xlabels: Sequence[str], ylabels: Sequence[str], show_x: bool, show_y: bool,
             cmap: str = "Blues"):
    k_r, k_c = mat.shape
    masked = np.ma.masked_invalid(mat)
    cmap_obj = matplotlib.colormaps[cmap].with_extremes(bad="#f2f2f2")
    im = ax.imshow(masked, cmap=cmap_obj, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    if annotate:
        for i in range(k_r):
            for j in range(k_c):
                v = mat[i, j]
                if not np.isfinite(v):
                    continue
                txt = f"{v:.0f}" if v >= 0.5 or v == 0 else "<1"
                if v == 0:
                    continue
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5,
                        color="white" if v > 0.55 * vmax else "#222222")
    ax.set_xticks(range(k_c))
    ax.set_yticks(range(k_r))
    ax.set_xticklabels(xlabels if show_x else [""] * k_c, rotation=45 if show_x and max(map(len, xlabels)) > 3 else 0,
                       ha="right" if show_x and max(map(len, xlabels)) > 3 else "center", rotation_mode="anchor")
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
    from lczldl.viz.style import lcz_color

    for t, i in zip(labels, indices, strict=True):
        t.set_bbox({"boxstyle": "square,pad=0.15", "facecolor": lcz_color(i), "edgecolor": "none", "alpha": 0.35})


# ---------------------------------------------------------------------------------------------
# 1. confusion matrices
# ---------------------------------------------------------------------------------------------


def plot_confusion_matrices(results: Mapping[str, tuple[Array, Array]], out_stem: Path | str,
                            k: int = N_URBAN, title: str | None = None) -> list[Path]:
    """Row-normalised confusion matrices (percent of each majority-vote class), one panel per regime.

    ``results``: regime -> (labels (N,), preds (N,)) class indices 0..k-1 (pool seeds by
    concatenation). Rows = majority vote, columns = prediction, LCZ names on the axes.
    """
    if not results:
        raise ValueError("plot_confusion_matrices: no regimes given")
    regimes = order_regimes(list(results))
    rows, cols = _grid(len(regimes))
    names = [lcz_label(i) for i in range(k)]
    with styled():
        fig = new_figure(3.3 * cols + 2.2, 3.55 * rows + 0.6)
        gs = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.05], wspace=0.08, hspace=0.3)
        im = None
        codes = [lcz_label(i, with_name=False) for i in range(k)]
        for n, reg in enumerate(regimes):
            r, c = divmod(n, cols)
            ax = fig.add_subplot(gs[r, c])
            labels, preds = results[reg]
            mat = confusion_percent(labels, preds, k)
            # x: LCZ codes on every panel (names are on the rows), so no panel hides another's labels
            im = _heatmap(ax, mat, xlabels=codes, ylabels=names, show_x=True, show_y=c == 0)
            _color_ticklabels(ax.get_xticklabels(), range(k))
            ax.set_xlabel("predicted LCZ")
            if c == 0:
                _color_ticklabels(ax.get_yticklabels(), range(k))
                ax.set_ylabel("majority vote")
            acc = float(np.mean(np.asarray(labels) == np.asarray(preds))) if len(labels) else float("nan")
            ax.set_title(f"{regime_label(reg)}  (OA {100 * acc:.1f} %)")
        cax = fig.add_subplot(gs[:, cols])
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("% of majority-vote class")
        cb.outline.set_visible(False)
        if title:
            fig.suptitle(title)
        return save_figure(fig, out_stem)


# ---------------------------------------------------------------------------------------------
# 2. reliability diagrams
# ---------------------------------------------------------------------------------------------


def _draw_reliability(ax: Axes, axh: Axes, data: dict, *, title: str | None, ece: float | None,
                      show_ylabel: bool = True, show_legend: bool = True) -> None:
    """Accuracy bars, gap bars to the bin's mean confidence, alpha = bin importance; histogram below."""
    edges = data["edges"]
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    cnt = data["count"]
    acc = np.nan_to_num(data["accuracy"])
    conf = np.where(cnt > 0, data["confidence"], centers)
    importance = cnt / cnt.max() if cnt.max() > 0 else cnt
    alphas = 0.2 + 0.8 * importance
    acc_col = np.array([mcolors.to_rgba(ACCENT, a) for a in alphas])
    gap_col = np.array([mcolors.to_rgba(GAP, 0.15 + 0.45 * a) for a in importance])
    nz = cnt > 0
    ax.bar(centers[nz], acc[nz], width=width * 0.96, color=acc_col[nz], edgecolor=ACCENT, linewidth=0.4,
           label="accuracy")
    low = np.minimum(acc, conf)
    ax.bar(centers[nz], np.abs(acc - conf)[nz], bottom=low[nz], width=width * 0.96, color=gap_col[nz],
           edgecolor=GAP, linewidth=0.4, hatch="////", label="gap")
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
    # confidence histogram
    axh.bar(centers, 100 * data["share"], width=width * 0.96, color=ACCENT, alpha=0.75, linewidth=0)
    axh.axvline(data["avg_accuracy"], color=NEUTRAL, ls="--", lw=1.0, label="accuracy")
    axh.axvline(data["avg_confidence"], color=GAP, ls="-", lw=1.0, label="avg. confidence")
    axh.set_xlim(0, 1)
    axh.set_xlabel("confidence")
    if show_ylabel:
        axh.set_ylabel("% samples")
    if show_legend:
        axh.legend(loc="upper left", fontsize=7)


def plot_reliability(probs: Array, labels: Array, out_stem: Path | str, n_bins: int = 20,
                     title: str | None = None, ece: float | None = None) -> list[Path]:
    """One reliability diagram (paper style) with the confidence histogram below.

    ``probs`` (N, K), ``labels`` (N,). ``ece`` overrides the printed value (default: computed
    from the same bins, equal to the evaluation's ECE).
    """
    data = reliability_data(probs, labels, n_bins)
    with styled():
        fig = new_figure(3.6, 4.9)
        gs = fig.add_gridspec(2, 1, height_ratios=[3.2, 1], hspace=0.06)
        _draw_reliability(fig.add_subplot(gs[0]), fig.add_subplot(gs[1]), data, title=title, ece=ece)
        return save_figure(fig, out_stem)


def plot_reliability_grid(panels: Mapping[str, Mapping[str, tuple[Array, Array]]], out_stem: Path | str,
                          n_bins: int = 20, methods: Sequence[str] = ("plain", "temperature"),
                          method_titles: Mapping[str, str] | None = None,
                          ece: Mapping[str, Mapping[str, float]] | None = None) -> list[Path]:
    """Reliability diagrams in a grid: rows = regimes, columns = methods (plain / temperature
    scaled). ``panels``: regime -> method -> (probs, labels); missing panels are left out with a note.
    """
    if not panels:
        raise ValueError("plot_reliability_grid: no regimes given")
    regimes = order_regimes(list(panels))
    titles = {"plain": "before TS", "temperature": "after TS", **(method_titles or {})}
    nr, nc = len(regimes), len(methods)
    with styled():
        fig = new_figure(3.3 * nc + 0.6, 4.1 * nr + 0.3)
        outer = fig.add_gridspec(nr, nc, hspace=0.3, wspace=0.14)
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
        return save_figure(fig, out_stem)


# ---------------------------------------------------------------------------------------------
# 3. vote-entropy bars
# ---------------------------------------------------------------------------------------------


def plot_vote_entropy_bars(entropy: Array, majority_lcz: Array, out_stem: Path | str,
                           note: str | None = None) -> list[Path]:
    """Share of images per paper vote-entropy bin, urban (majority LCZ 1-10) vs non-urban (11-17).

    ``entropy`` (N,) nats, ``majority_lcz`` (N,) LCZ ids. Each group sums to 100 %. ``note`` is
    printed under the plot (e.g. that non-urban images are not in the data).
    """
    sh = vote_entropy_shares(entropy, majority_lcz)
    labels = entropy_bin_labels()
    x = np.arange(len(labels))
    with styled():
        fig = new_figure(5.6, 3.4)
        ax = fig.add_subplot(1, 1, 1)
        groups = [("urban", "#b2182b", int(sh["n_urban"])), ("non-urban", "#1b7837", int(sh["n_non_urban"]))]
        w = 0.38
        for g, (name, col, n) in enumerate(groups):
            vals = sh[name]
            off = (g - 0.5) * w
            bars = ax.bar(x + off, vals, width=w * 0.95, color=col, alpha=0.85 if n else 0.25,
                          label=f"{name} majority (n = {n:,})")
            if n:
                for b, v in zip(bars, vals, strict=True):
                    ax.text(b.get_x() + b.get_width() / 2, v + 0.8, f"{v:.1f}", ha="center", va="bottom",
                            fontsize=6.5, color="#333333")
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.set_xlabel("vote entropy (nats)")
        ax.set_ylabel("% of images in group")
        top = max(float(np.max(sh["urban"])), float(np.max(sh["non-urban"])), 1.0)
        ax.set_ylim(0, top * 1.1)
        ax.grid(True, axis="y")
        ax.set_axisbelow(True)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
        if note:
            fig.text(0.01, -0.02, note, fontsize=7, color=NEUTRAL, ha="left", va="top")
        return save_figure(fig, out_stem)


# ---------------------------------------------------------------------------------------------
# 4. voting confusion
# ---------------------------------------------------------------------------------------------


def plot_voting_confusion(votes: Array, original: Array, out_stem: Path | str, k: int = N_URBAN) -> list[Path]:
    """Original So2Sat label (rows) vs individual expert votes (columns), row-normalised percent,
    LCZ 1..k; no-votes (0) and labels/votes outside 1..k are ignored."""
    mat = voting_confusion_percent(votes, original, k)
    names = [lcz_label(i) for i in range(k)]
    n_votes = int(((np.asarray(votes) >= 1) & (np.asarray(votes) <= k)).sum())
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
        return save_figure(fig, out_stem)


# ---------------------------------------------------------------------------------------------
# 5. beyond the paper
# ---------------------------------------------------------------------------------------------

Triple = tuple[Array, Array, Array]


def plot_metrics_by_entropy_bin(per_regime: Mapping[str, Triple | Sequence[Triple]], out_stem: Path | str,
                                n_bins: int = 20) -> list[Path]:
    """Accuracy and ECE per vote-entropy bin for each regime.

    ``per_regime``: regime -> (probs, labels, vote_entropy) or a list of those (one per seed:
    the mean is drawn, error bars = std over seeds). Bar labels under the x axis give the
    number of test images per bin.
    """
    if not per_regime:
        raise ValueError("plot_metrics_by_entropy_bin: no regimes given")
    regimes = order_regimes(list(per_regime))
    labels = entropy_bin_labels()
    nb = len(labels)
    x = np.arange(nb)
    with styled():
        fig = new_figure(9.0, 3.6)
        axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
        w = 0.8 / len(regimes)
        counts = None
        for i, reg in enumerate(regimes):
            runs = per_regime[reg]
            if isinstance(runs, tuple) and len(runs) == 3 and np.ndim(runs[0]) == 2:
                runs = [runs]
            res = [metrics_by_entropy_bin(p, y, e, n_bins) for p, y, e in runs]
            counts = res[0]["count"] if counts is None else counts
            for ax, key, scale in ((axes[0], "accuracy", 100), (axes[1], "ece", 100)):
                vals = np.array([r[key] for r in res]) * scale
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN bins
                    mean = np.nanmean(vals, axis=0)
                    std = np.nanstd(vals, axis=0) if len(res) > 1 else None
                ax.bar(x + (i - (len(regimes) - 1) / 2) * w, mean, width=w * 0.92,
                       yerr=None if std is None else np.where(np.isfinite(mean), np.nan_to_num(std), np.nan),
                       color=regime_color(reg, i),
                       error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"},
                       label=regime_label(reg))
        ticks = [f"{lab}\nn={int(c):,}" for lab, c in zip(labels, counts, strict=True)]
        for ax, yl in zip(axes, ("accuracy (%)", "ECE (%)"), strict=True):
            ax.set_xticks(x)
            ax.set_xticklabels(ticks, fontsize=7)
            ax.set_xlabel("vote entropy (nats)")
            ax.set_ylabel(yl)
            ax.grid(True, axis="y")
            ax.set_axisbelow(True)
        axes[0].set_ylim(0, 100)
        axes[0].set_title("Accuracy vs. majority vote")
        axes[1].set_title("Expected calibration error")
        handles, names = axes[0].get_legend_handles_labels()
        fig.subplots_adjust(wspace=0.25, top=0.8)
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=len(regimes))
        return save_figure(fig, out_stem)


def plot_entropy_hexbin(per_regime: Mapping[str, tuple[Array, Array]], out_stem: Path | str,
                        gridsize: int = 30) -> list[Path]:
    """Predictive entropy (of ``probs``) vs vote entropy, hexbin (log counts), one panel per regime.

    ``per_regime``: regime -> (probs (N, K), vote_entropy (N,)). Spearman's rho is printed.
    """
    if not per_regime:
        raise ValueError("plot_entropy_hexbin: no regimes given")
    regimes = order_regimes(list(per_regime))
    rows, cols = _grid(len(regimes), 4 if len(regimes) != 4 else 2)
    if len(regimes) == 4:
        rows, cols = 1, 4
    kmax = max(np.asarray(p).shape[1] for p, _ in per_regime.values())
    lim = math.log(kmax) * 1.02
    with styled():
        fig = new_figure(2.9 * cols + 0.8, 2.9 * rows + 0.5)
        gs = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.05], wspace=0.12, hspace=0.3)
        hb = None
        vmax = 1
        data = {}
        for reg in regimes:
            p, ve = per_regime[reg]
            data[reg] = (entropy_nats(np.asarray(p, dtype=np.float64)), np.asarray(ve, dtype=np.float64))
            vmax = max(vmax, len(ve))
        for n, reg in enumerate(regimes):
            r, c = divmod(n, cols)
            ax = fig.add_subplot(gs[r, c])
            pe, ve = data[reg]
            hb = ax.hexbin(ve, pe, gridsize=gridsize, extent=(0, lim, 0, lim), bins="log", cmap="viridis",
                           mincnt=1, linewidths=0.1, norm=None)
            ax.plot([0, lim], [0, lim], ls="--", color="#cc3333", lw=0.9)
            ax.set_xlim(0, lim)
            ax.set_ylim(0, lim)
            ax.set_aspect("equal")
            ax.set_title(regime_label(reg))
            ax.set_xlabel("vote entropy (nats)")
            if c == 0:
                ax.set_ylabel("predictive entropy (nats)")
            else:
                ax.set_yticklabels([])
            ax.text(0.04, 0.96, f"Spearman \u03c1 = {spearman(pe, ve):.2f}", transform=ax.transAxes,
                    va="top", ha="left", fontsize=8,
                    zorder=5, bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "#bbbbbb",
                                    "linewidth": 0.5, "alpha": 0.95})
        cax = fig.add_subplot(gs[:, cols])
        cb = fig.colorbar(hb, cax=cax)
        cb.set_label("images (log scale)")
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
        cb.outline.set_visible(False)
        return save_figure(fig, out_stem)


#: Metrics of the seed dot plot and whether higher is better.
SEED_DOT_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("oa", "overall accuracy", True),
    ("kappa", "Cohen's kappa", True),
    ("ce_one_hot", "CE vs one-hot", False),
    ("ce_distr", "CE vs vote distribution", False),
    ("ece", "ECE", False),
    ("sce", "SCE (seed)", False),
)


def plot_seed_dots(per_seed_metrics: Mapping[str, Sequence[Mapping[str, float]]], out_stem: Path | str,
                   metrics: Sequence[str] | None = None, seeds: Mapping[str, Sequence[int]] | None = None
                   ) -> list[Path]:
    """Per-seed metric dot plot: one panel per metric, one row per regime, one dot per seed and a
    bar at the mean. ``per_seed_metrics``: regime -> list of metrics dicts (metrics.json of each
    seed). ``metrics`` defaults to those of :data:`SEED_DOT_METRICS` present in the data."""
    if not per_seed_metrics:
        raise ValueError("plot_seed_dots: no regimes given")
    regimes = order_regimes(list(per_seed_metrics))
    known = {m: (t, hb) for m, t, hb in SEED_DOT_METRICS}
    present = {k for rows in per_seed_metrics.values() for r in rows for k in r}
    chosen = list(metrics) if metrics is not None else [m for m, _, _ in SEED_DOT_METRICS if m in present]
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
                jitter = rng.uniform(-0.12, 0.12, vals.size)
                ax.scatter(vals, y + jitter, s=22, color=regime_color(reg, i), edgecolor="white",
                           linewidth=0.5, zorder=3)
                ax.plot([vals.mean()] * 2, [y - 0.3, y + 0.3], color="#222222", lw=1.4, zorder=2)
            ax.set_yticks(range(len(regimes)))
            ax.set_yticklabels([regime_label(r) for r in reversed(regimes)] if n % cols == 0 else [])
            ax.set_ylim(-0.6, len(regimes) - 0.4)
            title, higher = known.get(m, (m, None))
            arrow = "" if higher is None else (" (\u2191 better)" if higher else " (\u2193 better)")
            ax.set_title(f"{title}{arrow}", fontsize=9)
            ax.grid(True, axis="x")
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.margins(x=0.12)
        fig.subplots_adjust(wspace=0.12, hspace=0.45)
        return save_figure(fig, out_stem)


__all__ = [
    "confusion_percent", "metrics_by_entropy_bin",
    "plot_confusion_matrices", "plot_entropy_hexbin", "plot_metrics_by_entropy_bin", "plot_reliability",
    "plot_reliability_grid", "plot_seed_dots", "plot_vote_entropy_bars", "plot_voting_confusion",
    "reliability_data", "vote_entropy_shares", "voting_confusion_percent",
]
