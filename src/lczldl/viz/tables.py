"""Owns the report's tables as (header, cells, marked cells): the result tables from summary.csv rows
(:func:`results_table`, grouped by :data:`RESULT_GROUPS`), the paired comparisons from paired.csv
rows (:func:`paired_table`) and the prepared store's tables (:func:`data_tables`). Used by
:mod:`lczldl.viz.report` and :mod:`lczldl.viz.beyond_section`; numbers are formatted, never
recomputed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lczldl.constants import LCZ_CODES, LCZ_NAMES, N_URBAN
from lczldl.distributions import entropy_bin_labels
from lczldl.evaluation.registry import (
    ENSEMBLE,
    ENTROPY_BIN,
    EXTRA,
    METHODS,
    OTHER,
    PAPER,
    fmt_interval,
    fmt_mean_interval,
    fmt_mean_std,
    fmt_signed,
    higher_is_better,
    keys,
    method_label,
    metric,
    significant,
)
from lczldl.regimes import order_regimes, regime_label
from lczldl.viz.reader import NAN_STAT

#: (header, cells, the (row, col) cells to mark)
Table = tuple[list[str], list[list[str]], set]


#: marks the ensemble's rows where intervals are shown: its interval is a bootstrap over test images
#: (one model per regime), so it reflects test sampling only, not training variability
TEST_SAMPLING_MARK = "†"


def results_table(rows: list[dict[str, Any]], metrics: list[str], header: list[str] | None = None,
                  intervals: bool = False) -> Table:
    """Header, cells (mean ± std, or with ``intervals`` mean [lo, hi] from summary.csv) and the
    (row, col) cells holding the best mean of their column (direction from the metric registry;
    descriptive metrics are not ranked)."""
    head = ["regime", "method", "n"] + (header or metrics)

    def cell(v: Any) -> str:
        return fmt_mean_interval(v.mean, v.lo, v.hi) if intervals else fmt_mean_std(v.mean, v.std)

    def method(key: str) -> str:
        return method_label(key) + (f" {TEST_SAMPLING_MARK}" if intervals and key == ENSEMBLE else "")

    cells = [[regime_label(r["regime"]), method(r["method"]), str(r.get("n", ""))]
             + [cell(r.get(m, NAN_STAT)) for m in metrics] for r in rows]
    best: set[tuple[int, int]] = set()
    for j, m in enumerate(metrics):
        vals = np.array([r.get(m, NAN_STAT).mean for r in rows], dtype=np.float64)
        higher = higher_is_better(m)
        if higher is None or not np.isfinite(vals).any():
            continue
        target = np.nanmax(vals) if higher else np.nanmin(vals)
        best |= {(i, j + 3) for i in range(len(rows)) if vals[i] == target}
    return head, cells, best


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows by method (registry order), then regime (registry order)."""
    order = {r: i for i, r in enumerate(order_regimes(list({r["regime"] for r in rows})))}
    mo = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: (mo.get(r["method"], len(mo)), order.get(r["regime"], len(order))))


#: the tables of the results and of the paired comparisons: (title, metric groups); metrics the
#: registry does not know go to the further metrics (the beyond-the-paper groups have their own section)
RESULT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Paper metrics", (PAPER,)), ("Further metrics", (EXTRA, OTHER)),
    ("Accuracy and ECE per vote-entropy bin", (ENTROPY_BIN,)))
_UNKNOWN_GOES_TO = RESULT_GROUPS[1][0]


def metric_groups(rows: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], list[str]]]:
    """(title, groups, metric keys) of the result tables (:data:`RESULT_GROUPS`), keys present in
    the rows in registry order, unregistered columns of summary.csv last in the further metrics."""
    present = [k for r in rows[:1] for k in r if k not in ("regime", "method", "n")]
    unknown = [k for k in present if metric(k) is None]
    return [(title, groups, [k for k in keys(*groups) if k in present]
             + (unknown if title == _UNKNOWN_GOES_TO else [])) for title, groups in RESULT_GROUPS]


def paired_table(rows: list[dict[str, Any]]) -> Table:
    """Paired differences vs the baseline from paired.csv rows: cell "diff [lo, hi]", " *" and
    marked when the interval excludes 0."""
    header = ["regime", "baseline", "method", "metric", "mean difference [95 % CI]"]
    cells, marked = [], set()
    for i, r in enumerate(rows):
        d, lo, hi = r["mean_diff"], r["ci_low"], r["ci_high"]
        sig = significant(lo, hi)
        if sig:
            marked.add((i, len(header) - 1))
        txt = f"{fmt_signed(d)} {fmt_interval(lo, hi)}" if np.isfinite(d) else "–"
        cells.append([regime_label(r["regime"]), regime_label(r["baseline"]), method_label(r["method"]),
                      r["metric"], txt + (" *" if sig else "")])
    return header, cells, marked


def data_tables(manifest: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) tables of the manifest: splits, class counts, entropy bins, dropped."""
    splits = manifest.get("splits", {})
    tables = []
    cells = [[s, f"{int(d.get('n', 0)):,}", ", ".join(f"{c} {n:,}" for c, n in (d.get("cities") or {}).items())]
             for s, d in splits.items()]
    tables.append(("Images per split", ["split", "images", "cities"], cells))
    head = ["split"] + [f"{LCZ_CODES[i]} {LCZ_NAMES[i]}" for i in range(N_URBAN)]
    cells = [[s] + [f"{int(c):,}" for c in (d.get("class_counts") or [])] for s, d in splits.items()]
    tables.append(("Majority-vote class counts", head, cells))
    cells = []
    for s, d in splits.items():
        n = max(int(d.get("n", 0)), 1)
        cells.append([s] + [f"{int(c):,} ({100 * c / n:.1f} %)" for c in d.get("entropy_bins") or []])
    tables.append(("Vote entropy (nats) per paper bin: images (share)", ["split"] + entropy_bin_labels(), cells))
    dropped = manifest.get("dropped") or {}
    if dropped:
        tables.append(("Rows dropped when preparing", ["reason", "rows"],
                       [[k, f"{int(v):,}"] for k, v in dropped.items()]))
    return tables


def paired_title(key: str) -> str | None:
    """The paired table (:data:`RESULT_GROUPS` title) a metric's rows go to; None for the
    beyond-the-paper groups (their own section; their paired rows stay in paired.csv)."""
    m = metric(key)
    if m is None:
        return _UNKNOWN_GOES_TO
    return next((title for title, groups in RESULT_GROUPS if m.group in groups), None)
