"""Reader of the seed code's split files: training.h5 / validation.h5 / testing.h5.

Keys: ``sen2`` (N,32,32,10) reflectance, ``y`` (N,17) one-hot majority label (LCZ 1..17 in columns
0..16), ``y_distributional_urban`` (N_urban,10): urban vote distributions of the rows whose
majority is LCZ 1..10, in row order, i.e. ``distribution[j]`` belongs to row ``urban_rows[j]``
(= ``np.nonzero(label < 10)[0][j]``). This is how the seed's scripts pair them: they select
``x[indices]``/``y[indices]`` with the urban indices in increasing order and read
``y_distributional_urban`` whole. (Their index expression
``np.where(np.where(y == np.amax(y, 0))[1] + 1 < 11)[0]`` equals those rows only when every one of
the 17 columns is hot somewhere in the file; we use the plain argmax.)

Distribution rows may be all-NaN (a kept row without urban votes, as in the authors' files): they
are accepted and flagged in ``distribution_valid``. Alignment is checked: where a row's
distribution has a unique peak it must equal the majority in ``y`` for at least 95 % of such rows
(a tie resolved to an original label outside the tie can legitimately differ). Rows need not sum to 1 exactly when the file
was written with the authors' smoothing (c + a) / (n (1 + a)); ``row_sums`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lczldl.constants import N_LCZ, N_URBAN
from lczldl.data.readers._h5 import check_patch_shape, dataset, open_h5, read_all, read_rows
from lczldl.errors import DataError

#: Largest share of distribution rows whose unique peak may differ from the majority in ``y``.
ALIGN_TOLERANCE = 0.05


@dataclass
class SeedSplit:
    """One validated seed split file; pixels stay on disk until :meth:`read_sen2`."""

    path: Path
    n: int
    label: np.ndarray               # (N,) int64 class index 0..16 (argmax of y)
    urban: np.ndarray               # (N,) bool, majority in LCZ 1..10
    urban_rows: np.ndarray          # (N_urban,) int64 row index of each distribution row
    distribution: np.ndarray        # (N_urban, 10) float32 as stored (NaN rows kept)
    distribution_valid: np.ndarray  # (N_urban,) bool, False for all-NaN rows

    def read_sen2(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``sen2`` as float32 (n, 32, 32, 10)."""
        return read_rows(self.path, "sen2", start, stop, self.n)


def read_seed_split(path: Path) -> SeedSplit:
    """Open and validate one seed split file (labels and distributions read, pixels not)."""
    path = Path(path)
    with open_h5(path) as f:
        sen2 = dataset(f, path, "sen2", 4)
        check_patch_shape(sen2, path, "sen2", 10)
        y_ds = dataset(f, path, "y", 2)
        d_ds = dataset(f, path, "y_distributional_urban", 2)
        n = sen2.shape[0]
        if n == 0:
            raise DataError(f"{path}: 'sen2' has no rows (empty file)")
        if y_ds.shape[0] != n:
            raise DataError(f"{path}: 'sen2' has {n} rows but 'y' has {y_ds.shape[0]}")
        if y_ds.shape[1] != N_LCZ:
            raise DataError(f"{path}: 'y' has shape {y_ds.shape}, expected ({n}, {N_LCZ}) one-hot")
        y = read_all(y_ds, path, "y")
        dist = read_all(d_ds, path, "y_distributional_urban")
    if ((y != 0) & (y != 1)).any() or not np.all(y.sum(axis=1) == 1):
        raise DataError(f"{path}: 'y' rows are not one-hot (each row needs exactly one 1)")
    label = y.argmax(axis=1).astype(np.int64)
    urban = label < N_URBAN
    n_urban = int(urban.sum())
    if dist.shape != (n_urban, N_URBAN):
        raise DataError(f"{path}: 'y_distributional_urban' has shape {dist.shape}, expected "
                        f"({n_urban}, {N_URBAN}) = one row per urban-majority row of 'y'")
    dist = dist.astype(np.float64)
    all_nan = np.isnan(dist).all(axis=1)
    valid = np.isfinite(dist).all(axis=1)
    if not (valid | all_nan).all():
        raise DataError(f"{path}: 'y_distributional_urban' row {int(np.nonzero(~(valid | all_nan))[0][0])} "
                        "mixes finite and non-finite values")
    d = dist[valid]
    if (d < 0).any() or (d.sum(axis=1) <= 0).any():
        raise DataError(f"{path}: 'y_distributional_urban' has negative or all-zero rows")
    urban_rows = np.nonzero(urban)[0]
    # alignment: the distribution's unique peak is the urban majority, except for rows whose tie
    # was resolved to an original label outside the tie (rare); > 5 % disagreement = misaligned
    top = d.max(axis=1, keepdims=True)
    unique_top = (d == top).sum(axis=1) == 1
    mismatch = unique_top & (d.argmax(axis=1) != label[urban_rows[valid]])
    if unique_top.any() and mismatch.sum() > ALIGN_TOLERANCE * unique_top.sum():
        j = int(np.nonzero(valid)[0][np.nonzero(mismatch)[0][0]])
        raise DataError(f"{path}: 'y_distributional_urban' disagrees with the majority in 'y' on "
                        f"{int(mismatch.sum())} of {int(unique_top.sum())} rows (first: row {j} peaks at class "
                        f"{int(dist[j].argmax())}, 'y' row {int(urban_rows[j])} says {int(label[urban_rows[j]])}); "
                        "the rows are not aligned")
    return SeedSplit(path=path, n=n, label=label, urban=urban, urban_rows=urban_rows,
                     distribution=dist.astype(np.float32), distribution_valid=valid)
