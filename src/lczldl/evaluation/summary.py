"""Owns the summary tables over runs (summary.csv, summary.md, paired.csv): mean ± std and a 95 %
interval per regime x method (over seeds: Student t; the ensemble: its image bootstrap) and paired
differences with one-hot with bootstrap intervals over seeds. Pure aggregation, then the writers;
names, order and number format come from :mod:`lczldl.evaluation.registry`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.evaluation.intervals import SEED_N_BOOT, bootstrap_ci, seed_interval
from lczldl.evaluation.registry import (
    CONFORMAL,
    CONFORMAL_VOTES,
    ENSEMBLE,
    METHODS,
    PAPER,
    PER_SEED_METHODS,
    SELECTIVE,
    SIGNAL,
    fmt_interval,
    fmt_mean_std,
    fmt_signed,
    keys,
    metric,
    order_metrics,
    significant,
)
from lczldl.fileio import atomic_write_text
from lczldl.regimes import order_regimes

#: Bootstrap resamples of the paired-difference intervals (:func:`~lczldl.evaluation.intervals.bootstrap_ci`).
N_BOOT = SEED_N_BOOT
#: Regime the paired differences are taken against.
BASELINE = "onehot"
#: Columns of paired.csv.
PAIRED_COLUMNS = ("regime", "baseline", "method", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high")

# ---------------------------------------------------------------- aggregation (pure)


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    """Registered metric keys in registry order, then any other numeric keys as found."""
    seen: list[str] = []
    for r in records:
        for k in r["metrics"]:
            if k not in seen:
                seen.append(k)
    return order_metrics(seen)


def aggregate_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per regime x method: regime, method, n_runs, then per metric <metric>_mean,
    <metric>_std, <metric>_lo, <metric>_hi.

    records: {regime, method, seed, metrics: {name: float}} (ensemble records may carry n_runs and
    ``intervals`` {name: (lo, hi)}). Means skip NaN; std is the sample std (ddof=1) over seeds, NaN
    with fewer than 2 values and for the ensemble (one model per regime). lo / hi: the 95 % interval
    of the mean, Student t over seeds (:func:`~lczldl.evaluation.intervals.seed_interval`; NaN with
    fewer than 2 seeds), for the ensemble its percentile bootstrap over test images."""
    names = metric_names(records)
    rows = []
    for regime in order_regimes({r["regime"] for r in records}):
        for method in tuple(METHODS) + tuple(sorted({r["method"] for r in records} - set(METHODS))):
            sel = [r for r in records if r["regime"] == regime and r["method"] == method]
            if not sel:
                continue
            n_runs = sel[0].get("n_runs", len(sel)) if method == ENSEMBLE else len(sel)
            row: dict[str, Any] = {"regime": regime, "method": method, "n_runs": n_runs}
            for k in names:
                a = np.array([float(r["metrics"].get(k, np.nan)) for r in sel], dtype=np.float64)
                a = a[np.isfinite(a)]
                row[f"{k}_mean"] = float(a.mean()) if a.size else float("nan")
                row[f"{k}_std"] = float(a.std(ddof=1)) if a.size > 1 and method != ENSEMBLE else float("nan")
                lo, hi = (sel[0].get("intervals", {}).get(k, (np.nan, np.nan)) if method == ENSEMBLE
                          else seed_interval(a))
                row[f"{k}_lo"], row[f"{k}_hi"] = float(lo), float(hi)
            rows.append(row)
    return rows


def paired_differences(records: list[dict[str, Any]], baseline: str = BASELINE, n_boot: int = N_BOOT,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Per per-seed method (not the ensemble), regime != baseline and metric: differences regime -
    baseline paired by seed: the :data:`PAIRED_COLUMNS` (95 % bootstrap interval over seeds)."""
    names = metric_names(records)
    by: dict[tuple[str, str], dict[Any, dict[str, float]]] = {}
    for r in records:
        if r["method"] in PER_SEED_METHODS:
            by.setdefault((r["regime"], r["method"]), {})[r["seed"]] = r["metrics"]
    rows = []
    for method in PER_SEED_METHODS:
        base = by.get((baseline, method))
        if not base:
            continue
        for regime in order_regimes({k[0] for k in by}):
            other = by.get((regime, method))
            if regime == baseline or not other:
                continue
            seeds = [s for s in other if s in base]
            for k in names:
                d = np.array([float(other[s].get(k, np.nan)) - float(base[s].get(k, np.nan)) for s in seeds])
                fin = d[np.isfinite(d)]
                lo, hi = bootstrap_ci(fin, n_boot=n_boot, seed=seed)
                rows.append({"regime": regime, "baseline": baseline, "method": method, "metric": k,
                             "n_pairs": int(fin.size), "mean_diff": float(fin.mean()) if fin.size else float("nan"),
                             "ci_low": lo, "ci_high": hi})
    return rows


# ---------------------------------------------------------------- writers

def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return str(v)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text (header from the first row; NaN as empty cell)."""
    import csv
    import io

    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(rows[0])
    w.writerow(cols)
    for r in rows:
        w.writerow([_fmt(r.get(c, "")) for c in cols])
    return buf.getvalue()


def to_markdown(table: list[dict[str, Any]], paired: list[dict[str, Any]]) -> str:
    """summary.md: the paper's table (mean ± std over seeds), the extras, paired differences."""
    paper_metrics = keys(PAPER)
    lines = ["# Evaluation summary", "",
             "Mean ± sample std over seeds (ensemble: one model per regime, no std). maa / waa are "
             "macro / weighted *precision* as in the seed; ece / mce / sce with the seed's "
             "right-closed bins (docs/metrics.md). 95 % intervals of every mean are in summary.csv "
             "(<metric>_lo, <metric>_hi: Student t over seeds; ensemble: bootstrap over test images).", ""]
    names = [c[:-5] for c in (table[0] if table else {}) if c.endswith("_mean")]
    beyond = {"Conformal prediction sets (calibrated on validation)": (CONFORMAL,),
              "Sets calibrated on the validation votes; CovGap and SSCV of both kinds": (CONFORMAL_VOTES,),
              "Selective prediction and uncertainty signals": (SELECTIVE, SIGNAL)}

    def group_of(m: str) -> str | None:
        g = metric(m)
        return None if g is None else g.group

    groups = [("Paper metrics", [m for m in paper_metrics if m in names]),
              ("Further metrics", [m for m in names if m not in paper_metrics
                                   and group_of(m) not in (CONFORMAL, CONFORMAL_VOTES, SELECTIVE, SIGNAL)])]
    groups += [(title, [m for m in names if group_of(m) in gs]) for title, gs in beyond.items()]
    for title, cols in groups:
        if not cols:
            continue
        lines += [f"## {title}", "", "| regime | method | n | " + " | ".join(cols) + " |",
                  "|" + "---|" * (3 + len(cols))]
        for r in table:
            lines.append(f"| {r['regime']} | {r['method']} | {r['n_runs']} | "
                         + " | ".join(fmt_mean_std(r[f'{c}_mean'], r[f'{c}_std']) for c in cols) + " |")
        lines.append("")
    if paired:
        lines += ["## Paired differences vs the baseline (same seed), 95 % bootstrap interval over seeds",
                  "", "`*`: interval excludes 0.", "",
                  "| method | regime − baseline | metric | n | mean diff | 95 % CI |", "|---|---|---|---|---|---|"]
        for p in paired:
            if p["metric"] not in paper_metrics:
                continue
            sig = " *" if significant(p["ci_low"], p["ci_high"]) else ""
            lines.append(f"| {p['method']} | {p['regime']} − {p['baseline']} | {p['metric']} | "
                         f"{p['n_pairs']} | {fmt_signed(p['mean_diff'])}{sig} | "
                         f"{fmt_interval(p['ci_low'], p['ci_high'])} |")
        lines += ["", "All metrics: paired.csv.", ""]
    return "\n".join(lines)


def write_summary(out: Path, records: list[dict[str, Any]], baseline: str = BASELINE,
                  n_boot: int = N_BOOT) -> dict[str, Path]:
    """Write OUT/summary.csv, summary.md and paired.csv (atomic) from metric records; returns the
    paths by file name."""
    out = Path(out)
    table = aggregate_table(records)
    paired = paired_differences(records, baseline=baseline, n_boot=n_boot)
    return {
        layout.SUMMARY_CSV: atomic_write_text(out / layout.SUMMARY_CSV, to_csv(table)),
        layout.SUMMARY_MD: atomic_write_text(out / layout.SUMMARY_MD, to_markdown(table, paired)),
        layout.PAIRED_CSV: atomic_write_text(out / layout.PAIRED_CSV,
                                             to_csv(paired) or ",".join(PAIRED_COLUMNS) + "\n"),
    }
