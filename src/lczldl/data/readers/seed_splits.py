"""Reader of the seed code's split files: training.h5 / validation.h5 / testing.h5.

Keys: ``sen2`` (N,32,32,10), ``y`` (N,17) one-hot majority label, ``y_distributional_urban``
(N_urban,10): the urban vote distributions of the rows whose majority is LCZ 1..10, in row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lczldl.constants import N_LCZ, N_URBAN
from lczldl.data.readers._h5 import check_patch_shape, dataset, open_h5, read_all
from lczldl.errors import DataError


@dataclass
class SeedSplit:
    path: Path
    n: int
    label: np.ndarray          # (N,) class index 0..16
    urban: np.ndarray          # (N,) bool, majority in LCZ 1..10
    distribution: np.ndarray   # (N_urban, 10)

    def read_sen2(self, start: int, stop: int) -> np.ndarray:
        with open_h5(self.path) as f:
            return np.asarray(f["sen2"][start:stop], dtype=np.float32)


def read_seed_split(path: Path) -> SeedSplit:
    path = Path(path)
    with open_h5(path) as f:
        sen2 = dataset(f, path, "sen2", 4)
        check_patch_shape(sen2, path, "sen2", 10)
        y = read_all(dataset(f, path, "y", 2), path, "y")
        dist = read_all(dataset(f, path, "y_distributional_urban", 2), path, "y_distributional_urban")
        n = sen2.shape[0]
    if y.shape != (n, N_LCZ):
        raise DataError(f"{path}: 'y' has shape {y.shape}, expected ({n}, {N_LCZ}) one-hot")
    if not np.allclose(y.sum(axis=1), 1.0) or ((y != 0) & (y != 1)).any():
        raise DataError(f"{path}: 'y' rows are not one-hot")
    label = y.argmax(axis=1)
    urban = label < N_URBAN
    if dist.shape != (int(urban.sum()), N_URBAN):
        raise DataError(f"{path}: 'y_distributional_urban' has shape {dist.shape}, expected "
                        f"({int(urban.sum())}, {N_URBAN}) = one row per urban-majority row of 'y'")
    if not np.isfinite(dist).all() or not np.allclose(dist.sum(axis=1), 1.0, atol=1e-4):
        raise DataError(f"{path}: 'y_distributional_urban' rows must be finite and sum to 1")
    return SeedSplit(path=path, n=n, label=label, urban=urban, distribution=dist.astype(np.float32))
