"""Write tiny So2Sat LCZ42 v2 / v3 fixture files for the reader tests (deterministic).

Lives beside the files it writes (TorchGeo's pattern). Layout (TorchGeo's):
so2sat_v2/{training,validation,testing}.h5 and so2sat_v3/{random,block,culture_10}/{training,testing}.h5
in this folder (tests/resources/so2sat), each with
``sen1`` (N,32,32,8) float64, ``sen2`` (N,32,32,10) float64 reflectance and ``label`` (N,17)
float64 one-hot, as in the real release. The pixels are 8 x 8 px blocks quantised to 1e-4 (the real
DN/10000 quantisation) so that gzip keeps the files small; the real files are uncompressed,
which h5py reads the same way.

Usage: python tests/resources/so2sat/data.py [OUT_DIR]   (default: this folder)
Expected label class indices per file are stored as the attribute ``expected_labels``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import h5py
import numpy as np

ROWS = {"training.h5": 3, "validation.h5": 2, "testing.h5": 2}
V3_VARIANTS = ("random", "block", "culture_10")


def _patches(n: int, bands: int, seed: int) -> np.ndarray:
    """(n, 32, 32, bands) float64: 8 x 8 px blocks of values quantised to 1e-4."""
    rng = np.random.default_rng(seed)
    blocks = np.round(rng.uniform(0.02, 0.3, size=(n, 4, 4, bands)), 4)
    return np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2).astype(np.float64)


def _write(path: Path, n: int, seed: int) -> None:
    labels = (np.arange(n) * 5 + seed) % 17
    onehot = np.zeros((n, 17), dtype=np.float64)
    onehot[np.arange(n), labels] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", track_order=False) as f:
        kw = {"compression": "gzip", "compression_opts": 9, "shuffle": True, "track_times": False}
        f.create_dataset("sen1", data=_patches(n, 8, seed) - 0.1, **kw)
        f.create_dataset("sen2", data=_patches(n, 10, seed + 1000), **kw)
        f.create_dataset("label", data=onehot, track_times=False)
        f.attrs["expected_labels"] = labels.astype(np.int64)
    os.replace(tmp, path)


def main(out: Path) -> None:
    seed = 0
    for name, n in ROWS.items():
        _write(out / "so2sat_v2" / name, n, seed)
        seed += 1
    for variant in V3_VARIANTS:
        for name in ("training.h5", "testing.h5"):
            _write(out / "so2sat_v3" / variant / name, ROWS[name], seed)
            seed += 1
    total = sum(p.stat().st_size for p in out.glob("so2sat_v*/**/*.h5"))
    print(f"wrote So2Sat fixtures under {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
