"""Owns writing a map's files: tiled, deflate-compressed GeoTIFFs with internal overviews and
provenance tags, and the preview; each is written under a temporary name and renamed at the end
(:func:`lczldl.fileio.atomic_paths`), so the final names only ever hold complete files.

Files (names in :mod:`lczldl.layout`; all on the map grid of :mod:`lczldl.maps.grid`, the scene's CRS):
- ``lcz.tif``          uint8, LCZ id 1..K of the argmax, nodata 0; overviews by mode (categorical)
- ``probability.tif``  float32, one band per class (band k = LCZ k), nodata NaN; overviews by average
- ``entropy.tif``      float32, predictive entropy in nats, nodata NaN
- ``confidence.tif``   float32, max class probability, nodata NaN
- ``preview.png``      LCZ map in the standard colours with legend, beside the entropy map
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from lczldl.distributions import entropy_nats
from lczldl.errors import SceneError
from lczldl.fileio import atomic_paths
from lczldl.layout import MAP_CONFIDENCE, MAP_ENTROPY, MAP_GEOTIFFS, MAP_LCZ, MAP_PREVIEW, MAP_PROBABILITY
from lczldl.maps.grid import OutputGrid
from lczldl.maps.preview import write_preview

#: GeoTIFF tile edge (px); overviews are added until one tile holds the whole map
TILE = 256


def summarize_probs(probs: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, K) probabilities -> LCZ id uint8 (0 = nodata), entropy (nats), confidence."""
    safe = np.where(valid[..., None], probs, 1.0 / probs.shape[-1])
    lcz = (safe.argmax(-1) + 1).astype(np.uint8)
    lcz[~valid] = 0
    ent = entropy_nats(safe.reshape(-1, safe.shape[-1])).reshape(safe.shape[:-1]).astype(np.float32)
    conf = safe.max(-1).astype(np.float32)
    ent[~valid] = np.nan
    conf[~valid] = np.nan
    return lcz, ent, conf


def overview_factors(rows: int, cols: int, tile: int = TILE) -> list[int]:
    """2, 4, 8, ... while the previous level is larger than one tile (gdaladdo's automatic rule)."""
    out, f = [], 2
    while max(rows, cols) / (f // 2) > tile:
        out.append(f)
        f *= 2
    return out


def geotiff_profile(grid: OutputGrid, crs, count: int, dtype: str, nodata: float) -> dict:
    """Creation options of a map GeoTIFF: tiled (256 px, or one tile of a multiple of 16 px for small
    maps), deflate (with the floating-point predictor for float32)."""
    tile = min(TILE, 16 * -(-max(grid.rows, grid.cols) // 16))  # small maps: one small tile
    profile = dict(driver="GTiff", width=grid.cols, height=grid.rows, crs=crs, transform=grid.transform,
                   count=count, dtype=dtype, nodata=nodata, tiled=True, blockxsize=tile, blockysize=tile,
                   compress="deflate", interleave="band" if count > 1 else "pixel")
    if dtype == "float32":
        profile["predictor"] = 3
    return profile


def _finish(dst, resampling_name: str, tags: Mapping[str, str], descriptions: list[str]) -> None:
    from rasterio.enums import Resampling

    factors = overview_factors(dst.height, dst.width)
    if factors:
        dst.build_overviews(factors, getattr(Resampling, resampling_name))
        dst.update_tags(ns="rio_overview", resampling=resampling_name)
    dst.update_tags(**tags)
    for k, text in enumerate(descriptions, start=1):
        dst.set_band_description(k, text)


def write_map(out: Path, grid: OutputGrid, crs, num_classes: int,
              blocks: Iterable[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]],
              tags: Mapping[str, str], source: str, note: str | None = None) -> None:
    """Write the four GeoTIFFs and the preview into ``out`` from ``blocks`` of (chunk (r0, r1, c0, c1),
    probs (r, c, K), valid (r, c)); SceneError (and nothing under the final names) when no window
    holds data. ``tags`` go into every GeoTIFF; ``note`` (which LCZ the model names) under the
    preview's legend."""
    import rasterio
    from rasterio.windows import Window

    specs = {
        MAP_LCZ: (1, "uint8", 0, "mode", ["LCZ id of the most probable class (0 = no data)"]),
        MAP_PROBABILITY: (num_classes, "float32", float("nan"), "average",
                          [f"LCZ {k + 1} probability" for k in range(num_classes)]),
        MAP_ENTROPY: (1, "float32", float("nan"), "average", ["predictive entropy (nats)"]),
        MAP_CONFIDENCE: (1, "float32", float("nan"), "average", ["probability of the predicted class"]),
    }
    has_data = False
    lcz_full = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    ent_full = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    with atomic_paths([out / name for name in MAP_GEOTIFFS]) as paths:
        tmp = {p.name: t for p, t in paths.items()}
        dsts = {}
        try:
            for name, (count, dtype, nodata, _, _) in specs.items():
                dsts[name] = rasterio.open(tmp[name], "w", **geotiff_profile(grid, crs, count, dtype, nodata))
            for (r0, r1, c0, c1), probs, valid in blocks:
                has_data = has_data or bool(valid.any())
                lcz, ent, conf = summarize_probs(probs, valid)
                win = Window(c0, r0, c1 - c0, r1 - r0)
                dsts[MAP_LCZ].write(lcz, 1, window=win)
                dsts[MAP_PROBABILITY].write(probs.transpose(2, 0, 1), window=win)
                dsts[MAP_ENTROPY].write(ent, 1, window=win)
                dsts[MAP_CONFIDENCE].write(conf, 1, window=win)
                lcz_full[r0:r1, c0:c1] = lcz
                ent_full[r0:r1, c0:c1] = ent
            if has_data:
                for name, (_, _, _, resampling, descriptions) in specs.items():
                    _finish(dsts[name], resampling, tags, descriptions)
        finally:
            for d in dsts.values():
                d.close()
        if not has_data:  # leaves no GeoTIFF, temporary or final
            raise SceneError(f"{source}: every window touches nodata pixels or is too cloudy; nothing to map")
        write_preview(lcz_full, ent_full, out / MAP_PREVIEW, num_classes=num_classes, note=note)
