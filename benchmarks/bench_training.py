"""Throughput of the real training loop (``lczldl.training.run.train_run`` with
``train.engine=lightning``: Lightning, the store's DataLoader, Nadam, validation, checkpoints) on a
synthetic store, CPU.

    python benchmarks/bench_training.py [--n-train 3200] [--epochs 3] [--threads 2] [--repeats 1]
                                        [--workers 0] [--set key=value ...]

Writes a temporary store in the documented npy layout (uniform random reflectance, random
labels/votes), trains the paper's model (depth 17, width 16, batch 64) for a few epochs and prints
a table: samples/s of the training part of each epoch (data loading included, validation and
checkpointing excluded) as recorded in run.json (mean over epochs after the first), plus the
whole wall time per epoch. Machines here are shared and noisy: compare rows of one run only.
The Keras reference (PROTOCOL.md, same 2-core machine): ~185-215 samples/s training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def write_store(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    from lczldl.constants import BANDS, N_URBAN

    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", 64)):
        d = root / split
        d.mkdir(parents=True)
        label = rng.integers(0, N_URBAN, n).astype(np.int64)
        np.save(d / "image.npy", rng.integers(0, 4000, (n, len(BANDS), 32, 32), dtype=np.uint16))
        dist = rng.dirichlet(np.ones(N_URBAN), n).astype(np.float32)
        np.save(d / "label.npy", label)
        np.save(d / "distribution.npy", dist)
        np.save(d / "dawid_skene.npy", dist)
        np.save(d / "votes.npy", np.zeros((n, 11), np.int8))
        np.save(d / "original.npy", (label + 1).astype(np.int8))
        np.save(d / "city.npy", np.zeros(n, np.int16))
        np.save(d / "vote_entropy.npy", np.zeros(n, np.float32))
        splits[split] = {"n": n}
    (root / "manifest.json").write_text(json.dumps({"format": "lczldl-store", "version": 1, "splits": splits,
                                                    "cities": ["synthetic"], "bands": list(BANDS)}))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=3200)
    ap.add_argument("--n-val", type=int, default=640)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--regime", default="dist")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()

    import torch

    from lczldl.config import load_config
    from lczldl.training.callbacks import read_metrics_csv
    from lczldl.training.run import train_run

    print(f"# training loop benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
          f"threads {args.threads}, batch 64, n_train {args.n_train}")
    rows = []
    with tempfile.TemporaryDirectory() as td:
        store = write_store(Path(td) / "store", args.n_train, args.n_val)
        for rep in range(args.repeats):
            out = Path(td) / f"runs{rep}"
            t0 = time.perf_counter()
            cfg = load_config(None, ["train.engine=lightning", f"train.num_threads={args.threads}",
                                     f"data.num_workers={args.workers}", "train.patience=1000", *args.sets],
                              **{"train.regime": args.regime, "train.max_epochs": args.epochs})
            run = train_run(store, 0, out, cfg, progress=False)
            wall = time.perf_counter() - t0
            info = json.loads((run / "run.json").read_text())
            m = read_metrics_csv(run / "metrics.csv")
            rows.append((rep, info["train_samples_per_second"], [r["train_samples_per_second"] for r in m],
                         wall / args.epochs))
    print(f"{'repeat':>6} | {'train samples/s (epochs>1)':>26} | {'per epoch':>28} | {'wall s/epoch':>12}")
    for rep, sps, per, wall in rows:
        print(f"{rep:>6} | {sps:>26.1f} | {', '.join(f'{x:.0f}' for x in per):>28} | {wall:>12.2f}")
    print("# Keras reference on a 2-core machine (PROTOCOL.md): ~185-215 samples/s; goal >= 2.5x")


if __name__ == "__main__":
    main()
