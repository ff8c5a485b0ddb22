"""Owns the synthetic So2Sat LCZ42 release: files in TorchGeo's layout and names that
:mod:`lczldl.data.readers.so2sat` and ``lczldl data prepare --so2sat`` read like the real ones
(tests, ``benchmarks/bench_prepare_so2sat.py``, trying the So2Sat path without the 52 GB download).

Layout (TorchGeo's ``So2Sat``): version "2": ROOT/{training,validation,testing}.h5; versions
"3_random", "3_block", "3_culture_10": ROOT/{random,block,culture_10}/{training,testing}.h5. Each
file: ``sen1`` (N,32,32,8) and ``sen2`` (N,32,32,10) float64, ``label`` (N,17) float64 one-hot (LCZ
1-17 in columns 0-16), uncompressed and contiguous like the real files.

Not realistic imagery: each class has its own mean spectrum (drawn once from the seed), each patch
that spectrum times a brightness factor plus pixel noise, reflectance quantised to 1e-4 (the real
DN / 10000); classes are separable, so a tiny model learns them. ``sen1`` is noise (prepare never
reads it). Files are written in row blocks, so writing a file larger than memory needs one block.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from lczldl.constants import N_LCZ, PATCH_SIZE
from lczldl.data.readers.so2sat import V2_FILES, VERSIONS
from lczldl.errors import DataError

#: bands of ``sen2`` / ``sen1``
S2_BANDS, S1_BANDS = 10, 8
#: rows written at a time
BLOCK = 2048


def _spectra(seed: int) -> np.ndarray:
    """(17, 10) mean reflectance of each class."""
    return np.random.default_rng([seed, 17]).uniform(0.03, 0.35, size=(N_LCZ, S2_BANDS))


def _write_file(path: Path, labels: np.ndarray, spectra: np.ndarray, seed: int, sen1: bool, block: int) -> None:
    """One So2Sat file with the given (N,) class indices, written block by block."""
    n = len(labels)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        shape2 = (n, PATCH_SIZE, PATCH_SIZE, S2_BANDS)
        ds2 = f.create_dataset("sen2", shape=shape2, dtype="f8")
        ds1 = f.create_dataset("sen1", shape=(n, PATCH_SIZE, PATCH_SIZE, S1_BANDS), dtype="f8") if sen1 else None
        dsl = f.create_dataset("label", shape=(n, N_LCZ), dtype="f8")
        for a in range(0, n, block):
            b = min(a + block, n)
            rng = np.random.default_rng([seed, a])
            lab = labels[a:b]
            bright = rng.uniform(0.8, 1.2, size=(b - a, 1, 1, 1))
            px = spectra[lab][:, None, None, :] * bright + rng.normal(0.0, 0.01, size=(b - a,) + shape2[1:])
            ds2[a:b] = np.round(np.clip(px, 0.0, None), 4)
            if ds1 is not None:
                ds1[a:b] = rng.normal(0.0, 0.1, size=(b - a, PATCH_SIZE, PATCH_SIZE, S1_BANDS))
            onehot = np.zeros((b - a, N_LCZ))
            onehot[np.arange(b - a), lab] = 1.0
            dsl[a:b] = onehot
    tmp.replace(path)


def write_so2sat(root: Path, version: str, per_class: Mapping[str, int], *, seed: int = 0,
                 sen1: bool = True, block: int = BLOCK) -> dict[str, Path]:
    """Write a synthetic So2Sat LCZ42 ``version`` ("2", "3_random", "3_block", "3_culture_10") under
    ``root``; ``per_class``: split ("train", "val" for v2 only, "test") -> patches of each of the 17
    classes in that file (rows in a seeded random class order). Returns split -> path."""
    if version not in VERSIONS:
        raise DataError(f"unknown So2Sat version '{version}'; use one of {', '.join(VERSIONS)}")
    splits = ("train", "val", "test") if VERSIONS[version] is None else ("train", "test")
    if set(per_class) != set(splits):
        raise DataError(f"So2Sat version {version} has the splits {', '.join(splits)}; got {', '.join(per_class)}")
    folder = Path(root) / (VERSIONS[version] or "")
    folder.mkdir(parents=True, exist_ok=True)
    spectra = _spectra(seed)
    out = {}
    for i, s in enumerate(splits):
        rng = np.random.default_rng([seed, i])
        labels = rng.permutation(np.repeat(np.arange(N_LCZ), int(per_class[s])))
        out[s] = folder / V2_FILES[s]
        _write_file(out[s], labels, spectra, seed * 10 + i, sen1, block)
    return out


__all__ = ["write_so2sat"]
