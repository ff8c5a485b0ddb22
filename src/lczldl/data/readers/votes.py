"""Reader of the label-evaluation release (mediatum 1659039): one HDF5 file per city.

- ``{city}.h5`` (European cities): ``sen2`` (N,32,32,10) reflectance, ``label`` (N,12) integers:
  columns 0-10 = 11 expert votes (LCZ 1..17, 0 = no vote), column 11 = original So2Sat label.
- ``{city}_addon.h5`` (addon cities): ``sen2`` (N,32,32,10) and ``label`` (N,k) votes only;
  the ground truth of every addon image is LCZ 7.
``sen1`` and ``img_coord`` may be present and are ignored. ``sen2`` is required in addon files too
(the real ones hold the images the models are trained on).

:func:`open_city` validates everything but the pixel values without reading all pixels: the file
exists, is HDF5 and opens (a truncated file fails here), ``sen2`` and ``label`` exist with the
expected rank/shape/band count and the same number of rows > 0, ``label`` is integer-valued with
vote ids in 0..17 (original labels 1..17), and the first and last ``sen2`` rows can be read (a
cut-off data block fails here). Pixels are then read in chunks with :meth:`CityFile.read_sen2`;
:func:`nonfinite_rows` flags rows with NaN/inf pixels. Every problem is a one-line DataError
naming the file, the key and the problem.

:func:`find_city_files` treats any other ``*.h5`` name in the raw folder as an error (a misnamed
or foreign file should not be silently left out of a study).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lczldl.constants import ADDON_CITIES, ADDON_LABEL, ALL_CITIES, EUROPEAN_CITIES, N_EXPERTS, N_LCZ
from lczldl.data.readers._h5 import (
    check_patch_shape,
    dataset,
    open_h5,
    probe_ends,
    read_all,
    read_rows,
)
from lczldl.errors import DataError
from lczldl.fileio import file_sha256

#: what the release appends to an addon city's file name
ADDON_SUFFIX = "_addon"


@dataclass
class CityFile:
    """One validated vote file; pixels stay on disk until :meth:`read_sen2`."""

    city: str
    path: Path
    is_addon: bool
    n: int
    votes: np.ndarray      # (N, V) int64 LCZ ids 0..17, column = expert (V = 11 for cities)
    original: np.ndarray   # (N,) int64 original So2Sat label, LCZ id (7 for addons)

    @property
    def n_votes(self) -> int:
        """Number of vote columns V."""
        return int(self.votes.shape[1])

    def read_sen2(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``sen2`` as float32 (n, 32, 32, 10) reflectance (as stored)."""
        return read_rows(self.path, "sen2", start, stop, self.n)

    def sha256(self) -> str:
        """Hex sha256 of the whole file (streamed in 1 MiB blocks)."""
        return file_sha256(self.path)


def city_of(path: Path) -> tuple[str, bool]:
    """``berlin.h5`` -> ("berlin", False); ``mumbai_addon.h5`` -> ("mumbai", True)."""
    stem = Path(path).stem
    if stem.endswith(ADDON_SUFFIX):
        return stem[: -len(ADDON_SUFFIX)], True
    return stem, False


def city_file_name(city: str, addon: bool) -> str:
    """The release's file name of a city: ``berlin.h5``, ``mumbai_addon.h5``."""
    return f"{city}{ADDON_SUFFIX}.h5" if addon else f"{city}.h5"


def find_city_files(raw_dir: Path) -> dict[str, Path]:
    """Map city name -> vote file in ``raw_dir``. Unknown ``.h5`` names are an error."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: raw vote folder not found")
    found: dict[str, Path] = {}
    for p in sorted(raw_dir.glob("*.h5")):
        city, addon = city_of(p)
        expected = ADDON_CITIES if addon else EUROPEAN_CITIES
        if city not in expected:
            raise DataError(f"{p}: unknown city file; expected {{city}}.h5 for {', '.join(EUROPEAN_CITIES)} "
                            f"or {{city}}_addon.h5 for {', '.join(ADDON_CITIES)}")
        found[city] = p
    if not found:
        raise DataError(f"{raw_dir}: no vote files ({{city}}.h5 / {{city}}_addon.h5); "
                        "create the twin with `lczldl data synth` or download mediatum 1659039")
    return {c: found[c] for c in ALL_CITIES if c in found}


def open_city(path: Path) -> CityFile:
    """Open and validate one vote file (everything but pixel values)."""
    path = Path(path)
    city, is_addon = city_of(path)
    if city not in (ADDON_CITIES if is_addon else EUROPEAN_CITIES):
        raise DataError(f"{path}: unknown city file name; expected {{city}}.h5 for {', '.join(EUROPEAN_CITIES)} "
                        f"or {{city}}_addon.h5 for {', '.join(ADDON_CITIES)}")
    with open_h5(path) as f:
        sen2 = dataset(f, path, "sen2", 4)
        check_patch_shape(sen2, path, "sen2", 10)
        label = dataset(f, path, "label", 2)
        n = label.shape[0]
        if n == 0:
            raise DataError(f"{path}: 'label' has no rows (empty city file)")
        if sen2.shape[0] != n:
            raise DataError(f"{path}: 'sen2' has {sen2.shape[0]} rows but 'label' has {n}; "
                            "both must have one row per image")
        raw = read_all(label, path, "label")
        probe_ends(sen2, path, "sen2", n)
    if raw.dtype == bool or not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise DataError(f"{path}: 'label' has dtype {raw.dtype}, expected integers")
    if np.issubdtype(raw.dtype, np.floating):
        if not np.isfinite(raw).all() or (raw != np.round(raw)).any():
            raise DataError(f"{path}: 'label' holds non-integer values (NaN, inf or fractions); "
                            "expected integer LCZ ids")
    raw = raw.astype(np.int64)
    width = raw.shape[1]
    if is_addon:
        if width < 1 or width > N_EXPERTS:
            raise DataError(f"{path}: 'label' has {width} columns, addon files hold 1..{N_EXPERTS} vote columns")
        votes, original = raw, np.full(n, ADDON_LABEL, dtype=np.int64)
    else:
        if width != N_EXPERTS + 1:
            raise DataError(f"{path}: 'label' has {width} columns, expected {N_EXPERTS + 1} "
                            f"({N_EXPERTS} votes + original label)")
        votes, original = raw[:, :N_EXPERTS], raw[:, N_EXPERTS]
        if original.min() < 1 or original.max() > N_LCZ:
            raise DataError(f"{path}: 'label' column {N_EXPERTS} (original label) must hold LCZ ids 1..{N_LCZ}, "
                            f"found {int(original[(original < 1) | (original > N_LCZ)][0])}")
    if votes.min() < 0 or votes.max() > N_LCZ:
        bad = votes[(votes < 0) | (votes > N_LCZ)]
        raise DataError(f"{path}: 'label' vote ids must be 0..17 (0 = no vote), found {int(bad[0])}")
    return CityFile(city=city, path=path, is_addon=is_addon, n=n, votes=votes, original=original)


def nonfinite_rows(sen2_chunk: np.ndarray) -> np.ndarray:
    """(n, ...) pixels -> (n,) bool, True where any value of the row is NaN or +-inf."""
    a = np.asarray(sen2_chunk)
    return ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
