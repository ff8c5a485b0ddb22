"""Shared HDF5 validation helpers for the readers (one-line DataError messages)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from lczldl.errors import DataError


def open_h5(path: Path) -> h5py.File:
    """Open an HDF5 file read-only; missing, not-HDF5 or truncated files raise DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot open HDF5 file, truncated or corrupt ({str(exc).splitlines()[0]})") from None


def dataset(f: h5py.File, path: Path, key: str, ndim: int) -> h5py.Dataset:
    if key not in f:
        raise DataError(f"{path}: missing key '{key}' (has: {', '.join(sorted(f.keys())) or 'nothing'})")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{path}: '{key}' is a group, expected a dataset")
    if ds.ndim != ndim:
        raise DataError(f"{path}: '{key}' has rank {ds.ndim} (shape {ds.shape}), expected rank {ndim}")
    return ds


def read_all(ds: h5py.Dataset, path: Path, key: str, rows: slice | None = None) -> np.ndarray:
    """The whole dataset, or its ``rows``; DataError when the file is damaged."""
    try:
        return ds[()] if rows is None else ds[rows]
    except OSError as exc:
        raise DataError(f"{path}: cannot read '{key}', file truncated or corrupt ({str(exc).splitlines()[0]})") from None


def read_rows(path: Path, key: str, start: int, stop: int, n: int) -> np.ndarray:
    """Rows [start, stop) of dataset ``key`` as float32; DataError when the file is damaged."""
    if not 0 <= start <= stop <= n:
        raise ValueError(f"rows {start}:{stop} outside 0:{n}")
    with open_h5(path) as f:
        try:
            return np.asarray(f[key].astype(np.float32)[start:stop])   # converted by HDF5: no float64 copy
        except OSError as exc:
            raise DataError(f"{path}: cannot read '{key}' rows {start}:{stop}, file truncated "
                            f"or corrupt ({str(exc).splitlines()[0]})") from None


def probe_ends(ds: h5py.Dataset, path: Path, key: str, n: int) -> None:
    """Cheap truncation check: read the first and last row of ``ds``."""
    for row in {0, n - 1}:
        try:
            ds[row:row + 1]
        except OSError as exc:
            raise DataError(f"{path}: cannot read '{key}' row {row}, file truncated or corrupt "
                            f"({str(exc).splitlines()[0]})") from None


def check_patch_shape(ds: h5py.Dataset, path: Path, key: str, bands: int) -> None:
    if tuple(ds.shape[1:]) != (32, 32, bands):
        raise DataError(f"{path}: '{key}' has shape {ds.shape}, expected (N, 32, 32, {bands})")
