"""Speed of compute_metrics (1,000,000 x 10) and fit_temperature (50,000 x 10); prints a table.

Usage: python benchmarks/bench_metrics.py [--n 1000000] [--repeat 3]
Numbers on a shared machine are noisy: compare within one run, report the best of the repeats.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from timing import best_of


def _case(n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)).astype(np.float32) * 2
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    probs = np.exp(lp)
    labels = rng.integers(0, k, n)
    votes = rng.multinomial(11, np.full(k, 1 / k), size=n).astype(np.float64)
    return lp, probs, labels, votes / votes.sum(1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--n-temp", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bins", type=int, default=None, help="calibration bins (default: the config's)")
    args = ap.parse_args()
    from lczldl.config import EvaluationConfig
    from lczldl.evaluation.metrics import compute_metrics
    from lczldl.evaluation.temperature import fit_temperature, fit_vector_scaling

    bins = args.bins or EvaluationConfig().n_bins
    lp, probs, labels, dist = _case(args.n, 10)
    lpt, _, labt, distt = _case(args.n_temp, 10, seed=1)
    compute_metrics(probs[:1000], labels[:1000], dist[:1000], bins)     # warm imports
    rows = [
        (f"compute_metrics right {args.n:,} x 10",
         best_of(lambda: compute_metrics(probs, labels, dist, bins), args.repeat)),
        (f"compute_metrics left  {args.n:,} x 10",
         best_of(lambda: compute_metrics(probs, labels, dist, bins, binning="left"), args.repeat)),
        (f"fit_temperature one-hot {args.n_temp:,} x 10", best_of(lambda: fit_temperature(lpt * 2, labt), args.repeat)),
        (f"fit_temperature distr   {args.n_temp:,} x 10", best_of(lambda: fit_temperature(lpt * 2, distt), args.repeat)),
        (f"fit_vector_scaling      {args.n_temp:,} x 10", best_of(lambda: fit_vector_scaling(lpt * 2, labt), args.repeat)),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load avg {load:.1f}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, numpy {np.__version__}")
    print(f"| {'task':<42} | {'best of ' + str(args.repeat) + ' (s)':>15} |")
    print(f"|{'-' * 44}|{'-' * 17}|")
    for name, t in rows:
        print(f"| {name:<42} | {t:15.3f} |")


if __name__ == "__main__":
    main()
