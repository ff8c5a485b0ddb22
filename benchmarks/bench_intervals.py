"""Cost of the beyond-the-paper evaluation per run and method on a demo-sized test split
(1,157 x 10 by default): point metrics, 1,000-draw bootstrap intervals of every compute_metrics
key, conformal sets (3 scores x 2 levels) with and without intervals, selective metrics and
uncertainty signals with intervals. Prints a table (best of --repeat; shared machines are noisy).

Usage: python benchmarks/bench_intervals.py [--n 1157] [--n-val 1157] [--boot 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from timing import best_of

from lczldl.config import EvaluationConfig
from lczldl.distributions import entropy_nats
from lczldl.evaluation.conformal import (
    DEFAULT_LEVELS,
    SCORES,
    conformal_metrics,
    set_metrics,
    split_conformal,
)
from lczldl.evaluation.intervals import bootstrap_counts, bootstrap_intervals, percentile_interval
from lczldl.evaluation.metrics import compute_metrics
from lczldl.evaluation.selective import selective_metrics, signal_metrics, uncertainty_signals


def case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    c = rng.multinomial(11, rng.dirichlet(np.full(10, 0.3), n))
    d = c / c.sum(axis=1, keepdims=True)
    z = rng.normal(size=(n, 10)) + 2.0 * np.log(d + 0.02)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    votes = np.zeros((n, 11), dtype=np.int8)
    for i in range(n):
        v = np.repeat(np.arange(1, 11), c[i])
        votes[i, :len(v)] = v
    return p, d.argmax(axis=1), d, votes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1157)
    ap.add_argument("--n-val", type=int, default=1157)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bins", type=int, default=EvaluationConfig().n_bins, help="calibration bins")
    args = ap.parse_args()
    p, y, d, votes = case(args.n, 0)
    pv, yv, _, _ = case(args.n_val, 1)
    ent = entropy_nats(d)
    correct = p.argmax(axis=1) == y
    signals = uncertainty_signals(p, mutual_info=np.random.default_rng(2).random(args.n), members=[p, p[::-1]])

    def conformal_with_intervals():
        w = bootstrap_counts(args.n, args.boot)
        for score in SCORES:
            for level in DEFAULT_LEVELS:
                sets, _ = split_conformal(pv, yv, p, score=score, level=level)
                m = set_metrics(sets, y, votes, weights=w)
                [percentile_interval(v) for v in m.values()]

    def selective_with_intervals():
        w = bootstrap_counts(args.n, args.boot)
        [percentile_interval(v) for v in selective_metrics(p, y, weights=w).values()]
        for s in signal_metrics(signals, correct, ent, w).values():
            [percentile_interval(v) for v in s.values()]

    rows = [("compute_metrics (point, reference)", lambda: compute_metrics(p, y, d, args.bins)),
            (f"compute_metrics keys, {args.boot} draws", lambda: bootstrap_intervals(
                lambda w: compute_metrics(p, y, d, args.bins, weights=w), len(y), n_boot=args.boot)),
            ("conformal 3 scores x 2 levels (point)", lambda: conformal_metrics(pv, yv, p, y, votes)),
            (f"conformal + {args.boot}-draw intervals", conformal_with_intervals),
            ("selective + 4 signals (point)",
             lambda: (selective_metrics(p, y), signal_metrics(signals, correct, ent))),
            (f"selective + signals, {args.boot} draws", selective_with_intervals)]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; test {args.n:,} x 10, "
          f"validation {args.n_val:,}; best of {args.repeat}")
    print(f"{'step':<42} {'seconds':>8}")
    total = 0.0
    for name, fn in rows:
        dt = best_of(fn, args.repeat)
        total += dt if "point, reference" not in name else 0.0
        print(f"{name:<42} {dt:>8.3f}")
    print(f"{'all new work per run and method':<42} {total:>8.3f}")


if __name__ == "__main__":
    main()
