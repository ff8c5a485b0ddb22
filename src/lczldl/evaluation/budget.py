"""Owns the vote-budget table (STUDY/budget/budget.csv): how the plain models' test metrics change
with the number of votes per image the training side saw (``lczldl study --vote-budget``).

One row per vote budget k (ascending, then "all": the study's own runs) x regime: the training-side
counts of the budget (:func:`lczldl.data.budget_store.budget_counts`: images kept, images with fewer than
k votes, images left without an urban vote or with a non-urban k-vote majority, per split) and, per
metric of :func:`budget_metrics`, the mean over seeds and its 95 % Student t interval
(:func:`lczldl.evaluation.intervals.seed_interval`), read from the runs' saved metrics.json and
beyond_plain.json (nothing is recomputed). Test is always judged against every vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lczldl import layout
from lczldl.config import ALL_VOTES, EvaluationConfig, VoteBudgetConfig
from lczldl.data.budget_store import budget_counts, open_budget_store
from lczldl.data.store import open_store
from lczldl.evaluation.files import numeric, read_json_object
from lczldl.evaluation.intervals import seed_interval
from lczldl.evaluation.registry import conformal_key
from lczldl.evaluation.runs import find_runs, run_info
from lczldl.evaluation.summary import to_csv
from lczldl.fileio import atomic_write_text
from lczldl.regimes import order_regimes

#: the models the table compares (one per seed; the post-hoc methods are the paper's question, not this one)
BUDGET_METHOD = "plain"
#: the sets whose vote coverage the table reports: APS (the report's figure sets), at the lowest level
BUDGET_SCORE = "aps"
#: the count columns taken from each split's budget record
COUNT_FIELDS: tuple[str, ...] = ("kept", "short_rows", "no_urban_rows", "non_urban_majority")
#: the training-side splits whose counts the table lists
COUNT_SPLITS: tuple[str, ...] = ("train", "val")


def budget_metrics(ev: EvaluationConfig) -> tuple[str, ...]:
    """The table's metrics: ce_distr and ECE against the full votes, the vote coverage of the
    :data:`BUDGET_SCORE` sets at the lowest conformal level (calibrated on the k-vote majority) and
    accuracy."""
    return ("ce_distr", "ece", conformal_key(BUDGET_SCORE, min(ev.conformal_levels), "vote_coverage"), "oa")


def k_label(k: int | None) -> str:
    """The table's k: "3", or "all" for every vote."""
    return ALL_VOTES if k is None else str(int(k))


def seed_values(runs: Path) -> dict[str, list[dict[str, float]]]:
    """regime -> the plain numbers of each run under ``runs`` (metrics.json with the headline numbers
    of beyond_plain.json), in seed order; runs without metrics.json are left out."""
    out: dict[str, list[dict[str, float]]] = {}
    if not Path(runs).is_dir():
        return out
    for run in find_runs(Path(runs)):
        obj = read_json_object(run / layout.METRICS)
        if obj is None:
            continue
        extra = read_json_object(layout.beyond_path(run, BUDGET_METHOD)) or {}
        regime = str(run_info(run).get("regime") or run.parent.name)
        out.setdefault(regime, []).append({**numeric(obj), **numeric(extra)})
    return out


def split_counts(record: dict[str, dict] | None, n: dict[str, int]) -> dict[str, int]:
    """``{split}_{field}`` counts of a budget record (:func:`lczldl.data.store.budget_counts`); without
    one (every vote) the splits' sizes ``n`` and zeros."""
    out: dict[str, int] = {}
    for split in COUNT_SPLITS:
        rec = (record or {}).get(split)
        for f in COUNT_FIELDS:
            if rec is None:
                v = n.get(split, 0) if f == "kept" else 0
            elif f == "non_urban_majority":
                v = int((rec.get("dropped") or {}).get("non_urban_majority", 0))
            else:
                v = int(rec.get(f, 0))
            out[f"{split}_{f}"] = int(v)
    return out


def budget_rows(values: dict[str, dict[str, list[dict[str, float]]]], counts: dict[str, dict[str, int]],
                metrics: Sequence[str], mode: str, seed: int) -> list[dict[str, Any]]:
    """The table's rows (pure): ``values`` k label -> regime -> per-seed numbers, ``counts`` k label
    -> :func:`split_counts`. Per row k, mode, seed, regime, method, n_runs, the counts, then per
    metric <metric>_mean, _lo, _hi (mean of the finite per-seed values, Student t interval over
    seeds; NaN with fewer than 2)."""
    rows = []
    for k, per_regime in values.items():
        for regime in order_regimes(list(per_regime)):
            seeds = per_regime[regime]
            row: dict[str, Any] = {"k": k, "mode": mode if k != ALL_VOTES else "", "seed": seed if k != ALL_VOTES else "",
                                   "regime": regime, "method": BUDGET_METHOD, "n_runs": len(seeds), **counts.get(k, {})}
            for m in metrics:
                a = np.array([s.get(m, np.nan) for s in seeds], dtype=np.float64)
                a = a[np.isfinite(a)]
                lo, hi = seed_interval(a)
                row.update({f"{m}_mean": float(a.mean()) if a.size else float("nan"), f"{m}_lo": lo, f"{m}_hi": hi})
            rows.append(row)
    return rows


def write_budget_table(study: Path, store: Path, ks: Sequence[int], budget: VoteBudgetConfig,
                       ev: EvaluationConfig) -> Path:
    """STUDY/budget/budget.csv over the budgets ``ks`` (their runs in STUDY/budget/k<k>/runs) and "all"
    (STUDY/runs), with the counts of ``budget``'s draw (its mode and seed, each k) on ``store``."""
    study = Path(study)
    plain = open_store(Path(store))
    n = {s: plain.split(s).n for s in COUNT_SPLITS if s in plain.splits}
    values: dict[str, dict[str, list[dict[str, float]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for k in [*sorted(ks), None]:
        label = k_label(k)
        values[label] = seed_values(layout.study_runs(study, k))
        draw = None if k is None else budget.model_copy(update={"k": int(k)})
        counts[label] = split_counts(budget_counts(open_budget_store(Path(store), draw)) if draw else None, n)
    rows = budget_rows(values, counts, budget_metrics(ev), budget.mode, budget.seed)
    return atomic_write_text(layout.budget_table_path(study), to_csv(rows) or "k\n")
