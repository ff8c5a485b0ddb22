"""Owns writing a map's files from its predicted chunks: the per-pixel layers, the staging GeoTIFFs,
the Cloud-Optimised GeoTIFFs with their class metadata (:mod:`lczldl.maps.geotiff`) and the preview.
Every final file is written under a temporary name and renamed at the end
(:func:`lczldl.fileio.atomic_paths`), so the final names only ever hold complete files.

Files (names in :mod:`lczldl.layout`; all on the map grid of :mod:`lczldl.maps.grid`, the scene's CRS):
- ``lcz.tif``          uint8, nodata 0, the LCZ Generator's / global map's band layout (what w2w reads:
  band 1 by default, ``--lcz-band 1`` for the filtered band):
  band 1 ``lcz`` LCZ id 1..K of the argmax (official colour table), band 2 ``lcz_filter`` the
  Gaussian-filtered map (:mod:`lczldl.maps.lczfilter`), band 3 ``lcz_probability`` the argmax
  class's probability in % (a model probability, not the global map's vote share among forests)
- ``lcz_filter.tif``   uint8, nodata 0, the filtered map alone with its colour table embedded
- ``uncertainty.tif``  float32, nodata NaN: ``entropy`` (predictive entropy, nats), with MC dropout
  or an ensemble ``mutual_information`` (nats), with a conformal threshold ``set_size`` (classes in
  the conformal prediction set)
- ``probability.tif``  float32, one band per class (band k = LCZ k), nodata NaN
- ``preview.png``      the LCZ map and the filtered map in the LCZ colours, beside the entropy map
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lczldl.distributions import entropy_nats
from lczldl.errors import SceneError
from lczldl.evaluation.conformal import conformity_scores
from lczldl.fileio import atomic_paths
from lczldl.layout import (
    MAP_CLASS_GEOTIFFS,
    MAP_GEOTIFFS,
    MAP_LCZ,
    MAP_LCZ_FILTER,
    MAP_PREVIEW,
    MAP_PROBABILITY,
    MAP_UNCERTAINTY,
    map_sidecar,
    map_stage_path,
)
from lczldl.maps.geotiff import cog_tile_size, finish_stage, geotiff_profile, lcz_rgba, make_cog, pam_xml
from lczldl.maps.grid import OutputGrid
from lczldl.maps.lczfilter import class_kernels, filter_strips
from lczldl.maps.preview import write_preview

__all__ = ["ConformalThreshold", "band_names", "summarize_probs", "write_map"]

#: rows of the map filtered at once (each read with the filter's halo)
FILTER_STRIP_ROWS = 256


@dataclass(frozen=True)
class ConformalThreshold:
    """A split-conformal threshold that comes with a model: set = {k : score(p, k) <= qhat}
    (:func:`lczldl.evaluation.conformal.conformity_scores`) at coverage ``level`` = 1 - alpha."""

    score: str
    level: float
    qhat: float


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


def probability_percent(conf: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] -> uint8 percent, rounded half to even; 0 = no data (a valid pixel's
    argmax probability is at least 1/K, so at least 6 % for K <= 17)."""
    return np.where(valid, np.rint(np.nan_to_num(conf) * 100.0), 0).astype(np.uint8)


def set_sizes(probs: np.ndarray, valid: np.ndarray, conformal: ConformalThreshold) -> np.ndarray:
    """(rows, cols) float32 number of classes in the conformal set of each pixel, NaN where invalid."""
    out = np.full(valid.shape, np.nan, dtype=np.float32)
    if valid.any():
        p = probs[valid].astype(np.float64)
        out[valid] = (conformity_scores(p, conformal.score) <= conformal.qhat).sum(1)
    return out


def band_names(num_classes: int, mutual_information: bool, conformal: ConformalThreshold | None) -> dict:
    """File -> its band names (the band descriptions)."""
    unc = ["entropy"] + (["mutual_information"] if mutual_information else []) + (
        ["set_size"] if conformal is not None else [])
    return {MAP_LCZ: ["lcz", "lcz_filter", "lcz_probability"], MAP_LCZ_FILTER: ["lcz_filter"],
            MAP_UNCERTAINTY: unc, MAP_PROBABILITY: [f"lcz_{k + 1}_probability" for k in range(num_classes)]}


def _specs(num_classes: int, names: dict) -> dict[str, tuple[int, str, float, str]]:
    """File -> (bands, dtype, nodata, overview resampling)."""
    nan = float("nan")
    return {MAP_LCZ: (3, "uint8", 0, "mode"), MAP_LCZ_FILTER: (1, "uint8", 0, "mode"),
            MAP_UNCERTAINTY: (len(names[MAP_UNCERTAINTY]), "float32", nan, "average"),
            MAP_PROBABILITY: (num_classes, "float32", nan, "average")}


def _stage(out: Path, grid: OutputGrid, crs, num_classes: int, names: dict, blocks: Iterable,
           conformal: ConformalThreshold | None, sigma_m, strip_rows: int,
           tags: Mapping[str, str]) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """Write the staging GeoTIFFs; returns (any data, lcz, lcz_filter, entropy) of the whole map."""
    import rasterio
    from rasterio.windows import Window

    specs = _specs(num_classes, names)
    has_data = False
    lcz_full = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    filt_full = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
    ent_full = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    dsts = {}
    try:
        for name, (count, dtype, nodata, _) in specs.items():
            map_stage_path(out, name).parent.mkdir(parents=True, exist_ok=True)
            dsts[name] = rasterio.open(map_stage_path(out, name), "w",
                                       **geotiff_profile(grid, crs, count, dtype, nodata))
        dsts[MAP_LCZ_FILTER].write_colormap(1, lcz_rgba(num_classes))
        for (r0, r1, c0, c1), probs, valid, mi in blocks:
            has_data = has_data or bool(valid.any())
            lcz, ent, conf = summarize_probs(probs, valid)
            win = Window(c0, r0, c1 - c0, r1 - r0)
            dsts[MAP_LCZ].write(lcz, 1, window=win)
            dsts[MAP_LCZ].write(probability_percent(conf, valid), 3, window=win)
            layers = [ent] + ([np.where(valid, mi, np.nan).astype(np.float32)] if mi is not None else []) + (
                [set_sizes(probs, valid, conformal)] if conformal is not None else [])
            dsts[MAP_UNCERTAINTY].write(np.stack(layers), window=win)
            dsts[MAP_PROBABILITY].write(probs.transpose(2, 0, 1), window=win)
            lcz_full[r0:r1, c0:c1] = lcz
            ent_full[r0:r1, c0:c1] = ent
        kernels = class_kernels(num_classes, abs(grid.transform.a), sigma_m)
        for r0, r1, filtered in filter_strips(lcz_full, kernels, strip_rows):
            win = Window(0, r0, grid.cols, r1 - r0)
            dsts[MAP_LCZ].write(filtered, 2, window=win)
            dsts[MAP_LCZ_FILTER].write(filtered, 1, window=win)
            filt_full[r0:r1] = filtered
        for name, dst in dsts.items():
            finish_stage(dst, tags, names[name])
    finally:
        for d in dsts.values():
            d.close()
    return has_data, lcz_full, filt_full, ent_full


def write_map(out: Path, grid: OutputGrid, crs, num_classes: int,
              blocks: Iterable[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray | None]],
              tags: Mapping[str, str], source: str, *, filter_sigma_m: float | Literal["published"] = "published",
              mutual_information: bool = False, conformal: ConformalThreshold | None = None,
              strip_rows: int = FILTER_STRIP_ROWS, note: str | None = None) -> dict[str, list[str]]:
    """Write the COGs, their sidecars and the preview into ``out`` from ``blocks`` of (chunk (r0, r1,
    c0, c1), probs (r, c, K), valid (r, c), mutual information (r, c) or None); the staging files go
    to ``out/.partial/``. ``tags`` go into every GeoTIFF; ``mutual_information``: the blocks carry it;
    ``conformal``: adds ``set_size``; ``note`` (which LCZ the model names) goes under the preview's
    legend. SceneError (and nothing under the final names) when no window holds data. Returns each
    file's band names."""

    names = band_names(num_classes, mutual_information, conformal)
    has_data, lcz, filt, ent = _stage(out, grid, crs, num_classes, names, blocks, conformal,
                                      filter_sigma_m, strip_rows, tags)
    if not has_data:  # leaves no GeoTIFF under a final name
        raise SceneError(f"{source}: every window touches nodata pixels or is too cloudy; nothing to map")
    specs = _specs(num_classes, names)
    finals = [map_sidecar(out / n) for n in MAP_CLASS_GEOTIFFS] + [out / n for n in MAP_GEOTIFFS]
    with atomic_paths(finals) as paths:
        for name in MAP_GEOTIFFS:
            make_cog(map_stage_path(out, name), paths[out / name], specs[name][3], cog_tile_size(grid))
        for name in MAP_CLASS_GEOTIFFS:
            # lcz.tif's colour table lives in its sidecar; lcz_filter.tif embeds its own
            lcz_file = name == MAP_LCZ
            paths[map_sidecar(out / name)].write_text(
                pam_xml(num_classes, [1, 2] if lcz_file else [1], color_band=1 if lcz_file else None))
    write_preview(lcz, filt, ent, out / MAP_PREVIEW, num_classes=num_classes, note=note)
    return names
