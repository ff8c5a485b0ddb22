"""Cost of the crowd-kit aggregators (lczldl.data.aggregation) and of the project's Dawid-Skene
(single start and multi-start) on the twin's votes; prints a table.

Votes: the twin's vote model (lczldl.data.synth: latent scenes, 11 simulated experts) without
rendering pixels, for every city of a twin size, filtered by the label rules like prepare (rows
with an urban majority and an urban vote). Same statistics as ``lczldl data synth --size SIZE``,
not the same draws (pixel rendering consumes the synth's random streams).

Usage: python benchmarks/bench_aggregation.py [--size full] [--methods one_coin,mace,wawa,crowdkit_ds,glad]
GLAD is slow (crowd-kit's CG M-step in pandas): ~20 min per iteration on the full twin's 206k rows
on a shared 2-core machine; give it --glad-rows to run it on the first rows only.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from lczldl.constants import ADDON_CITIES, EUROPEAN_CITIES
from lczldl.data import synth
from lczldl.data.aggregation import aggregate
from lczldl.data.dawid_skene import fit_dawid_skene, fit_dawid_skene_multistart
from lczldl.data.labels import build_labels


def twin_votes(size: str = "full", seed: int = 0) -> np.ndarray:
    """(N, 11) store-format votes of the kept rows of a votes-only twin of ``size``."""
    n_city, n_addon = synth.SIZES[size]
    experts = synth.make_experts(np.random.default_rng([seed, 1]))
    out = []
    for city, addon in [(c, False) for c in EUROPEAN_CITIES] + [(c, True) for c in ADDON_CITIES]:
        rng = np.random.default_rng([seed, synth._city_key(city), 99])
        shares = None if addon else rng.dirichlet(synth.CITY_SHARES * 80 + 0.1)
        n = n_addon if addon else n_city
        latent = synth.simulate_latent(rng, n, addon, shares)
        votes = synth.simulate_votes(rng, experts, latent)
        original = np.full(n, 7) if addon else synth.original_labels(rng, latent)
        lab = build_labels(votes, original)
        out.append(lab.votes[lab.keep])
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="full", choices=list(synth.SIZES))
    ap.add_argument("--methods", default="one_coin,mace,wawa,crowdkit_ds")
    ap.add_argument("--glad-rows", type=int, default=0, help="run GLAD on the first rows only (0: all)")
    args = ap.parse_args()
    votes = twin_votes(args.size)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; twin '{args.size}' "
          f"votes-only: {len(votes):,} rows x 11 experts")
    print(f"{'aggregator':<22} {'rows':>8} {'seconds':>9} {'iters':>6} {'converged':>9} {'log-lik':>14}")
    t = time.perf_counter()
    ds = fit_dawid_skene(votes, 10)
    print(f"{'project DS (majority)':<22} {len(votes):>8} {time.perf_counter() - t:>9.2f} {ds.n_iter:>6} "
          f"{ds.converged!s:>9} {ds.log_likelihood:>14.1f}", flush=True)
    t = time.perf_counter()
    ms = fit_dawid_skene_multistart(votes, 10)
    rival = "none" if ms.rival is None else ms.rival["summary"]
    print(f"{'project DS multi-start':<22} {len(votes):>8} {time.perf_counter() - t:>9.2f} "
          f"{sum(s['n_iter'] for s in ms.starts):>6} {'':>9} {ms.best.log_likelihood:>14.1f}  "
          f"best start {ms.best_start}, rival: {rival}", flush=True)
    for method in [m for m in args.methods.split(",") if m]:
        v = votes[: args.glad_rows] if method == "glad" and args.glad_rows else votes
        res = aggregate(v, method)
        ll = res.info.get("log_likelihood", res.info.get("objective", float("nan")))
        print(f"{'crowd-kit ' + method:<22} {len(v):>8} {res.info['seconds']:>9.2f} {res.info['iterations']:>6} "
              f"{res.info['converged']!s:>9} {ll:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
