"""Owns the verdict table: the paper's claims, each answered with what the study's intervals support.

The claims (Koller et al. 2024): training on the vote distribution (``dist``, ``dist_ls``) lowers
``ce_distr`` and the ECE against one-hot training, without and with temperature scaling. Each claim
is one paired comparison regime - ``onehot`` (same seed) on the test set; together they are one
family of :data:`CLAIMS`.

Per claim: the mean paired difference over seeds and its 95 % two-level interval
(:func:`~lczldl.evaluation.intervals.paired_two_level`: seeds, plus test-image sampling from
image-bootstrap draws that are the same for every run), its p-value and Holm's adjusted p-value
over the claims present (family-wise error rate <= ``alpha``). The verdict is "lower" or "higher"
only where Holm's adjusted p <= alpha (then the 95 % interval excludes 0 too), else
"not resolved with N seeds at this budget". Pure functions: the draws come from
:func:`claim_draws` on arrays the caller loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lczldl.evaluation.intervals import LEVEL, holm, paired_two_level
from lczldl.evaluation.metrics import compute_metrics
from lczldl.evaluation.registry import fmt_interval, fmt_signed, method_label

#: the baseline every claim is compared against
BASELINE = "onehot"
#: the regimes, post-hoc methods and metrics of the paper's claims (a claim per combination)
CLAIM_REGIMES: tuple[str, ...] = ("dist", "dist_ls")
CLAIM_METHODS: tuple[str, ...] = ("plain", "temperature")
CLAIM_METRICS: tuple[str, ...] = ("ce_distr", "ece")
CLAIMS: tuple[tuple[str, str, str], ...] = tuple(
    (r, m, k) for r in CLAIM_REGIMES for m in CLAIM_METHODS for k in CLAIM_METRICS)
#: family-wise error rate of the verdicts
ALPHA = 0.05
LOWER, HIGHER = "lower", "higher"
#: columns of verdict.csv
COLUMNS = ("regime", "baseline", "method", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high",
           "p", "p_holm", "verdict")


def not_resolved(n_pairs: int) -> str:
    """The verdict where the family's test does not reject "no difference"."""
    return f"not resolved with {n_pairs} seed{'s' if n_pairs != 1 else ''} at this budget"


def claim_draws(probs: np.ndarray, labels: np.ndarray, distributions: np.ndarray, n_bins: int,
                weights: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """{metric: (value on the test set, (B,) values on the image-bootstrap draws)} for
    :data:`CLAIM_METRICS`; ``weights`` (B, N) image counts (:func:`~lczldl.evaluation.intervals.
    bootstrap_counts`, the same for every run of a study)."""
    point = compute_metrics(probs, labels, distributions, n_bins=n_bins)
    drawn = compute_metrics(probs, labels, distributions, n_bins=n_bins, weights=weights)
    return {k: (float(point[k]), np.asarray(drawn[k], dtype=np.float64)) for k in CLAIM_METRICS}


Values = Mapping[tuple[str, str, Any], Mapping[str, tuple[float, np.ndarray]]]


def verdict_rows(values: Values, baseline: str = BASELINE, alpha: float = ALPHA,
                 level: float = LEVEL, claims: Iterable[tuple[str, str, str]] = CLAIMS) -> list[dict[str, Any]]:
    """One row per claim whose regime and baseline both have runs (:data:`COLUMNS`).

    ``values``: {(regime, method, seed): {metric: (test value, (B,) draw values)}} from
    :func:`claim_draws`. Seeds are paired by their key; a claim's seeds are those both regimes
    have. Holm's adjustment runs over the rows returned."""
    rows: list[dict[str, Any]] = []
    for regime, method, metric in claims:
        seeds = sorted({s for (r, m, s) in values if r == regime and m == method}
                       & {s for (r, m, s) in values if r == baseline and m == method}, key=str)
        if not seeds:
            continue
        pairs = [(values[(regime, method, s)][metric], values[(baseline, method, s)][metric]) for s in seeds]
        diffs = np.array([a[0] - b[0] for a, b in pairs])
        draws = np.stack([a[1] - b[1] for a, b in pairs], axis=1)            # (B, n)
        est = paired_two_level(diffs, draws, level)
        rows.append({"regime": regime, "baseline": baseline, "method": method, "metric": metric,
                     "n_pairs": est.n, "mean_diff": est.mean, "ci_low": est.lo, "ci_high": est.hi,
                     "p": est.p})
    for row, adj in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = float(adj)
        row["verdict"] = word(row["mean_diff"], float(adj), row["n_pairs"], alpha)
    return rows


def word(mean_diff: float, p_holm: float, n_pairs: int, alpha: float = ALPHA) -> str:
    """"lower" / "higher" (the regime's metric against the baseline's) where Holm's adjusted p <=
    alpha, else :func:`not_resolved`."""
    if math.isfinite(p_holm) and p_holm <= alpha and math.isfinite(mean_diff) and mean_diff != 0:
        return LOWER if mean_diff < 0 else HIGHER
    return not_resolved(n_pairs)


#: the header of the verdict table in every rendering (summary.md, the report, the demo's output)
HEADER = ("claim", "method", "n", "mean diff", "95 % interval", "Holm p", "verdict")
#: what the table's numbers are, one sentence for every rendering
CAPTION = ("Each claim of the paper against one-hot training (same seed): the regime's metric minus "
           "one-hot's, mean over seeds, with a 95 % two-level interval (seeds and test images); the "
           "verdict is \"lower\" or \"higher\" only where Holm's adjusted p over these claims is <= "
           f"{ALPHA} (chance of any false verdict <= {ALPHA:.0%}), else \"not resolved\". Lower is "
           "better for both metrics.")


def table_cells(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of strings per verdict row, in :data:`HEADER` order."""

    def p(v: float) -> str:
        return "–" if not math.isfinite(v) else (f"{v:.3f}" if v >= 0.001 else "<0.001")

    return [(f"{r['regime']} vs {r['baseline']}: {r['metric']}", method_label(r["method"]), str(r["n_pairs"]),
             fmt_signed(r["mean_diff"]), fmt_interval(r["ci_low"], r["ci_high"]), p(r["p_holm"]), r["verdict"])
            for r in rows]


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The verdict table as Markdown lines (caption first); no lines without rows."""
    if not rows:
        return []
    out = [CAPTION, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(cells) + " |" for cells in table_cells(rows)]
    return out
