"""Reading Sentinel-2 scenes for mapping: validation, scaling, output grid geometry.

Conventions
- The scene is a GeoTIFF with the 10 So2Sat bands in So2Sat order (constants.BANDS) at 10 m.
- Pixel values are converted to reflectance: ``reflectance = (value + offset) / scale``.
  Float scenes whose values look like reflectance (99th percentile of a sample < 2) use scale 1;
  everything else (integer L1C/L2A digital numbers) uses scale 10000, offset 0. Sentinel-2 L2A
  products of processing baseline >= 04.00 carry BOA_ADD_OFFSET = -1000: pass ``offset=-1000``.
- A 32 x 32 window whose top-left pixel is (row, col) = (i*stride, j*stride) gives output pixel
  (i, j). The output pixel is the stride x stride cell centred on the window centre, so the output
  transform is ``scene_transform @ translation(16 - stride/2, 16 - stride/2) @ scale(stride)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError

from lczldl.constants import BANDS, PATCH_SIZE
from lczldl.errors import SceneError


@dataclass(frozen=True)
class SceneInfo:
    """What the mapper needs to know of a scene (no pixels)."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: object
    transform: Affine
    nodata: float | None


@dataclass(frozen=True)
class OutputGrid:
    """The map grid: one output pixel per window position."""

    rows: int
    cols: int
    stride: int
    transform: Affine


def open_scene(path: Path) -> SceneInfo:
    """Validate a scene for mapping and return its metadata; raises SceneError (one line)."""
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: scene file not found; pass an existing GeoTIFF with --scene")
    try:
        with rasterio.open(path) as src:
            info = SceneInfo(path=path, width=src.width, height=src.height, count=src.count,
                             dtype=src.dtypes[0], crs=src.crs, transform=src.transform,
                             nodata=src.nodata)
    except RasterioIOError as exc:
        raise SceneError(f"{path}: cannot read the scene as a raster ({exc}); pass a GeoTIFF") from None
    if info.count != len(BANDS):
        raise SceneError(f"{path}: scene has {info.count} bands, need {len(BANDS)} "
                         f"({', '.join(BANDS)}, So2Sat order)")
    if info.crs is None:
        raise SceneError(f"{path}: scene has no CRS; georeference it first (e.g. gdal_edit.py -a_srs)")
    if info.width < PATCH_SIZE or info.height < PATCH_SIZE:
        raise SceneError(f"{path}: scene is {info.width}x{info.height} px, smaller than one "
                         f"{PATCH_SIZE}x{PATCH_SIZE} window")
    return info


def output_grid(info: SceneInfo, stride: int) -> OutputGrid:
    """Map grid for windows of PATCH_SIZE at ``stride`` pixels (see module docstring)."""
    if stride <= 0:
        raise SceneError(f"--stride must be a positive number of pixels, got {stride}")
    rows = (info.height - PATCH_SIZE) // stride + 1
    cols = (info.width - PATCH_SIZE) // stride + 1
    half = PATCH_SIZE / 2 - stride / 2
    transform = info.transform @ Affine.translation(half, half) @ Affine.scale(stride)
    return OutputGrid(rows=rows, cols=cols, stride=stride, transform=transform)


def detect_scale(path: Path, info: SceneInfo) -> float:
    """Guess the divisor that turns the scene's values into reflectance (1 or 10000)."""
    if np.issubdtype(np.dtype(info.dtype), np.integer):
        return 10000.0
    with rasterio.open(path) as src:
        h, w = min(info.height, 256), min(info.width, 256)
        window = rasterio.windows.Window((info.width - w) // 2, (info.height - h) // 2, w, h)
        sample = src.read(window=window, out_dtype="float32")
    finite = sample[np.isfinite(sample)]
    if info.nodata is not None:
        finite = finite[finite != info.nodata]
    if finite.size == 0:
        return 1.0
    return 1.0 if float(np.percentile(finite, 99)) < 2.0 else 10000.0


def read_rows(path: Path, info: SceneInfo, row0: int, row1: int, scale: float,
              offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Read scene rows [row0, row1) of all columns as reflectance.

    Returns (pixels (10, rows, width) float32, invalid (rows, width) bool) where invalid marks
    nodata or non-finite pixels in any band.
    """
    window = rasterio.windows.Window(0, row0, info.width, row1 - row0)
    with rasterio.open(path) as src:
        data = src.read(window=window, out_dtype="float32")
    invalid = ~np.isfinite(data).all(axis=0)
    if info.nodata is not None:
        invalid |= (data == np.float32(info.nodata)).any(axis=0)
    data = (data + np.float32(offset)) / np.float32(scale)
    data[:, invalid] = 0.0
    return data, invalid
