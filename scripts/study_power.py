"""How the paired differences of the paper's claims split into seed and test-image variance, and how
many seeds a study needs to resolve them (docs/study.md, "Choosing the demo's design").

Reads one or more study (or runs) folders that hold evaluated runs of ``onehot`` and the claim
regimes (``dist``, ``dist_ls``) on the same test split, computes every run's claim metrics on the
test set and on the image-bootstrap draws (the verdict's own inputs,
:func:`lczldl.evaluation.verdict.claim_draws`), and prints per claim:

- ``delta``: the mean paired difference over the seeds found;
- ``s2``: the variance of the per-seed differences (training variability plus each seed's own
  test-image noise); ``own``: the mean over seeds of a seed's own image-bootstrap variance;
  ``shared``: the image variance the seeds share (var of the draws' seed mean minus own / n);
- the power of the verdict's test (two-level interval, t with n - 1 df, Holm's first step
  alpha / m over the m claims) at the measured delta for each seed count asked, from the
  noncentral t with ncp = delta / sqrt((s2 + own) / n + shared) — a planning number, since delta
  and the variances are themselves estimates from a few seeds.

Usage: python scripts/study_power.py STUDY [STUDY ...] [--seeds 2,3,5,8,10,15,20,30]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import stats

from lczldl import layout
from lczldl.config import EvaluationConfig
from lczldl.evaluation import predictions as P
from lczldl.evaluation.files import load_predictions, read_json_object
from lczldl.evaluation.intervals import N_BOOT, SEED, bootstrap_counts
from lczldl.evaluation.runs import find_runs, run_info
from lczldl.evaluation.temperature import apply_temperature
from lczldl.evaluation.verdict import ALPHA, BASELINE, CLAIM_REGIMES, CLAIMS, claim_draws


def claim_values(folders: list[Path], n_bins: int) -> dict:
    """{(regime, method, seed): {metric: (value, draws)}} over every evaluated run in ``folders``."""
    values: dict = {}
    weights: dict[int, np.ndarray] = {}
    for folder in folders:
        runs_dir = folder / layout.STUDY_RUNS if (folder / layout.STUDY_RUNS).is_dir() else folder
        for run in find_runs(runs_dir):
            info = run_info(run)
            regime, seed = info.get("regime", run.parent.name), info.get("seed", layout.seed_of(run.name))
            if regime not in (*CLAIM_REGIMES, BASELINE) or not (run / layout.PREDICTIONS).is_file():
                continue
            pred = load_predictions(run / layout.PREDICTIONS, (P.PROBS, P.LOG_PROBS, P.LABELS, P.DISTRIBUTIONS))
            n = len(pred[P.LABELS])
            w = weights.setdefault(n, bootstrap_counts(n, N_BOOT, SEED))
            values[(regime, "plain", seed)] = claim_draws(pred[P.PROBS], pred[P.LABELS], pred[P.DISTRIBUTIONS],
                                                          n_bins, w)
            ts = read_json_object(run / layout.METRICS_TS) or {}
            if ts.get("temperature") is not None:
                probs = apply_temperature(pred[P.LOG_PROBS], float(ts["temperature"]))
                values[(regime, "temperature", seed)] = claim_draws(probs, pred[P.LABELS],
                                                                    pred[P.DISTRIBUTIONS], n_bins, w)
    return values


def components(values: dict, regime: str, method: str, metric: str) -> dict[str, float] | None:
    """delta, s2, own, shared and n of one claim (None without 2 paired seeds)."""
    seeds = sorted({s for (r, m, s) in values if r == regime and m == method}
                   & {s for (r, m, s) in values if r == BASELINE and m == method})
    if len(seeds) < 2:
        return None
    d = np.array([values[(regime, method, s)][metric][0] - values[(BASELINE, method, s)][metric][0] for s in seeds])
    draws = np.stack([values[(regime, method, s)][metric][1] - values[(BASELINE, method, s)][metric][1]
                      for s in seeds], axis=1)
    own = float(draws.var(axis=0, ddof=1).mean())
    shared = max(0.0, float(draws.mean(axis=1).var(ddof=1)) - own / len(seeds))
    return {"n": len(seeds), "delta": float(d.mean()), "s2": float(d.var(ddof=1)), "own": own, "shared": shared}


def power(c: dict[str, float], n: int, alpha: float) -> float:
    """Power of the two-sided test at ``alpha`` with n seeds, the measured effect taken as true."""
    var = (c["s2"] + c["own"]) / n + c["shared"]
    if var <= 0 or n < 2:
        return float("nan")
    ncp, df = abs(c["delta"]) / math.sqrt(var), n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    p = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    return p if math.isfinite(p) else 1.0 if ncp > crit else 0.0     # nct's series fails far out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--seeds", default="2,3,5,8,10,15,20,30")
    ap.add_argument("--bins", type=int, default=EvaluationConfig().n_bins)
    a = ap.parse_args()
    seed_counts = [int(s) for s in a.seeds.split(",")]
    values = claim_values(a.folders, a.bins)
    alpha = ALPHA / len(CLAIMS)                       # Holm's first step over the family
    print(f"power at alpha {ALPHA} / {len(CLAIMS)} claims (Holm's first step), two-level interval\n")
    print("| claim | method | n | delta | sd seeds | sd own image | sd shared image | "
          + " | ".join(f"power n={n}" for n in seed_counts) + " |")
    print("|" + "---|" * (7 + len(seed_counts)))
    for regime, method, metric in CLAIMS:
        c = components(values, regime, method, metric)
        if c is None:
            continue
        print(f"| {regime} {metric} | {method} | {c['n']} | {c['delta']:+.4f} | {math.sqrt(c['s2']):.4f} | "
              f"{math.sqrt(c['own']):.4f} | {math.sqrt(c['shared']):.4f} | "
              + " | ".join(f"{power(c, n, alpha):.2f}" for n in seed_counts) + " |")


if __name__ == "__main__":
    main()
