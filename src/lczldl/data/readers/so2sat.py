"""Reader of the original So2Sat LCZ42 release (v2 and v3, TorchGeo's layout).

v2: one folder with ``training.h5``, ``validation.h5``, ``testing.h5``; v3: folders ``random/``,
``block/``, ``culture_10/`` each with ``training.h5`` and ``testing.h5``. Keys: ``sen1``
(N,32,32,8, optional here), ``sen2`` (N,32,32,10) reflectance, ``label`` (N,17) one-hot (LCZ 1..17
in columns 0..16). These files carry no expert votes, so only the one-hot regimes (onehot,
onehot_ls) can use them: there is no vote distribution, entropy or Dawid-Skene target
(``lczldl data prepare --so2sat``, :mod:`lczldl.data.prepare_so2sat`).

:func:`open_so2sat` reads and validates ``label`` (one 1 per row) and the shapes/row counts of
``sen1``/``sen2`` without reading pixels; pixels are read lazily by row range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lczldl.constants import N_LCZ
from lczldl.data.readers._h5 import check_patch_shape, dataset, open_h5, probe_ends, read_all, read_rows
from lczldl.errors import DataError

V2_FILES = {"train": "training.h5", "val": "validation.h5", "test": "testing.h5"}
V3_VARIANTS = ("random", "block", "culture_10")
#: TorchGeo's version names -> the v3 variant folder (None: v2, its files in the root folder)
VERSIONS: dict[str, str | None] = {"2": None, **{f"3_{v}": v for v in V3_VARIANTS}}
#: rows of ``label`` read at a time when a file is opened
LABEL_BLOCK = 65536


@dataclass
class So2SatFile:
    """One validated So2Sat LCZ42 file; pixels stay on disk until read."""

    path: Path
    n: int
    label: np.ndarray  # (N,) int64 class index 0..16 (LCZ id - 1)
    has_sen1: bool

    def _read(self, key: str, start: int, stop: int) -> np.ndarray:
        return read_rows(self.path, key, start, stop, self.n)

    def read_sen2(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``sen2`` as float32 (n, 32, 32, 10) reflectance."""
        return self._read("sen2", start, stop)

    def read_sen1(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``sen1`` as float32 (n, 32, 32, 8)."""
        if not self.has_sen1:
            raise DataError(f"{self.path}: no 'sen1' in this file")
        return self._read("sen1", start, stop)


def open_so2sat(path: Path) -> So2SatFile:
    """Open and validate one So2Sat LCZ42 v2/v3 file (labels read, pixels not)."""
    path = Path(path)
    with open_h5(path) as f:
        sen2 = dataset(f, path, "sen2", 4)
        check_patch_shape(sen2, path, "sen2", 10)
        n = sen2.shape[0]
        if n == 0:
            raise DataError(f"{path}: 'sen2' has no rows (empty file)")
        has_sen1 = "sen1" in f
        if has_sen1:
            sen1 = dataset(f, path, "sen1", 4)
            check_patch_shape(sen1, path, "sen1", 8)
            if sen1.shape[0] != n:
                raise DataError(f"{path}: 'sen1' has {sen1.shape[0]} rows but 'sen2' has {n}")
        y_ds = dataset(f, path, "label", 2)
        if y_ds.shape != (n, N_LCZ):
            raise DataError(f"{path}: 'label' has shape {y_ds.shape}, expected ({n}, {N_LCZ}) one-hot "
                            "(same rows as 'sen2')")
        label = np.empty(n, dtype=np.int64)
        for a in range(0, n, LABEL_BLOCK):          # in blocks: memory does not grow with the file
            y = read_all(y_ds, path, "label", slice(a, min(a + LABEL_BLOCK, n)))
            bad = ((y != 0) & (y != 1)).any(axis=1) | (y.sum(axis=1) != 1)
            if bad.any():
                raise DataError(f"{path}: 'label' rows are not one-hot (first bad row {a + int(np.nonzero(bad)[0][0])})")
            label[a:a + len(y)] = y.argmax(axis=1)
        probe_ends(sen2, path, "sen2", n)
    return So2SatFile(path=path, n=n, label=label, has_sen1=has_sen1)


def find_so2sat_files(root: Path, variant: str | None = None) -> dict[str, Path]:
    """Split name ("train", "val", "test") -> file.

    ``root`` is a v2 folder (training/validation/testing.h5), a v3 variant folder (training/
    testing.h5), or a v3 top folder together with ``variant`` (random | block | culture_10).
    training.h5 and testing.h5 are required; validation.h5 is optional (absent in v3).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: So2Sat folder not found")
    if variant is not None:
        if variant not in V3_VARIANTS:
            raise DataError(f"{root}: unknown So2Sat v3 variant '{variant}', use one of {', '.join(V3_VARIANTS)}")
        base = root / variant
    else:
        base = root
        present = [v for v in V3_VARIANTS if (root / v).is_dir()]
        if present and not (root / V2_FILES["train"]).exists():
            raise DataError(f"{root}: So2Sat v3 folder; choose a variant ({', '.join(present)})")
    found = {s: base / name for s, name in V2_FILES.items() if (base / name).is_file()}
    missing = [V2_FILES[s] for s in ("train", "test") if s not in found]
    if missing:
        raise DataError(f"{base}: missing {', '.join(missing)} (So2Sat LCZ42 v2 / v3 layout: "
                        "training.h5, [validation.h5,] testing.h5)")
    return found
