"""Fit the synthetic twin's vote model to the real votes, per majority class (no pixels).

Simulates the twin's latent scenes and expert votes only (``lczldl.data.synth``: 60,000 rows in
about a second), builds labels with the project's rules and compares, per majority class, the
entropy-bin shares and the mean vote distribution with the real reference file. ``--search``
runs a coordinate search over the mixing table (``MIXING``) and the global vote parameters and
prints the fitted values to paste into ``synth.py``. Objective (lower is better): per-class
entropy-bin TV + per-class mean-distribution TV, weighted by the real class shares, + pooled
entropy-bin TV + class-share TV + 2 x |mean top-vote share - real|.

    python scripts/fit_twin_votes.py [--reference ../shared/data/votes/test_label_distributions_data.h5]
                                     [--rows 60000] [--search ROUNDS]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lczldl.data.synth as sy
from lczldl.data.labels import build_labels
from lczldl.data.stats import load_reference, vote_statistics
from lczldl.distributions import tv_distance

#: global parameters searched: (name, tuple index or None, step, (low, high))
GLOBALS = [("EXPERT_LEAK_P", None, 0.1, (0, 0.6)), ("EXPERT_LEAK", 1, 0.02, (0.03, 0.15)),
           ("AMBIGUOUS_W", 0, 0.04, (0.12, 0.4)),
           ("EXPERT_GAMMA", 1, 0.2, (1.0, 2.5)), ("EXPERT_NOISE", 1, 0.02, (0.02, 0.15)),
           ("VOTE_STRATIFY", None, 0.15, (0, 1))]
#: per-class MIXING entries: step and range of clean, ambiguous, impure mean, third, concentration
STEPS = [0.08, 0.08, 0.03, 0.05, 8.0]
LIMITS = [(0, 1), (0, 1), (0.03, 0.3), (0, 0.5), (4, 120)]


def simulate(rows: int, seed: int, addon_share: float = 0.04) -> dict:
    """Vote statistics of ``rows`` simulated patches (European cities + addon LCZ 7 patches)."""
    rng = np.random.default_rng(seed)
    experts = sy.make_experts(np.random.default_rng([seed, 1]))
    parts, majority = [], []
    for addon, n in ((False, int(rows * (1 - addon_share))), (True, int(rows * addon_share))):
        latent = sy.simulate_latent(rng, n, addon)
        votes = sy.simulate_votes(rng, experts, latent)
        original = np.full(n, 7) if addon else sy.original_labels(rng, latent)
        lab = build_labels(votes, original)
        parts.append(lab.distribution[lab.keep])
        majority.append(lab.label[lab.keep])
    return vote_statistics(np.concatenate(parts), np.concatenate(majority))


def objective(twin: dict, real: dict) -> float:
    """The fit's loss (module docstring)."""
    shares = np.asarray(real["class_shares"])
    loss = 0.0
    for k in range(len(shares)):
        tb = np.nan_to_num(np.asarray(twin["entropy_bins_given_majority"][k]))
        rb = np.asarray(real["entropy_bins_given_majority"][k])
        tm = np.nan_to_num(np.asarray(twin["mean_given_majority"][k]))
        rm = np.asarray(real["mean_given_majority"][k])
        loss += shares[k] * (tv_distance(tb, rb) + tv_distance(tm, rm))
    loss += tv_distance(twin["entropy_bin_shares"], real["entropy_bin_shares"])
    loss += tv_distance(twin["class_shares"], real["class_shares"])
    return loss + 2.0 * abs(twin["mean_top_share"] - real["mean_top_share"])


def report(twin: dict, real: dict) -> None:
    print("LCZ  rows twin/real   entropy bins twin | real             bins TV")
    for k in range(10):
        tb = np.nan_to_num(np.asarray(twin["entropy_bins_given_majority"][k]))[:5]
        rb = np.asarray(real["entropy_bins_given_majority"][k])[:5]
        fmt = " ".join(f"{x:.2f}" for x in tb), " ".join(f"{x:.2f}" for x in rb)
        print(f"{k + 1:3d}  {twin['class_shares'][k]:.3f}/{real['class_shares'][k]:.3f}   "
              f"{fmt[0]} | {fmt[1]}   {tv_distance(tb, rb):.2f}")
    print(f"pooled entropy-bin TV {tv_distance(twin['entropy_bin_shares'], real['entropy_bin_shares']):.3f}, "
          f"mean top share {twin['mean_top_share']:.3f} (real {real['mean_top_share']:.3f}), "
          f"objective {objective(twin, real):.4f}")


def _try(setter, old, new, loss_fn, best: float) -> tuple[bool, float]:
    setter(new)
    loss = loss_fn()
    if loss < best - 1e-4:
        return True, loss
    setter(old)
    return False, best


def search(rounds: int, loss_fn) -> float:
    """Coordinate search (common random numbers: one simulation seed) over GLOBALS and MIXING."""
    best = loss_fn()
    gsteps, steps = [g[2] for g in GLOBALS], list(STEPS)
    for rnd in range(rounds):
        for gi, (name, idx, _step, lim) in enumerate(GLOBALS):
            for sign in (1, -1):
                old = getattr(sy, name)
                if idx is None:
                    new = float(np.clip(old + sign * gsteps[gi], *lim))
                else:
                    t = list(old)
                    t[idx] = float(np.clip(t[idx] + sign * gsteps[gi], *lim))
                    if t[0] > t[1]:
                        continue
                    new = tuple(t)
                ok, best = _try(lambda v, n=name: setattr(sy, n, v), old, new, loss_fn, best)
                if ok:
                    print(f"round {rnd}: {name} = {new}  ({best:.4f})", flush=True)
                    break
        for k in range(1, 11):
            for j in range(5):
                for sign in (1, -1):
                    old = sy.MIXING[k]
                    v = list(old)
                    v[j] = float(np.clip(v[j] + sign * steps[j], *LIMITS[j]))
                    if v[0] + v[1] > 1:
                        continue
                    ok, best = _try(lambda t, k=k: sy.MIXING.__setitem__(k, tuple(t)), old, v, loss_fn, best)
                    if ok:
                        print(f"round {rnd}: MIXING[{k}][{j}] = {v[j]:.3f}  ({best:.4f})", flush=True)
                        break
        gsteps = [g * 0.7 for g in gsteps]
        steps = [s * 0.6 for s in steps]
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared"
                    / "data" / "votes" / "test_label_distributions_data.h5")
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--search", type=int, default=0, metavar="ROUNDS")
    args = ap.parse_args()
    ref = load_reference(args.reference)
    real = vote_statistics(ref["distribution"], ref["majority"])
    report(simulate(args.rows, 0), real)
    if args.search:
        search(args.search, lambda: objective(simulate(args.rows * 2 // 3, 5), real))
        print("\nMIXING = {")
        for k, v in sorted(sy.MIXING.items()):
            print(f"    {k}: ({', '.join(f'{x:.2f}' for x in v)}),")
        print("}")
        for name, *_ in GLOBALS:
            print(f"{name} = {getattr(sy, name)}")
        report(simulate(args.rows, 0), real)


if __name__ == "__main__":
    main()
