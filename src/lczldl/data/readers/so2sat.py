"""Reader of the original So2Sat LCZ42 release (v2 and v3, TorchGeo's layout).

v2: ``training.h5``, ``validation.h5``, ``testing.h5``; v3: folders ``random/``, ``block/``,
``culture_10/`` each with ``training.h5`` and ``testing.h5``. Keys: ``sen1`` (N,32,32,8),
``sen2`` (N,32,32,10), ``label`` (N,17) one-hot. These files carry no votes, so only the one-hot
regimes can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lczldl.constants import N_LCZ
from lczldl.data.readers._h5 import check_patch_shape, dataset, open_h5, read_all
from lczldl.errors import DataError

V2_FILES = {"train": "training.h5", "val": "validation.h5", "test": "testing.h5"}
V3_VARIANTS = ("random", "block", "culture_10")


@dataclass
class So2SatFile:
    path: Path
    n: int
    label: np.ndarray  # (N,) class index 0..16
    has_sen1: bool

    def read_sen2(self, start: int, stop: int) -> np.ndarray:
        with open_h5(self.path) as f:
            return np.asarray(f["sen2"][start:stop], dtype=np.float32)

    def read_sen1(self, start: int, stop: int) -> np.ndarray:
        if not self.has_sen1:
            raise DataError(f"{self.path}: no 'sen1' in this file")
        with open_h5(self.path) as f:
            return np.asarray(f["sen1"][start:stop], dtype=np.float32)


def open_so2sat(path: Path) -> So2SatFile:
    path = Path(path)
    with open_h5(path) as f:
        sen2 = dataset(f, path, "sen2", 4)
        check_patch_shape(sen2, path, "sen2", 10)
        has_sen1 = "sen1" in f
        if has_sen1:
            sen1 = dataset(f, path, "sen1", 4)
            check_patch_shape(sen1, path, "sen1", 8)
            if sen1.shape[0] != sen2.shape[0]:
                raise DataError(f"{path}: 'sen1' has {sen1.shape[0]} rows but 'sen2' has {sen2.shape[0]}")
        y = read_all(dataset(f, path, "label", 2), path, "label")
        n = sen2.shape[0]
    if y.shape != (n, N_LCZ):
        raise DataError(f"{path}: 'label' has shape {y.shape}, expected ({n}, {N_LCZ}) one-hot")
    if n == 0:
        raise DataError(f"{path}: no rows")
    if ((y != 0) & (y != 1)).any() or not np.all(y.sum(axis=1) == 1):
        raise DataError(f"{path}: 'label' rows are not one-hot")
    return So2SatFile(path=path, n=n, label=y.argmax(axis=1), has_sen1=has_sen1)


def find_so2sat_files(root: Path, variant: str | None = None) -> dict[str, Path]:
    """Split name -> file for a v2 folder, or for ``root/variant`` of a v3 folder."""
    root = Path(root)
    base = root / variant if variant else root
    if variant and variant not in V3_VARIANTS:
        raise DataError(f"{root}: unknown So2Sat v3 variant '{variant}', use one of {', '.join(V3_VARIANTS)}")
    found = {s: base / name for s, name in V2_FILES.items() if (base / name).exists()}
    if "train" not in found or "test" not in found:
        raise DataError(f"{base}: expected training.h5 and testing.h5 (So2Sat LCZ42 v2 / v3 layout)")
    return found
