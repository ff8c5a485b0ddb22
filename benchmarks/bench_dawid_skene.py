"""Dawid-Skene EM benchmark: lczldl.data.dawid_skene.fit_dawid_skene on N x 11 votes.

Two vote sets per size: "real-like" (11 experts agreeing ~87 % of the time, few missing votes:
many repeated vote patterns, like the real release) and "noisy" (diagonal 0.6-0.9, 60 % missing:
nearly every row a distinct pattern, the worst case for the pattern dedup).

Usage: python benchmarks/bench_dawid_skene.py [--sizes 20000,100000,400000]
Prints a table (seconds, EM iterations, unique patterns). Shared 2-core machines are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lczldl.data.dawid_skene import _class_codes, _unique_rows, fit_dawid_skene

K, E = 10, 11


def votes(n: int, diag: tuple[float, float], missing: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    conf = np.empty((E, K, K))
    for e in range(E):
        d = rng.uniform(*diag, K)
        off = rng.dirichlet(np.full(K, 0.3), size=K)
        np.fill_diagonal(off, 0)
        off *= ((1 - d) / off.sum(axis=1))[:, None]
        conf[e] = off + np.diag(d)
    truth = rng.choice(K, n, p=rng.dirichlet(np.full(K, 3)))
    cum = conf.cumsum(axis=2)
    u = rng.random((n, E))
    v = np.minimum((u[:, :, None] > cum[np.arange(E)[None], truth[:, None]]).sum(axis=2), K - 1) + 1
    v[rng.random((n, E)) < missing] = 0
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20000,100000,400000")
    args = ap.parse_args()
    print(f"{'votes':<10} {'N':>8} {'unique':>8} {'seconds':>8} {'iters':>6} {'converged':>9}")
    for name, diag, missing in (("real-like", (0.8, 0.95), 0.03), ("noisy", (0.6, 0.9), 0.6)):
        for n in (int(s) for s in args.sizes.split(",")):
            v = votes(n, diag, missing, seed=n)
            n_unique = len(_unique_rows(_class_codes(v, list(range(1, K + 1))), K)[0])
            t0 = time.perf_counter()
            res = fit_dawid_skene(v, K)
            dt = time.perf_counter() - t0
            print(f"{name:<10} {n:>8} {n_unique:>8} {dt:>8.2f} {res.n_iter:>6} {res.converged!s:>9}")


if __name__ == "__main__":
    main()
