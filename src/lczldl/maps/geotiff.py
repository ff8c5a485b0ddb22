"""Owns how a map GeoTIFF is laid out: the tiled staging GeoTIFF, the Cloud-Optimised GeoTIFF made
from it (GDAL's COG driver through ``rasterio.shutil.copy``), the official LCZ colour table and the
GDAL class metadata (PAM sidecar).

- Staging: tiled (256 px, or one tile of a multiple of 16 px for small maps), deflate-compressed
  GeoTIFF written window by window while the map's chunks are read.
- COG: GDAL's COG layout (tiles, overviews down to one tile, deflate with a predictor, overviews
  resampled by mode for class maps and by average for probabilities), copied from the staging file
  at the end; tags, band descriptions, nodata and a one-band colour table are copied with it.
- Colours: the official LCZ colour table (:data:`lczldl.constants.LCZ_COLORS`, the global LCZ map's
  and the LCZ Generator's palette; Stewart & Oke 2012 / WUDAPT), 0 = no data transparent.
- A GeoTIFF keeps a colour table only in a one-band (paletted) file, so ``lcz_filter.tif`` embeds
  it; for the three-band ``lcz.tif`` GDAL keeps band 1's colour table in its PAM sidecar
  ``lcz.tif.aux.xml`` (GDAL reads it for band 1 only). The sidecars also carry the class names
  (GDAL category names) of the class bands, so ``gdalinfo`` and QGIS show named classes in colour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES
from lczldl.maps.grid import OutputGrid

#: GeoTIFF tile edge (px); overviews are added until one tile holds the whole map
TILE = 256
#: the COG driver's smallest tile edge (px)
COG_MIN_TILE = 128


def tile_size(grid: OutputGrid) -> int:
    """Tile edge of a staging file: :data:`TILE`, or for small maps one tile of a multiple of 16 px."""
    return min(TILE, 16 * math.ceil(max(grid.rows, grid.cols) / 16))


def cog_tile_size(grid: OutputGrid) -> int:
    """Tile edge of a COG: :data:`TILE`, or :data:`COG_MIN_TILE` for maps that fit in one such tile."""
    return COG_MIN_TILE if max(grid.rows, grid.cols) <= COG_MIN_TILE else TILE


def geotiff_profile(grid: OutputGrid, crs, count: int, dtype: str, nodata: float) -> dict:
    """Creation options of a staging GeoTIFF: tiled, deflate (with the floating-point predictor for
    float32), band-interleaved."""
    tile = tile_size(grid)
    profile = dict(driver="GTiff", width=grid.cols, height=grid.rows, crs=crs, transform=grid.transform,
                   count=count, dtype=dtype, nodata=nodata, tiled=True, blockxsize=tile, blockysize=tile,
                   compress="deflate", interleave="band" if count > 1 else "pixel")
    if dtype == "float32":
        profile["predictor"] = 3
    return profile


def lcz_rgba(num_classes: int) -> dict[int, tuple[int, int, int, int]]:
    """Colour table: 0 transparent (no data), LCZ k = 1..K in the official colour."""
    table = {0: (0, 0, 0, 0)}
    for k in range(1, num_classes + 1):
        h = LCZ_COLORS[k - 1].lstrip("#")
        table[k] = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255)
    return table


def lcz_category_names(num_classes: int) -> list[str]:
    """GDAL category names by value: "" for 0, then "LCZ 1 Compact high-rise", ..., "LCZ A Dense trees"."""
    return [""] + [f"LCZ {LCZ_CODES[k]} {LCZ_NAMES[k]}" for k in range(num_classes)]


def pam_xml(num_classes: int, class_bands: Sequence[int], color_band: int | None) -> str:
    """GDAL PAM sidecar text: category names on ``class_bands`` (1-based), the LCZ colour table on
    ``color_band`` (GDAL reads a sidecar colour table for band 1 only)."""
    names = "".join(f"      <Category>{escape(n)}</Category>\n" for n in lcz_category_names(num_classes))
    entries = "".join(f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}" />\n'
                      for _, (r, g, b, a) in sorted(lcz_rgba(num_classes).items()))
    bands = []
    for band in class_bands:
        color = (f"    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>\n{entries}    </ColorTable>\n"
                 if band == color_band else "")
        bands.append(f'  <PAMRasterBand band="{band}">\n{color}    <CategoryNames>\n{names}'
                     f"    </CategoryNames>\n  </PAMRasterBand>\n")
    return "<PAMDataset>\n" + "".join(bands) + "</PAMDataset>\n"


def finish_stage(dst, tags: Mapping[str, str], descriptions: Sequence[str]) -> None:
    """Tags and band descriptions of an open staging file (a one-band class map's colour table is
    written when it is opened, before any pixel: GDAL cannot change it later)."""
    dst.update_tags(**tags)
    for k, text in enumerate(descriptions, start=1):
        dst.set_band_description(k, text)


def make_cog(stage: Path, dst: Path, resampling: str, tile: int) -> None:
    """Copy the staging GeoTIFF ``stage`` to ``dst`` in GDAL's COG layout (no PAM sidecar is
    written: class metadata goes into the map's own sidecar, :func:`pam_xml`)."""
    import rasterio
    import rasterio.shutil

    with rasterio.open(stage) as src:
        predictor = "YES" if src.dtypes[0] == "float32" else "NO"
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        rasterio.shutil.copy(stage, dst, driver="COG", compress="DEFLATE", predictor=predictor,
                             blocksize=tile, overview_resampling=resampling.upper(), bigtiff="IF_SAFER")
