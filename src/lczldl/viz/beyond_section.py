"""Owns the report's "Beyond the paper" section: which saved file feeds which of its five figures
(summary.csv with its intervals, the runs' and ensembles' ``beyond_<method>.json``), its tables
(conformal sets, selective prediction, uncertainty signals), the label-aggregation notes from the
store's manifest, and the one-line captions. Reads through :mod:`lczldl.viz.reader`, draws with
:mod:`lczldl.viz.beyond`; nothing is recomputed (means over seeds of saved numbers only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.constants import N_URBAN
from lczldl.distributions import N_ENTROPY_BINS
from lczldl.evaluation.conformal import set_name
from lczldl.evaluation.registry import (
    CONFORMAL_STATS,
    ENSEMBLE,
    METRICS,
    SCORE_LABELS,
    SELECTIVE,
    SIGNAL_SPEARMAN,
    SIGNALS,
    conformal_key,
    keys,
)
from lczldl.viz import beyond as B
from lczldl.viz.reader import NAN_STAT, Study, summary_rows
from lczldl.viz.render import Document
from lczldl.viz.tables import results_table, sort_rows

#: Figure file stems (STUDY/figures/STEM.png|pdf).
TARGETS, SET_SIZE, COVERAGE, RISK, SIGNAL_FIG = (
    "beyond_targets", "beyond_set_size_by_entropy", "beyond_coverage_per_class", "beyond_risk_coverage",
    "beyond_uncertainty_signals")
#: the conformal sets the figures show (the tables show every score and level)
FIGURE_SCORE, FIGURE_METHOD = "aps", "plain"
#: test metrics compared per training target
TARGET_METRICS = ("ce_distr", "ece", "oa")
#: the prediction each signal is judged on: max p and entropy of the plain model, mutual information
#: of MC dropout, disagreement of the ensemble
SIGNAL_METHOD = {"max_prob": "plain", "entropy": "plain", "mutual_info": "mc_dropout", "disagreement": ENSEMBLE}
#: Figures in report order with their one-line captions ({level}, {score}: the sets shown).
FIGURES: tuple[tuple[str, str], ...] = (
    (TARGETS, "Test CE vs the vote distribution, ECE and accuracy per training target (plain models, "
              "mean over seeds; bars: 95 % Student t interval over seeds, very wide with 2 seeds, cut at "
              "the metric's range)."),
    (SET_SIZE, "{score} conformal sets at {level} % (plain models, calibrated on validation): mean set size "
               "and coverage of the majority label per vote-entropy bin, mean over seeds; dashed: the "
               "experts' plausible set (classes with >= 15 % of the votes)."),
    (COVERAGE, "Coverage of the majority label per class by the {score} sets at {level} % (plain models, "
               "mean over seeds); dashed: the target level."),
    (RISK, "Risk-coverage curves (plain models, error rate of the most confident images kept, mean over "
           "seeds); legend: AURC."),
    (SIGNAL_FIG, "Uncertainty signals: AUROC for detecting errors and Spearman correlation with the vote "
                 "entropy; max p and entropy of the plain models, mutual information of MC dropout "
                 "(bars: Student t over seeds, cut at [0, 1]), disagreement of the ensemble (bars: "
                 "bootstrap over test images)."),
)


def _mean(values: list[Any]) -> np.ndarray:
    """Mean over seeds of equal-length lists (None / NaN skipped; NaN where no seed has a value)."""
    a = np.array([[np.nan if x is None else x for x in v] for v in values], dtype=np.float64)
    fin = np.isfinite(a)
    return np.where(fin.any(axis=0), np.where(fin, a, 0.0).sum(axis=0) / np.maximum(fin.sum(axis=0), 1), np.nan)


def conformal_levels(st: Study) -> list[float]:
    """The conformal levels the plain runs' beyond files hold, ascending."""
    return sorted({float(lv) for objs in st.beyond(FIGURE_METHOD).values() for o in objs
                   for lv in (o.get("meta") or {}).get("levels") or []})


def figure_level(st: Study) -> float | None:
    """The lowest conformal level of :func:`conformal_levels` (the one the figures show)."""
    levels = conformal_levels(st)
    return levels[0] if levels else None


def set_figure_data(st: Study, level: float) -> dict[str, Any]:
    """Per regime, mean over seeds of the figure's sets (FIGURE_SCORE at ``level``, plain):
    set_size / coverage per vote-entropy bin, coverage per class; the experts' plausible-set size per
    bin and the image counts of the first run."""
    name = set_name(FIGURE_SCORE, level)
    out: dict[str, Any] = {"set_size": {}, "coverage": {}, "coverage_cls": {}}
    for reg, objs in st.beyond(FIGURE_METHOD).items():
        sets = [o["detail"]["sets"][name] for o in objs if name in (o.get("detail") or {}).get("sets", {})]
        if not sets:
            continue
        counts = objs[0]["detail"].get("counts", {})
        k = len(counts.get("class") or []) or N_URBAN
        if "set_size_ebin0" in sets[0]:                  # per vote-entropy bin: a store with votes only
            out["set_size"][reg] = _mean([[s.get(f"set_size_ebin{b}") for b in range(N_ENTROPY_BINS)] for s in sets])
            out["coverage"][reg] = _mean([[s.get(f"coverage_ebin{b}") for b in range(N_ENTROPY_BINS)] for s in sets])
            out.setdefault("plausible", _mean([[s.get(f"plausible_size_ebin{b}") for b in range(N_ENTROPY_BINS)]
                                               for s in sets]))
        out["coverage_cls"][reg] = _mean([[s.get(f"coverage_cls{c}") for c in range(k)] for s in sets])
        out.setdefault("counts", counts)
    return out


def risk_curves(st: Study) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """regime -> (coverage, risk): the plain runs' saved curves, risk averaged over seeds."""
    out = {}
    for reg, objs in st.beyond(FIGURE_METHOD).items():
        curves = [o["detail"]["risk_coverage"] for o in objs if "risk_coverage" in (o.get("detail") or {})]
        if curves and all(len(c["coverage"]) == len(curves[0]["coverage"]) for c in curves):
            out[reg] = (np.asarray(curves[0]["coverage"]), _mean([c["risk"] for c in curves]))
    return out


def _row(rows: list[dict[str, Any]], regime: str, method: str) -> dict[str, Any]:
    return next((r for r in rows if r["regime"] == regime and r["method"] == method), {})


def signal_data(st: Study, rows: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    """(auroc, spearman, auroc interval): regime -> signal -> value, each signal from the summary row
    of the method it belongs to (:data:`SIGNAL_METHOD`)."""
    auroc: dict[str, dict[str, float]] = {}
    rho: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, tuple[float, float]]] = {}
    for reg in st.regimes:
        for sig, method in SIGNAL_METHOD.items():
            a = _row(rows, reg, method).get(f"auroc_{sig}", NAN_STAT)
            if np.isfinite(a.mean):
                auroc.setdefault(reg, {})[sig] = a.mean
                ci.setdefault(reg, {})[sig] = (a.lo, a.hi)
                rho.setdefault(reg, {})[sig] = _row(rows, reg, method).get(SIGNAL_SPEARMAN[sig], NAN_STAT).mean
    return auroc, rho, ci


def draw_beyond(st: Study, fig_dir: Path) -> list[Path]:
    """Draw the section's figures whose inputs exist; returns the written paths."""
    rows = summary_rows(st)
    written: list[Path] = []
    plain = [r for r in rows if r["method"] == FIGURE_METHOD and r["regime"] in st.regimes]
    if plain and all(m in plain[0] for m in TARGET_METRICS):
        est = {m: np.array([[r[m].mean, r[m].lo, r[m].hi] for r in plain]) for m in TARGET_METRICS}
        written += B.plot_target_comparison([r["regime"] for r in plain], est, fig_dir / TARGETS)
    level = figure_level(st)
    data = set_figure_data(st, level) if level is not None else {}
    counts = data.get("counts") or {}
    if data.get("set_size"):
        written += B.plot_set_size_by_entropy(data["set_size"], data["coverage"], fig_dir / SET_SIZE, level=level,
                                              plausible_size=data.get("plausible"), counts=counts.get("ebin"))
    if data.get("coverage_cls"):
        written += B.plot_coverage_per_class(data["coverage_cls"], fig_dir / COVERAGE, level=level,
                                             counts=counts.get("class"))
    curves = risk_curves(st)
    if curves:
        aurc = {reg: _row(rows, reg, FIGURE_METHOD).get("aurc", NAN_STAT).mean for reg in curves}
        written += B.plot_risk_coverage(curves, fig_dir / RISK, aurc={k: v for k, v in aurc.items() if np.isfinite(v)})
    auroc, rho, ci = signal_data(st, rows)
    if auroc:
        written += B.plot_uncertainty_signals(auroc, rho, fig_dir / SIGNAL_FIG, auroc_ci=ci)
    return written


def _aggregation_notes(d: Document, st: Study) -> None:
    """The store's label aggregation: Dawid-Skene's winning start and rival, the crowd-kit targets."""
    m = st.manifest or {}
    ds, agg = m.get("dawid_skene") or {}, m.get("aggregation") or {}
    lines = []
    if ds.get("start"):
        lines.append(f"Dawid-Skene target: best of {len(ds.get('starts') or [])} EM starts (start "
                     f"'{ds['start']}', log-likelihood {ds.get('log_likelihood', float('nan')):,.2f} nats).")
    rival = ds.get("rival")
    if rival:
        d.para(f"Dawid-Skene is not identified on these votes: a rival optimum (start '{rival.get('start')}', "
               f"{rival.get('log_likelihood_gap', float('nan')):.2f} nats lower) assigns "
               f"{rival.get('rows_changed')} rows differently: {rival.get('summary')}. The dawid_skene "
               "target's labels for these classes are arbitrary.", "warn")
    for method, info in agg.items():
        lines.append(f"crowd-kit {method} target (agg_{method}): {info.get('iterations')} iterations, converged "
                     f"{info.get('converged')}, {info.get('seconds')} s (crowd-kit {info.get('crowdkit')}).")
    if lines:
        d.items(lines)


def _table(d: Document, rows: list[dict[str, Any]], title: str, cols: list[str], header: list[str],
           intervals: bool) -> None:
    cols_present = [c for c in cols if any(np.isfinite(r.get(c, NAN_STAT).mean) for r in rows)]
    if not cols_present:
        return
    sel = [r for r in sort_rows(rows) if any(np.isfinite(r.get(c, NAN_STAT).mean) for c in cols_present)]
    d.heading(title, 3)
    d.table(*results_table(sel, cols_present, [header[cols.index(c)] for c in cols_present], intervals),
            text_cols=2)


def beyond_section(d: Document, st: Study, intervals: bool = False) -> None:
    """The "Beyond the paper" section: aggregation notes, the three tables, the five figures."""
    d.heading("Beyond the paper")
    d.para("Which soft target, which uncertainty signal, and do conformal prediction sets match the experts? "
           "Definitions: docs/metrics.md. Conformal sets are calibrated on the validation split of the same "
           "method and judged on test against the majority label and the individual votes.")
    _aggregation_notes(d, st)
    rows = [r for r in summary_rows(st) if r["regime"] in st.regimes or not st.regimes]
    levels = conformal_levels(st)
    short = {"coverage": "coverage", "set_size": "size", "vote_coverage": "vote cov.",
             "plausible_jaccard": "Jaccard"}
    for lv in levels:
        cols = [conformal_key(sc, lv, stat) for sc in SCORE_LABELS for stat in CONFORMAL_STATS]
        header = [f"{SCORE_LABELS[sc]} {short[stat]}" for sc in SCORE_LABELS for stat in CONFORMAL_STATS]
        _table(d, rows, f"Conformal prediction sets at {100 * lv:g} %", cols, header, intervals)
    sel = list(keys(SELECTIVE))
    _table(d, rows, "Selective prediction", sel, [METRICS[k].label for k in sel], intervals)
    cols = [f"auroc_{s}" for s in SIGNALS] + [SIGNAL_SPEARMAN[s] for s in SIGNALS]
    header = [f"AUROC {SIGNALS[s]}" for s in SIGNALS] + [f"Spearman {SIGNALS[s]}" for s in SIGNALS]
    _table(d, rows, "Uncertainty signals (AUROC for errors; Spearman with the vote entropy)", cols, header, intervals)
    fig_dir = st.path / layout.FIGURES_DIR
    level = levels[0] if levels else None
    fmt = {"level": f"{100 * level:g}" if level is not None else "?", "score": SCORE_LABELS[FIGURE_SCORE]}
    shown = [(stem, cap) for stem, cap in FIGURES if (fig_dir / f"{stem}.png").is_file()]
    for stem, caption in shown:
        d.figure(fig_dir / f"{stem}.png", f"{layout.FIGURES_DIR}/{stem}.png", caption.format(**fmt))
    if not shown and not rows:
        d.para("No beyond-the-paper results yet (they are written by the calibrate and aggregate steps).", "warn")


__all__ = ["FIGURES", "beyond_section", "draw_beyond"]
