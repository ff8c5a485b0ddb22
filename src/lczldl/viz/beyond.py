"""Owns the "Beyond the paper" figures: metrics per training target with intervals, conformal set size
and coverage against the experts, sets calibrated on the majority label vs on the votes,
risk-coverage curves, the uncertainty-signal comparison and the metrics against the vote budget.

Every function takes arrays (read from the evaluation's saved files by lczldl.viz.beyond_section),
draws with the project style (viz/style.py) and writes ``out_stem``.png/.pdf;
it returns the two paths. Missing values (NaN) are left out of the drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lczldl.distributions import N_ENTROPY_BINS, entropy_bin_labels
from lczldl.evaluation.registry import SIGNALS
from lczldl.regimes import regime_color, regime_label
from lczldl.viz.style import NEUTRAL, entropy_bin_axes, lcz_label, new_figure, save_figure, styled

Array = np.ndarray
#: display names of the metrics and signals drawn here
METRIC_TITLES = {"ce_distr": "CE vs. vote distribution", "ece": "ECE", "oa": "accuracy"}
SIGNAL_LABELS = SIGNALS


def _bin_ticks(counts: np.ndarray | None) -> list[str]:
    """Tick labels of the paper's vote-entropy bins, with each bin's image count when given."""
    ticks = entropy_bin_labels()
    if counts is None:
        return ticks
    return [f"{lab}\nn={int(c):,}" for lab, c in zip(ticks, counts, strict=True)]


def _yerr(mean: Array, lo: Array | None, hi: Array | None) -> Array | None:
    if lo is None or hi is None:
        return None
    m, lo, hi = (np.asarray(a, dtype=np.float64) for a in (mean, lo, hi))
    return np.nan_to_num(np.vstack([m - lo, hi - m]), nan=0.0).clip(min=0.0)


def _clip_axis(ax, lo: float | None, hi: float | None, axis: str = "x") -> None:
    """Keep the axis inside a metric's range [lo, hi]: an interval (e.g. Student t over 2 seeds)
    that reaches beyond it is cut at the edge instead of stretching the panel."""
    get, set_ = (ax.get_xlim, ax.set_xlim) if axis == "x" else (ax.get_ylim, ax.set_ylim)
    a, b = get()
    pad = 0.02 * ((hi if hi is not None else b) - (lo if lo is not None else a))
    set_(a if lo is None else max(a, lo - pad), b if hi is None else min(b, hi + pad))


def _legend_top(fig, ax, ncol: int) -> None:
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, ncol))


def plot_target_comparison(targets: Sequence[str], estimates: Mapping[str, Array], out_stem: Path | str,
                           metrics: Sequence[str] = ("ce_distr", "ece", "oa")) -> list[Path]:
    """Per training target (regime), test metrics with 95 % intervals: one panel per metric.

    ``estimates``: metric -> (T, 3) array of (value, lo, hi) per target, in ``targets`` order
    (lo / hi may be NaN: no bar). Accuracy and ECE are drawn in %; every axis stays inside the
    metric's range (>= 0; <= 100 % for accuracy and ECE)."""
    t = len(targets)
    with styled():
        fig = new_figure(3.0 * len(metrics) + 1.2, 0.42 * t + 1.3)
        y = np.arange(t)[::-1]
        for j, name in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), j + 1)
            est = np.asarray(estimates[name], dtype=np.float64).reshape(t, 3)
            scale = 100.0 if name in ("ece", "oa") else 1.0
            for i, target in enumerate(targets):
                v, lo, hi = est[i] * scale
                ax.errorbar([v], [y[i]], xerr=_yerr(np.array([v]), np.array([lo]), np.array([hi])),
                            fmt="o", ms=5, color=regime_color(target, i), capsize=2.5, elinewidth=1.1)
            ax.set_yticks(y)
            ax.set_yticklabels([regime_label(s) for s in targets] if j == 0 else [])
            ax.set_title(METRIC_TITLES.get(name, name) + (" (%)" if scale == 100.0 else ""))
            ax.grid(True, axis="x")
            ax.set_axisbelow(True)
            ax.set_ylim(-0.6, t - 0.4)
            _clip_axis(ax, 0.0, 100.0 if scale == 100.0 else None)
        fig.subplots_adjust(wspace=0.12)
        return save_figure(fig, out_stem)


def plot_set_size_by_entropy(set_size: Mapping[str, Array], coverage: Mapping[str, Array], out_stem: Path | str,
                             *, level: float = 0.9, plausible_size: Array | None = None,
                             counts: Array | None = None, lo: Mapping[str, Array] | None = None,
                             hi: Mapping[str, Array] | None = None, title: str = "") -> list[Path]:
    """Conformal set size (left) and coverage of the majority label (right) per paper vote-entropy
    bin, one line per regime: do the sets grow where the experts disagree?

    ``set_size`` / ``coverage``: regime -> (6,) per bin; ``plausible_size`` (6,) the experts' mean
    plausible-set size per bin (dashed); ``counts`` (6,) test images per bin (tick labels);
    ``lo`` / ``hi``: regime -> (6,) interval of the set size."""
    regimes = list(set_size)
    x = np.arange(N_ENTROPY_BINS)
    ticks = _bin_ticks(counts)
    with styled():
        fig = new_figure(9.0, 3.5)
        ax_s, ax_c = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for i, reg in enumerate(regimes):
            s = np.asarray(set_size[reg], dtype=np.float64)
            err = _yerr(s, None if lo is None else lo.get(reg), None if hi is None else hi.get(reg))
            ax_s.errorbar(x + (i - (len(regimes) - 1) / 2) * 0.06, s, yerr=err, marker="o", ms=4,
                          color=regime_color(reg, i), label=regime_label(reg), capsize=2, lw=1.4)
            ax_c.plot(x, 100 * np.asarray(coverage[reg], dtype=np.float64), marker="o", ms=4,
                      color=regime_color(reg, i), lw=1.4)
        if plausible_size is not None:
            ax_s.plot(x, plausible_size, ls="--", color="black", lw=1.2, label="experts' plausible set")
        ax_c.axhline(100 * level, ls=":", color=NEUTRAL, lw=1.2, label=f"target coverage {100 * level:g} %")
        for ax, yl in ((ax_s, "mean set size (classes)"), (ax_c, "coverage of majority label (%)")):
            entropy_bin_axes(ax, ticks, yl)
        ax_s.set_ylim(bottom=0)
        ax_s.set_title("Set size")
        ax_c.set_title("Coverage")
        fig.subplots_adjust(wspace=0.25, top=0.78)
        handles, names = ax_s.get_legend_handles_labels()
        extra, extra_names = ax_c.get_legend_handles_labels()
        fig.legend(handles + extra, names + extra_names, loc="upper center", bbox_to_anchor=(0.5, 1.0),
                   ncol=min(len(names) + 1, 4))
        if title:
            fig.suptitle(title, y=1.08)
        return save_figure(fig, out_stem)


def plot_coverage_per_class(coverage: Mapping[str, Array], out_stem: Path | str, *, level: float = 0.9,
                            counts: Array | None = None, title: str = "") -> list[Path]:
    """Coverage of the majority label per true class (grouped bars per regime) with the target level.

    ``coverage``: regime -> (K,) per class (NaN: class absent from test); ``counts`` (K,) test
    images per class (tick labels)."""
    regimes = list(coverage)
    k = len(next(iter(coverage.values())))
    x = np.arange(k)
    w = 0.8 / max(len(regimes), 1)
    with styled():
        fig = new_figure(max(6.0, 0.75 * k + 1.5), 3.6)
        ax = fig.add_subplot(1, 1, 1)
        for i, reg in enumerate(regimes):
            ax.bar(x + (i - (len(regimes) - 1) / 2) * w, 100 * np.asarray(coverage[reg], dtype=np.float64),
                   width=w * 0.92, color=regime_color(reg, i), label=regime_label(reg))
        ax.axhline(100 * level, ls="--", color="black", lw=1.0, label=f"target {100 * level:g} %")
        ticks = [lcz_label(c, with_name=False) for c in range(k)]
        if counts is not None:
            ticks = [f"LCZ {t}\nn={int(n):,}" for t, n in zip(ticks, counts, strict=True)]
        ax.set_xticks(x)
        ax.set_xticklabels(ticks, fontsize=7)
        ax.set_ylabel("coverage of majority label (%)")
        ax.set_ylim(0, 105)
        ax.grid(True, axis="y")
        ax.set_axisbelow(True)
        ax.set_title(title or "Coverage per class")
        fig.subplots_adjust(top=0.8)
        _legend_top(fig, ax, len(regimes) + 1)
        return save_figure(fig, out_stem)


def plot_risk_coverage(curves: Mapping[str, tuple[Array, Array]], out_stem: Path | str, *,
                       aurc: Mapping[str, float] | None = None, title: str = "") -> list[Path]:
    """Risk-coverage curves, one per regime: ``curves`` regime -> (coverage (N,), risk (N,)) from
    selective.risk_coverage_curve; ``aurc`` values go into the legend. Risk drawn in %."""
    with styled():
        fig = new_figure(5.0, 3.8)
        ax = fig.add_subplot(1, 1, 1)
        for i, (reg, (cov, risk)) in enumerate(curves.items()):
            name = regime_label(reg)
            if aurc is not None and reg in aurc:
                name += f" (AURC {100 * aurc[reg]:.2f} %)"
            ax.plot(100 * np.asarray(cov), 100 * np.asarray(risk), color=regime_color(reg, i), lw=1.4, label=name)
        ax.set_xlabel("coverage (%)")
        ax.set_ylabel("risk = error rate of kept images (%)")
        ax.set_xlim(0, 100)
        ax.set_ylim(bottom=0)
        ax.grid(True)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left")
        ax.set_title(title or "Selective prediction")
        return save_figure(fig, out_stem)


def plot_uncertainty_signals(auroc: Mapping[str, Mapping[str, float]], spearman: Mapping[str, Mapping[str, float]],
                             out_stem: Path | str, *, auroc_ci: Mapping[str, Mapping[str, tuple[float, float]]] | None = None
                             ) -> list[Path]:
    """Which uncertainty signal to trust: AUROC for detecting errors (left) and Spearman correlation
    with the vote entropy (right; left out when no value is finite: a store without votes), per
    signal (rows) and regime (markers).

    ``auroc`` / ``spearman``: regime -> signal -> value (a missing signal is not drawn);
    ``auroc_ci``: regime -> signal -> (lo, hi)."""
    regimes = list(auroc)
    signals = [s for s in SIGNAL_LABELS if any(s in auroc[r] for r in regimes)]
    signals += sorted({s for r in regimes for s in auroc[r]} - set(signals))
    y = np.arange(len(signals))[::-1]
    with_rho = any(np.isfinite(v) for r in spearman.values() for v in r.values() if v is not None)
    with styled():                                   # no votes (So2Sat): no Spearman panel
        fig = new_figure(8.6 if with_rho else 4.8, 0.55 * len(signals) + 1.6)
        axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)] if with_rho else [fig.add_subplot(1, 1, 1)]
        off = (np.arange(len(regimes)) - (len(regimes) - 1) / 2) * 0.12
        for i, reg in enumerate(regimes):
            for ax, table in zip(axes, (auroc, spearman), strict=False):
                vals = np.array([table[reg].get(s, np.nan) for s in signals], dtype=np.float64)
                err = None
                if ax is axes[0] and auroc_ci is not None and reg in auroc_ci:
                    ci = np.array([auroc_ci[reg].get(s, (np.nan, np.nan)) for s in signals], dtype=np.float64)
                    err = _yerr(vals, ci[:, 0], ci[:, 1])
                ax.errorbar(vals, y + off[i], xerr=err, fmt="o", ms=5, color=regime_color(reg, i),
                            capsize=2, elinewidth=1.0, label=regime_label(reg))
        axes[0].axvline(0.5, ls=":", color=NEUTRAL, lw=1.0)
        _clip_axis(axes[0], 0.0, 1.0)
        if with_rho:
            axes[1].axvline(0.0, ls=":", color=NEUTRAL, lw=1.0)
            _clip_axis(axes[1], -1.0, 1.0)
        for ax, title in zip(axes, ("AUROC for detecting errors", "Spearman with vote entropy"), strict=False):
            ax.set_yticks(y)
            ax.set_title(title)
            ax.grid(True, axis="x")
            ax.set_axisbelow(True)
            ax.set_ylim(-0.6, len(signals) - 0.4)
        axes[0].set_yticklabels([SIGNAL_LABELS.get(s, s) for s in signals])
        if with_rho:
            axes[1].set_yticklabels([])
        fig.subplots_adjust(wspace=0.08, top=1 - 0.6 / (0.55 * len(signals) + 1.6))
        _legend_top(fig, axes[0], len(regimes))
        return save_figure(fig, out_stem)


def plot_vote_sets(standard: Mapping[str, Mapping[str, Array]], voted: Mapping[str, Mapping[str, Array]],
                   out_stem: Path | str, *, level: float = 0.9, counts: Array | None = None) -> list[Path]:
    """Sets calibrated on the majority label (dashed) vs on labels drawn from the votes (solid), per
    paper vote-entropy bin, one colour per regime: vote coverage (left, with the target level) and
    mean set size (right).

    ``standard`` / ``voted``: regime -> {"vote_coverage": (6,), "set_size": (6,)}; ``counts`` (6,)
    test images per bin (tick labels)."""
    x = np.arange(N_ENTROPY_BINS)
    ticks = _bin_ticks(counts)
    with styled():
        fig = new_figure(9.0, 3.5)
        ax_c, ax_s = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for i, reg in enumerate(dict.fromkeys([*voted, *standard])):
            color = regime_color(reg, i)
            for sets, ls in ((voted, "-"), (standard, "--")):
                if reg not in sets:
                    continue
                ax_c.plot(x, 100 * np.asarray(sets[reg]["vote_coverage"], dtype=np.float64), marker="o", ms=3.5,
                          ls=ls, color=color, lw=1.3, label=regime_label(reg) if ls == "-" else None)
                ax_s.plot(x, np.asarray(sets[reg]["set_size"], dtype=np.float64), marker="o", ms=3.5, ls=ls,
                          color=color, lw=1.3)
        ax_c.plot([], [], ls="-", color="black", lw=1.3, label="calibrated on the votes")
        ax_c.plot([], [], ls="--", color="black", lw=1.3, label="on the majority label")
        ax_c.axhline(100 * level, ls=":", color=NEUTRAL, lw=1.2, label=f"target {100 * level:g} % of the votes")
        entropy_bin_axes(ax_c, ticks, "vote coverage (%)")
        entropy_bin_axes(ax_s, ticks, "mean set size (classes)")
        ax_s.set_ylim(bottom=0)
        ax_c.set_title("Share of the experts' votes inside the set")
        ax_s.set_title("Set size")
        fig.subplots_adjust(wspace=0.25, top=0.78)
        _legend_top(fig, ax_c, 3)
        return save_figure(fig, out_stem)


def plot_vote_budget(ks: Sequence[str], estimates: Mapping[str, Mapping[str, Array]], out_stem: Path | str, *,
                     titles: Mapping[str, str] | None = None, reference: str | None = "onehot",
                     percent: Sequence[str] = ()) -> list[Path]:
    """Test metrics against the vote budget k (votes per image the training side saw), one panel per
    metric, one line per regime with its 95 % interval; ``reference`` (one-hot on the k-vote
    majority) drawn as a grey dashed line.

    ``ks``: the budgets in x order ("1", "3", ..., "all"); ``estimates``: metric -> regime -> (len(ks),
    3) (mean, lo, hi), NaN where missing; ``percent``: metrics drawn in %."""
    metrics = list(estimates)
    x = np.arange(len(ks))
    with styled():
        fig = new_figure(2.9 * len(metrics) + 0.6, 3.3)
        for j, name in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), j + 1)
            regimes = list(estimates[name])
            off = (np.arange(len(regimes)) - (len(regimes) - 1) / 2) * 0.06
            scale = 100.0 if name in percent else 1.0
            for i, reg in enumerate(regimes):
                est = np.asarray(estimates[name][reg], dtype=np.float64).reshape(len(ks), 3) * scale
                ref = reg == reference
                ax.errorbar(x + off[i], est[:, 0], yerr=_yerr(est[:, 0], est[:, 1], est[:, 2]), marker="o", ms=4,
                            ls="--" if ref else "-", color=NEUTRAL if ref else regime_color(reg, i), capsize=2,
                            lw=1.2, label=regime_label(reg) + (" (reference)" if ref else ""))
            ax.set_xticks(x)
            ax.set_xticklabels(list(ks))
            ax.set_xlabel("votes per image (k)")
            ax.set_title((titles or {}).get(name, METRIC_TITLES.get(name, name)) + (" (%)" if scale == 100.0 else ""))
            ax.grid(True, axis="y")
            ax.set_axisbelow(True)
            _clip_axis(ax, 0.0, 100.0 if scale == 100.0 else None, axis="y")
        fig.subplots_adjust(wspace=0.32, top=0.78)
        _legend_top(fig, ax, len(regimes))
        return save_figure(fig, out_stem)
