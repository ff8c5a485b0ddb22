"""Owns the pixel passes of ``lczldl data prepare``: the optional scan for non-finite pixels and
the one streaming pass that writes each split's ``image.npy`` (uint16 = round(reflectance x
REFLECTANCE_SCALE), channels-first) with the clipped-value counts and the train split's band
statistics. Memory is bounded by one chunk of ``CHUNK`` rows, whatever the size of the release."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lczldl.constants import BANDS, PATCH_SIZE, REFLECTANCE_SCALE
from lczldl.data.readers.votes import nonfinite_rows
from lczldl.errors import DataError
from lczldl.layout import IMAGE, SPLIT_NAMES, array_path

#: rows read from a raw file at a time
CHUNK = 1024
#: (bands, rows, columns) of one stored image
IMAGE_SHAPE = (len(BANDS), PATCH_SIZE, PATCH_SIZE)
#: largest stored pixel value (uint16)
UINT16_MAX = np.iinfo(np.uint16).max


def progress_bar(enabled: bool) -> Any:
    """A transient rich progress bar (disabled: draws nothing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=True)


def to_uint16(px: np.ndarray) -> tuple[np.ndarray, int]:
    """(n, 32, 32, 10) reflectance -> ((n, 10, 32, 32) uint16 = round(x * REFLECTANCE_SCALE),
    number of values clipped to [0, 65535])."""
    scaled = np.rint(np.asarray(px, dtype=np.float32).transpose(0, 3, 1, 2) * np.float32(REFLECTANCE_SCALE))
    clipped = int(np.count_nonzero((scaled < 0) | (scaled > UINT16_MAX)))
    return np.clip(scaled, 0, UINT16_MAX).astype(np.uint16), clipped


def write_npy_header(fh: BinaryIO, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
    """Write a .npy (v1.0) header for a C-order array; the data follows sequentially."""
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
             "shape": tuple(int(s) for s in shape)})


def nonfinite_file_rows(cities: Mapping[str, Any], progress: bool) -> dict[str, np.ndarray]:
    """city -> (n_file,) bool, True where a row has a NaN/inf pixel (one chunked pass per file)."""
    bad_rows: dict[str, np.ndarray] = {}
    with progress_bar(progress) as pb:
        task = pb.add_task("scanning pixels", total=sum(cf.n for cf in cities.values()))
        for c, cf in cities.items():
            bad = np.zeros(cf.n, dtype=bool)
            for a in range(0, cf.n, CHUNK):
                b = min(a + CHUNK, cf.n)
                bad[a:b] = nonfinite_rows(cf.read_sen2(a, b))
                pb.advance(task, b - a)
            bad_rows[c] = bad
    return bad_rows


@dataclass
class PixelStats:
    """What the pixel pass measured: clipped values per split, the train split's band moments."""

    clipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLIT_NAMES, 0))
    band_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS)))
    band_sq: np.ndarray = field(default_factory=lambda: np.zeros(len(BANDS)))
    band_n: int = 0

    def add_train(self, img: np.ndarray) -> None:
        """Accumulate the band moments of (n, 10, 32, 32) uint16 train images (in reflectance)."""
        refl = img.astype(np.float64) / REFLECTANCE_SCALE
        self.band_sum += refl.sum(axis=(0, 2, 3))
        self.band_sq += np.square(refl).sum(axis=(0, 2, 3))
        self.band_n += refl.shape[0] * PATCH_SIZE * PATCH_SIZE

    def band_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and standard deviation of the train split (reflectance)."""
        mean = self.band_sum / max(self.band_n, 1)
        return mean, np.sqrt(np.maximum(self.band_sq / max(self.band_n, 1) - mean ** 2, 0.0))


def write_images(out: Path, cities: Mapping[str, Any], destinations: Mapping[str, np.ndarray],
                 n_split: Mapping[str, int], check_finite: bool, progress: bool) -> PixelStats:
    """Stream every city's pixels once into OUT/{split}/image.npy.

    ``destinations``: city -> (n_file,) int64 split index into SPLIT_NAMES per file row (-1 =
    dropped). With ``check_finite`` a non-finite pixel is a DataError naming the file and how many
    rows have one (after counting them all). Rows land in each split in city order, file order."""
    stats = PixelStats()
    written = dict.fromkeys(SPLIT_NAMES, 0)
    handles: dict[str, BinaryIO] = {}
    try:
        for s in SPLIT_NAMES:
            handles[s] = open(array_path(out, s, IMAGE), "wb")  # noqa: SIM115 - closed below
            write_npy_header(handles[s], (n_split[s],) + IMAGE_SHAPE, np.uint16)
        with progress_bar(progress) as pb:
            task = pb.add_task("writing store", total=sum(cf.n for cf in cities.values()))
            for c, cf in cities.items():
                n_bad = 0
                for a in range(0, cf.n, CHUNK):
                    b = min(a + CHUNK, cf.n)
                    px = cf.read_sen2(a, b)
                    if check_finite:
                        n_bad += int(nonfinite_rows(px).sum())
                    pb.advance(task, b - a)
                    if n_bad:
                        continue                       # keep scanning only to count the bad rows
                    d = destinations[c][a:b]
                    for s_i, s in enumerate(SPLIT_NAMES):
                        sel = np.nonzero(d == s_i)[0]
                        if not sel.size:
                            continue
                        img, n_clip = to_uint16(px[sel])
                        stats.clipped[s] += n_clip
                        handles[s].write(img.tobytes())
                        written[s] += len(sel)
                        if s == SPLIT_NAMES[0]:  # band statistics: the train split
                            stats.add_train(img)
                if n_bad:
                    raise DataError(f"{cf.path}: 'sen2' has non-finite pixels (NaN/inf) in {n_bad} of "
                                    f"{cf.n} rows; pass drop_nonfinite=True to drop those rows",
                                    params=("drop_nonfinite",))
    finally:
        for h in handles.values():
            h.close()
    for s in SPLIT_NAMES:
        if written[s] != n_split[s]:  # pragma: no cover - internal consistency
            raise DataError(f"{array_path(out, s, IMAGE)}: wrote {written[s]} rows, expected {n_split[s]}")
    return stats
