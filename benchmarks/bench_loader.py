"""Loader benchmark: one full epoch over a 400,000-sample prepared store (8 GB of uint16 pixels).

Writes a synthetic store directly in store format (random pixels; content does not matter for
reading speed), then measures each loader configuration in a fresh subprocess so that its peak
RSS (``resource.getrusage(...).ru_maxrss`` of the process + its worker processes) is its own:

- ``batch``: LCZDataModule's loader (EpochBatchSampler + ``dataset[rows]``, pread, no mmap),
  shuffled, with 0 and 2 worker processes, "cold" (the store's pages first evicted from the page
  cache with posix_fadvise DONTNEED, so the epoch reads from disk) and "warm";
- ``getitems``: a plain torch DataLoader(batch_size=64, shuffle=True) over the same dataset, which
  goes through ``__getitems__`` (one read per batch) and default_collate;
- ``per-item``: a plain DataLoader calling ``__getitem__`` once per sample (partial epoch);
- ``mmap`` (``--mmap-baseline``): fancy-indexing ``np.load(mmap_mode="r")`` per batch: the trap
  (file-backed pages accumulate in RSS).

Usage: python benchmarks/bench_loader.py [--n 400000] [--dir DIR] [--keep] [--quick]
Prints a table. Numbers on shared 2-core machines are noisy; compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS_PER_CHUNK = 4096


def make_store(path: Path, n: int, seed: int = 0) -> None:
    """Write an n-row train split (and tiny val/test) in store format, chunk by chunk."""
    from lczldl.constants import BANDS, N_URBAN
    from lczldl.data.prepare_pixels import write_npy_header
    from lczldl.layout import STORE_FORMAT, STORE_VERSION

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n, "val": 256, "test": 256}
    base = rng.integers(0, 4000, (ROWS_PER_CHUNK, len(BANDS), 32, 32), dtype=np.uint16)
    for split, m in sizes.items():
        d = path / split
        d.mkdir(exist_ok=True)
        with open(d / "image.npy", "wb") as fh:
            write_npy_header(fh, (m, len(BANDS), 32, 32), np.uint16)
            for k, a in enumerate(range(0, m, ROWS_PER_CHUNK)):
                b = min(a + ROWS_PER_CHUNK, m)
                fh.write((base[: b - a] + np.uint16(k % 97)).tobytes())
            fh.flush()
            os.fsync(fh.fileno())                         # clean pages, so "cold" can evict them
        label = rng.integers(0, N_URBAN, m)
        dist = rng.dirichlet(np.ones(N_URBAN), m).astype(np.float32)
        np.save(d / "label.npy", label.astype(np.int64))
        np.save(d / "distribution.npy", dist)
        np.save(d / "dawid_skene.npy", dist)
        np.save(d / "votes.npy", rng.integers(0, 11, (m, 11)).astype(np.int8))
        np.save(d / "original.npy", (label + 1).astype(np.int8))
        np.save(d / "city.npy", np.zeros(m, dtype=np.int16))
        np.save(d / "vote_entropy.npy", np.zeros(m, dtype=np.float32))
    manifest = {"format": STORE_FORMAT, "version": STORE_VERSION, "bands": list(BANDS),
                "cities": ["synthetic"], "splits": {s: {"n": m} for s, m in sizes.items()},
                "note": "random pixels written by benchmarks/bench_loader.py"}
    (path / "manifest.json").write_text(json.dumps(manifest))


def evict(path: Path) -> None:
    """Drop this file's clean pages from the page cache (affects only this file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(store: Path, mode: str, workers: int, cold: bool, limit: int | None, batch_size: int) -> dict:
    """Iterate one epoch (or ``limit`` samples) in this process; return speed and peak RSS."""
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    from lczldl.data.datamodule import LCZDataModule
    from lczldl.data.store import LCZDataset

    if cold:
        evict(store / "train" / "image.npy")
    if mode == "batch":
        dm = LCZDataModule(store, target="onehot", batch_size=batch_size, num_workers=workers, seed=0)
        loader = dm.train_dataloader()
    elif mode in ("getitems", "per-item"):
        ds = LCZDataset(store, "train", target="onehot")
        if mode == "per-item":
            ds.__getitems__ = None  # instance attribute: torch falls back to __getitem__ per sample
        loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(0))
    elif mode == "mmap":
        img = np.load(store / "train" / "image.npy", mmap_mode="r")
        order = np.random.default_rng(0).permutation(len(img))

        def gen():
            for a in range(0, len(order), batch_size):
                rows = np.sort(order[a:a + batch_size])
                yield {"image": torch.from_numpy(img[rows].astype(np.float32) / 10000)}
        loader = gen()
    else:
        raise ValueError(mode)
    n, checksum = 0, 0.0
    t0 = time.perf_counter()
    for batch in loader:
        n += batch["image"].shape[0]
        checksum += float(batch["image"][0, 0, 0, 0])
        if limit and n >= limit:
            break
    dt = time.perf_counter() - t0
    del loader
    import gc

    gc.collect()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"mode": mode, "workers": workers, "cold": cold, "samples": n, "seconds": round(dt, 2),
            "samples_per_s": round(n / dt), "peak_rss_main_mb": round(self_kb / 1024),
            "peak_rss_worker_mb": round(child_kb / 1024) if workers else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400_000, help="training samples of the synthetic store")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the store (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="only the cold batch path with 0 and 2 workers")
    ap.add_argument("--mmap-baseline", action="store_true", help="also run the mmap fancy-index trap")
    ap.add_argument("--measure", nargs=4, metavar=("STORE", "MODE", "WORKERS", "COLD"), help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.measure:
        store, mode, workers, cold = args.measure
        print(json.dumps(measure(Path(store), mode, int(workers), cold == "1", args.limit or None,
                                 args.batch_size)))
        return

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="lczldl-bench-loader-"))
    store = root / "store"
    try:
        if not (store / "manifest.json").exists() or \
                json.loads((store / "manifest.json").read_text())["splits"]["train"]["n"] != args.n:
            shutil.rmtree(store, ignore_errors=True)
            t0 = time.perf_counter()
            make_store(store, args.n)
            gb = os.path.getsize(store / "train" / "image.npy") / 1e9
            print(f"wrote synthetic store: {args.n} samples, {gb:.2f} GB image.npy, "
                  f"{time.perf_counter() - t0:.1f} s")
        runs = [("batch", 0, True, 0), ("batch", 2, True, 0)]
        if not args.quick:
            runs += [("batch", 0, False, 0), ("batch", 2, False, 0), ("getitems", 0, False, 0),
                     ("getitems", 2, False, 0), ("per-item", 0, False, 50_000)]
        if args.mmap_baseline:
            runs.append(("mmap", 0, False, 0))
        rows = []
        for mode, workers, cold, limit in runs:
            cmd = [sys.executable, __file__, "--measure", str(store), mode, str(workers), "1" if cold else "0",
                   "--batch-size", str(args.batch_size), "--limit", str(limit)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode:
                print(res.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"measurement {mode} workers={workers} failed")
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"\nloader, batch {args.batch_size}, {args.n} samples of (10, 32, 32), "
              f"{os.cpu_count()} CPUs (shared machine: noisy)")
        head = f"{'mode':<10}{'workers':>8}{'cache':>7}{'samples':>10}{'s':>8}{'samples/s':>11}" \
               f"{'peak RSS main MB':>18}{'worker MB':>11}"
        print(head)
        print("-" * len(head))
        for r in rows:
            print(f"{r['mode']:<10}{r['workers']:>8}{'cold' if r['cold'] else 'warm':>7}{r['samples']:>10}"
                  f"{r['seconds']:>8}{r['samples_per_s']:>11}{r['peak_rss_main_mb']:>18}"
                  f"{r['peak_rss_worker_mb']:>11}")
    finally:
        if not args.keep:
            shutil.rmtree(root if not args.dir else store, ignore_errors=True)


if __name__ == "__main__":
    main()
