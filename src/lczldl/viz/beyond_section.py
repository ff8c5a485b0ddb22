"""Owns the report's "Beyond the paper" section: which saved file feeds which of its figures
(summary.csv with its intervals, the runs' and ensembles' ``beyond_<method>.json``, the vote-budget
table budget.csv), its tables (conformal sets, sets calibrated on the votes and how evenly both keep
their level, selective prediction, uncertainty signals, the vote budget), the label-aggregation
notes from the store's manifest, and the one-line captions. Reads through :mod:`lczldl.viz.reader`, draws with
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
    CONDITIONAL_STATS,
    CONFORMAL_STATS,
    ENSEMBLE,
    METRICS,
    SCORE_LABELS,
    SELECTIVE,
    SIGNAL_SPEARMAN,
    SIGNALS,
    conformal_key,
    fmt_mean_interval,
    keys,
    metric,
    vote_conformal_key,
    vote_set_name,
)
from lczldl.regimes import regime_label
from lczldl.viz import beyond as B
from lczldl.viz.reader import NAN_STAT, Study, budget_rows, summary_rows
from lczldl.viz.render import Document
from lczldl.viz.tables import results_table, sort_rows

#: Figure file stems (STUDY/figures/STEM.png|pdf).
TARGETS, SET_SIZE, COVERAGE, RISK, SIGNAL_FIG = (
    "beyond_targets", "beyond_set_size_by_entropy", "beyond_coverage_per_class", "beyond_risk_coverage",
    "beyond_uncertainty_signals")
VOTE_SETS, VOTE_BUDGET = "beyond_vote_sets", "beyond_vote_budget"
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
    (VOTE_SETS, "{score} sets at {level} % (plain models) calibrated on the majority label (dashed) or on labels "
                "drawn from the validation votes (solid; Monte Carlo conformal, m = {vote_m}, {vote_variant}): "
                "share of the test images' votes inside the set and set size per vote-entropy bin, mean over "
                "seeds; dotted: the target level."),
    (RISK, "Risk-coverage curves (plain models, error rate of the most confident images kept, mean over "
           "seeds); legend: AURC."),
    (SIGNAL_FIG, "Uncertainty signals: AUROC for detecting errors and Spearman correlation with the vote "
                 "entropy; max p and entropy of the plain models, mutual information of MC dropout "
                 "(bars: Student t over seeds, cut at [0, 1]), disagreement of the ensemble (bars: "
                 "bootstrap over test images)."),
    (VOTE_BUDGET, "Plain models trained on k votes per image (test always judged against every vote): CE vs "
                  "the vote distribution, ECE, vote coverage of the {budget_set} sets and accuracy, mean "
                  "over seeds with 95 % Student t intervals; grey dashed: one-hot on the k-vote majority."),
)
#: the budget figure's metrics drawn in %
_PERCENT = ("ece", "oa")
#: the headline numbers of the vote-calibrated sets in the report's table, and short names
VOTED_STATS = ("vote_coverage", "coverage", "set_size")
CONDITIONAL_SHORT = {"covgap_label": "CovGap label", "covgap_votes": "CovGap votes", "sscv_label": "SSCV label",
                     "sscv_votes": "SSCV votes"}


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


def vote_set_figure_data(st: Study, level: float) -> dict[str, Any]:
    """The vote-set figure's inputs, means over seeds of the plain runs' beyond files: per regime
    {"vote_coverage", "set_size"} per vote-entropy bin of the FIGURE_SCORE sets at ``level``
    calibrated on the majority label ("standard") and on the votes ("voted"); "counts" (test images
    per bin) and "settings" (m, variant of the first run's vote-calibrated sets)."""
    name, vname = set_name(FIGURE_SCORE, level), vote_set_name(FIGURE_SCORE, level)
    out: dict[str, Any] = {"standard": {}, "voted": {}}
    for reg, objs in st.beyond(FIGURE_METHOD).items():
        details = [o.get("detail") or {} for o in objs]
        for kind, group, key in (("standard", "sets", name), ("voted", "vote_sets", vname)):
            sets = [d[group][key] for d in details if key in d.get(group, {})]
            if sets:
                out[kind][reg] = {stat: _mean([[s.get(f"{stat}_ebin{b}") for b in range(N_ENTROPY_BINS)] for s in sets])
                                  for stat in ("vote_coverage", "set_size")}
                if kind == "voted":
                    out.setdefault("settings", {"m": sets[0].get("m"), "variant": sets[0].get("variant")})
                    out.setdefault("counts", details[0].get("counts", {}))
    return out


def budget_figure_data(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """(budgets k in the table's order, metric -> regime -> (len(ks), 3) mean, lo, hi) from budget.csv rows."""
    ks = list(dict.fromkeys(r["k"] for r in rows))
    metrics = [k for k, v in (rows[0].items() if rows else []) if hasattr(v, "mean")]
    est: dict[str, dict[str, np.ndarray]] = {m: {} for m in metrics}
    for m in metrics:
        for reg in dict.fromkeys(r["regime"] for r in rows):
            a = np.full((len(ks), 3), np.nan)
            for r in rows:
                if r["regime"] == reg and m in r:
                    a[ks.index(r["k"])] = (r[m].mean, r[m].lo, r[m].hi)
            est[m][reg] = a
    return ks, est


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
    vdata = vote_set_figure_data(st, level) if level is not None else {}
    if vdata.get("voted"):
        written += B.plot_vote_sets(vdata["standard"], vdata["voted"], fig_dir / VOTE_SETS, level=level,
                                    counts=(vdata.get("counts") or {}).get("ebin"))
    brows = budget_rows(st)
    if brows:
        ks, est = budget_figure_data(brows)
        titles = {m: ("vote coverage" if m.endswith("_vote_coverage") else B.METRIC_TITLES.get(m, m)) for m in est}
        written += B.plot_vote_budget(ks, est, fig_dir / VOTE_BUDGET, titles=titles,
                                      percent=[m for m in est if m in _PERCENT or m.endswith("_vote_coverage")])
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


def _budget_table(d: Document, rows: list[dict[str, Any]]) -> None:
    """The vote-budget table from budget.csv rows: k, regime, runs, training images kept (and how
    many had fewer than k votes), then each metric as mean [95 % interval]."""
    if not rows:
        return
    metrics = [k for k, v in rows[0].items() if hasattr(v, "mean")]
    header = (["k", "regime", "n", "train images kept", "of them < k votes", "train images left out"]
              + [(metric(m).label if metric(m) else m) for m in metrics])
    cells = [[str(r["k"]), regime_label(r["regime"]), str(r.get("n", "")), f"{r.get('train_kept', 0):,}",
              f"{r.get('train_short_rows', 0):,}",
              f"{r.get('train_no_urban_rows', 0):,} no urban vote, {r.get('train_non_urban_majority', 0):,} "
              "non-urban majority"]
             + [fmt_mean_interval(r[m].mean, r[m].lo, r[m].hi) for m in metrics] for r in rows]
    first = next((r for r in rows if r.get("mode")), {})
    d.heading("How many votes per image does training need? (vote budget)", 3)
    d.para(f"Plain models trained on k votes per image ({first.get('mode', '?')} draw, seed {first.get('seed', '?')}: "
           "the same votes for every regime and seed); validation built from the same k votes, test judged "
           "against every vote. Images whose k votes have no urban majority are left out of training and "
           "validation; mean [95 % Student t interval over seeds]. Source: "
           f"{layout.BUDGET_DIR}/{layout.BUDGET_CSV}.")
    d.table(header, cells, text_cols=6)


def beyond_section(d: Document, st: Study, intervals: bool = False) -> None:
    """The "Beyond the paper" section: aggregation notes, the tables (conformal sets, sets calibrated
    on the votes, CovGap / SSCV, selective prediction, signals, the vote budget), the figures."""
    d.heading("Beyond the paper")
    d.para("Which soft target, which uncertainty signal, do conformal prediction sets match the experts, and "
           "how many votes per image does training need? Definitions: docs/metrics.md. Conformal sets are "
           "calibrated on the validation split of the same method (on its majority labels, or on labels drawn "
           "from its votes) and judged on test against the majority label and the individual votes.")
    _aggregation_notes(d, st)
    rows = [r for r in summary_rows(st) if r["regime"] in st.regimes or not st.regimes]
    levels = conformal_levels(st)
    short = {"coverage": "coverage", "set_size": "size", "vote_coverage": "vote cov.",
             "plausible_jaccard": "Jaccard"}
    for lv in levels:
        cols = [conformal_key(sc, lv, stat) for sc in SCORE_LABELS for stat in CONFORMAL_STATS]
        header = [f"{SCORE_LABELS[sc]} {short[stat]}" for sc in SCORE_LABELS for stat in CONFORMAL_STATS]
        _table(d, rows, f"Conformal prediction sets at {100 * lv:g} %", cols, header, intervals)
    for lv in levels:
        cols = [vote_conformal_key(sc, lv, stat) for sc in SCORE_LABELS for stat in VOTED_STATS]
        header = [f"{SCORE_LABELS[sc]} {short[stat]}" for sc in SCORE_LABELS for stat in VOTED_STATS]
        _table(d, rows, f"Sets calibrated on the experts' votes at {100 * lv:g} % (Monte Carlo conformal)",
               cols, header, intervals)
    if levels:
        lv, sc = levels[0], FIGURE_SCORE
        cols = ([conformal_key(sc, lv, stat) for stat in CONDITIONAL_STATS]
                + [vote_conformal_key(sc, lv, stat) for stat in CONDITIONAL_STATS])
        header = ([f"{CONDITIONAL_SHORT[stat]}, majority-cal." for stat in CONDITIONAL_STATS]
                  + [f"{CONDITIONAL_SHORT[stat]}, vote-cal." for stat in CONDITIONAL_STATS])
        _table(d, rows, f"How evenly the {SCORE_LABELS[sc]} sets at {100 * lv:g} % keep their level (CovGap, SSCV)",
               cols, header, intervals)
    sel = list(keys(SELECTIVE))
    _table(d, rows, "Selective prediction", sel, [METRICS[k].label for k in sel], intervals)
    cols = [f"auroc_{s}" for s in SIGNALS] + [SIGNAL_SPEARMAN[s] for s in SIGNALS]
    header = [f"AUROC {SIGNALS[s]}" for s in SIGNALS] + [f"Spearman {SIGNALS[s]}" for s in SIGNALS]
    _table(d, rows, "Uncertainty signals (AUROC for errors; Spearman with the vote entropy)", cols, header, intervals)
    brows = budget_rows(st)
    _budget_table(d, brows)
    fig_dir = st.path / layout.FIGURES_DIR
    level = levels[0] if levels else None
    settings = (vote_set_figure_data(st, level).get("settings") if level is not None else None) or {}
    vote_cov = [m for m in (brows[0] if brows else {}) if m.endswith("_vote_coverage")]
    fmt = {"level": f"{100 * level:g}" if level is not None else "?", "score": SCORE_LABELS[FIGURE_SCORE],
           "vote_m": settings.get("m", "?"), "vote_variant": settings.get("variant", "?"),
           "budget_set": (metric(vote_cov[0]).label.split(":")[0] if vote_cov and metric(vote_cov[0]) else "?")}
    shown = [(stem, cap) for stem, cap in FIGURES if (fig_dir / f"{stem}.png").is_file()]
    for stem, caption in shown:
        d.figure(fig_dir / f"{stem}.png", f"{layout.FIGURES_DIR}/{stem}.png", caption.format(**fmt))
    if not shown and not rows:
        d.para("No beyond-the-paper results yet (they are written by the calibrate and aggregate steps).", "warn")


__all__ = ["FIGURES", "beyond_section", "draw_beyond"]
