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
from lczldl.data.store import manifest_classes, manifest_has_votes
from lczldl.distributions import entropy_bin_labels
from lczldl.evaluation.registry import (
    DIGITS,
    ENTROPY_BIN,
    EXTRA,
    LCZ,
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


def results_table(rows: list[dict[str, Any]], metrics: list[str], header: list[str] | None = None,
                  intervals: bool = False) -> Table:
    """Header, cells (mean ± std, or with ``intervals`` mean [lo, hi] from summary.csv) and the
    (row, col) cells holding the best mean of their column (direction from the metric registry;
    descriptive metrics are not ranked)."""
    head = ["regime", "method", "n"] + (header or metrics)

    def cell(v: Any) -> str:
        return fmt_mean_interval(v.mean, v.lo, v.hi) if intervals else fmt_mean_std(v.mean, v.std)

    cells = [[regime_label(r["regime"]), method_label(r["method"]), str(r.get("n", ""))]
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
    ("Paper metrics", (PAPER,)), ("LCZ community accuracies (all 17 classes)", (LCZ,)),
    ("Further metrics", (EXTRA, OTHER)),
    ("Accuracy and ECE per vote-entropy bin", (ENTROPY_BIN,)))
_UNKNOWN_GOES_TO = RESULT_GROUPS[2][0]


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


def class_names(manifest: dict[str, Any] | None, k: int | None = None) -> list[str]:
    """"code name" of each class index of a store (its manifest's classes; LCZ 1..k without one)."""
    ids = manifest_classes(manifest) if manifest else list(range(1, (k or N_URBAN) + 1))
    return [f"{LCZ_CODES[c - 1]} {LCZ_NAMES[c - 1]}" for c in ids]


def data_tables(manifest: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) tables of the manifest: splits, class counts, entropy bins (a store with
    votes), dropped."""
    splits = manifest.get("splits", {})
    votes = manifest_has_votes(manifest)
    tables = []
    cells = [[s, f"{int(d.get('n', 0)):,}", ", ".join(f"{c} {n:,}" for c, n in (d.get("cities") or {}).items())
              or str(d.get("source", ""))] for s, d in splits.items()]
    tables.append(("Images per split", ["split", "images", "cities" if votes else "source file"], cells))
    head = ["split"] + class_names(manifest)
    cells = [[s] + [f"{int(c):,}" for c in (d.get("class_counts") or [])] for s, d in splits.items()]
    tables.append(("Majority-vote class counts" if votes else "Class counts", head, cells))
    if votes:
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


def per_class_table(per_class: dict[str, list[dict[str, Any]]], names: list[str]) -> Table:
    """Per class (rows) the mean over seeds of each regime's precision, recall and F1 (metrics.json
    ``per_class`` of its plain runs; "–" where undefined in every seed) and the test images.
    ``per_class``: regime -> the seeds' ``per_class`` objects; ``names``: class display names."""
    regimes = order_regimes(list(per_class))
    stats = ("precision", "recall", "f1")
    head = ["class", "test images"] + [f"{regime_label(r)} {st}" for r in regimes for st in stats]
    cells = []
    for i, name in enumerate(names):
        support = next((o["support"][i] for objs in per_class.values() for o in objs if i < len(o.get("support", []))),
                       None)
        row = [name, "–" if support is None else f"{int(support):,}"]
        for r in regimes:
            for st in stats:
                vals = [o[st][i] for o in per_class[r] if i < len(o.get(st) or []) and o[st][i] is not None]
                row.append(f"{np.mean(vals):.{DIGITS}f}" if vals else "–")
        cells.append(row)
    return head, cells, set()
