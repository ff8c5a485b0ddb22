"""Sliding-window LCZ maps with uncertainty from a Sentinel-2 scene.

The scene (:func:`lczldl.maps.scene.open_scene`: a .SAFE folder or .zip, per-band files, or a
stacked GeoTIFF) is read in chunks of output pixels (never whole), optionally limited to an area of
interest; windows are cut with a strided view, pushed through one or more models (ensemble; optional
MC dropout; optional temperature), and each finished chunk is saved atomically under
``OUT/.partial/``. A killed run restarts at the first missing chunk. When every chunk is there the
outputs (:mod:`lczldl.maps.outputs`: Cloud-Optimised GeoTIFFs, the filtered map, the preview) are
written under temporary names and renamed into place, so the final names only ever hold complete
files; ``predict.json`` records inputs, radiometry, cloud masking, checksums, settings, versions and
timing, and a STAC Item (:mod:`lczldl.maps.stac_item`) catalogues the map. Folder and file names:
:mod:`lczldl.layout`.

The settings are one :class:`lczldl.config.MapsConfig` (the ``maps:`` config section), which checks
each value's range; :func:`check_map_arguments` refuses what is wrong between the arguments.

A window is no-data in every output when it touches a no-data pixel, or when more than
``max_cloud_share`` of its pixels are cloud-masked; windows below that share are predicted from the
observed pixels (the mask flags some bright roofs too).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lczldl import __version__
from lczldl.config import MapsConfig
from lczldl.constants import PATCH_SIZE, SEED_MIXER
from lczldl.errors import RunError, SceneError
from lczldl.evaluation.predictor import Predictor
from lczldl.fileio import atomic_path, atomic_write_json, file_sha256, remove_temporaries
from lczldl.layout import (
    MAP_CLASS_GEOTIFFS,
    MAP_GEOTIFFS,
    MAP_PARTIAL,
    MAP_PARTIAL_STATE,
    MAP_RECORD,
    MAP_STAC_ITEM,
    METRICS_TS,
    map_block_path,
    map_sidecar,
)
from lczldl.maps.aoi import Aoi, aoi_grid, bbox_aoi, geojson_aoi
from lczldl.maps.grid import OutputGrid, chunk_pixels, chunks, default_block, output_grid
from lczldl.maps.outputs import ConformalThreshold, summarize_probs, write_map
from lczldl.maps.radiometry import SO2SAT_BANDS, check_cloud_classes, parse_band_list
from lczldl.maps.report import describe_scene, geotiff_tags, window_stats
from lczldl.maps.scene import SceneReader, open_scene
from lczldl.maps.stac_item import write_stac_item
from lczldl.models.classes import model_classes, scope_note
from lczldl.models.io import load_model
from lczldl.models.weights_file import is_weights_file, read_weights_meta
from lczldl.provenance import versions

#: scenes (single files) up to this size are checksummed into predict.json
SHA256_MAX_BYTES = 2 << 30
#: the settings of :class:`MapsConfig` when none are given
_DEFAULTS = MapsConfig()
#: version of the saved chunks' contents (chunks of another version are not resumed)
CHUNK_FORMAT = 2
#: GeoTIFF tag saying which LCZ the model can name, when it cannot name all 17
CLASSES_NOTE_TAG = "LCZ_CLASSES_NOTE"

__all__ = ["MapPredictor", "check_map_arguments", "predict_scene", "resolve_temperature", "summarize_probs",
           "window_counts", "window_patches"]


def check_map_arguments(checkpoints: Sequence[Path], settings: MapsConfig, bbox: Sequence[float] | None,
                        aoi: Path | None) -> tuple[tuple[str, ...] | None, tuple[int, ...], Aoi | None]:
    """Refuse, before the scene or a model is read, arguments that cannot make a map; returns the
    checked band order, cloud classes and area of interest. One line each, naming the parameter:

    - no checkpoint: there is no model to predict with;
    - both ``bbox`` and ``aoi``: a map has one area of interest;
    - a ``bbox`` that is not 4 numbers with -180 <= WEST < EAST <= 180 and -90 <= SOUTH < NORTH <= 90
      (degrees; boxes across the antimeridian are not supported), an ``aoi`` that is missing, not
      GeoJSON or without extent (:mod:`lczldl.maps.aoi`);
    - ``bands`` with names that are no Sentinel-2 band, repeats, or without every So2Sat band;
    - ``cloud_classes`` that are no SCL class (0..11).

    Each setting's own range (stride, chunk and batch sizes >= 1, mc_passes >= 0, temperature
    ``auto`` or > 0, max_cloud_share in [0, 1], scale > 0, finite offset) is :class:`MapsConfig`'s,
    which holds no other value. What depends on the files is refused where they are read:
    :func:`lczldl.maps.scene.open_scene` (unreadable or inconsistent scenes, ``bands`` for a
    product, ``scale`` / ``offset`` for a product whose metadata sets them, integer data without
    ``scale``), :func:`lczldl.models.io.load_model` and :func:`_load_predictor` (checkpoints,
    ``temperature`` auto without metrics_ts.json), :func:`lczldl.maps.aoi.aoi_grid` (an area
    outside the scene).
    """
    if not checkpoints:
        raise RunError("checkpoints is empty; give at least one model file or run checkpoint",
                       params=("checkpoints",))
    if bbox is not None and aoi is not None:
        raise SceneError("give either bbox or aoi, not both", params=("bbox", "aoi"))
    area = bbox_aoi(bbox) if bbox is not None else geojson_aoi(aoi) if aoi is not None else None
    bands = parse_band_list(settings.bands) if settings.bands is not None else None
    return bands, check_cloud_classes(settings.cloud_classes), area


def resolve_temperature(checkpoint: Path, temperature: float | Literal["auto"]) -> float:
    """Temperature for one checkpoint: the number, or for ``auto`` the run's metrics_ts.json.

    A run's best checkpoint lives in RUN/checkpoints/; its temperature in RUN/metrics_ts.json. A
    weights file (lczldl export-weights) carries its own fitted temperature.
    """
    if temperature != "auto":
        return float(temperature)
    checkpoint = Path(checkpoint)
    fitted = read_weights_meta(checkpoint).get("temperature") if is_weights_file(checkpoint) else None
    if fitted is not None:
        return float(fitted)
    for run_dir in (checkpoint.parent.parent, checkpoint.parent):
        ts = run_dir / METRICS_TS
        if ts.exists():
            value = json.loads(ts.read_text()).get("temperature")
            if value is not None:
                return float(value)
    raise RunError(f"{checkpoint}: no {METRICS_TS} with a temperature beside this checkpoint's run; "
                   "run `lczldl evaluate` on it or set temperature to a number", params=("temperature",))


def window_counts(mask: np.ndarray, stride: int, n_r: int, n_c: int) -> np.ndarray:
    """(n_r, n_c) int32: how many pixels of ``mask`` (R, W) bool each window holds; window (i, j)
    spans rows i*stride .. +32 and columns j*stride .. +32 (a 2-D prefix sum, O(R*W))."""
    csum = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    csum[1:, 1:] = mask.astype(np.int32).cumsum(0).cumsum(1)
    r0 = np.arange(n_r) * stride
    c0 = np.arange(n_c) * stride
    r1, c1 = r0 + PATCH_SIZE, c0 + PATCH_SIZE
    return csum[r1][:, c1] - csum[r0][:, c1] - csum[r1][:, c0] + csum[r0][:, c0]


def window_patches(pixels: np.ndarray, invalid: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut every window of a block.

    pixels (C, R, W) float32, invalid (R, W) bool -> (patches (n_r, n_c, C, 32, 32) view,
    window_invalid (n_r, n_c) bool: the window holds at least one invalid pixel).
    """
    views = sliding_window_view(pixels, (PATCH_SIZE, PATCH_SIZE), axis=(1, 2))[:, ::stride, ::stride]
    patches = views.transpose(1, 2, 0, 3, 4)
    n_r, n_c = patches.shape[:2]
    return patches, window_counts(invalid, stride, n_r, n_c) > 0


class MapPredictor:
    """Fused probabilities of an ensemble of models, optionally with MC dropout and temperature.

    Each member's probabilities are softmax(log_probs / T_m); members (and MC passes) are averaged
    in probability space. With MC dropout, torch's RNG is seeded from (``seed``, the call's
    ``key``) inside each call and restored afterwards, so a map (and a resumed map) is reproducible.
    """

    def __init__(self, models: Sequence[torch.nn.Module], temperatures: Sequence[float],
                 mc_passes: int = 0, batch_size: int = _DEFAULTS.batch_size, seed: int = 0) -> None:
        self.models = list(models)
        self.temperatures = [float(t) for t in temperatures]
        self.mc_passes = int(mc_passes)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._predictor = Predictor(self.models, self.temperatures, mc_passes=self.mc_passes,
                                    channels_last=True)

    @property
    def has_spread(self) -> bool:
        """Whether the prediction has a spread between members or passes (mutual information)."""
        return self.mc_passes > 0 or len(self.models) > 1

    def predict(self, patches: np.ndarray, key: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """patches (N, C, 32, 32) float32 reflectance -> (probabilities (N, K) float32, mutual
        information (N,) float32 in nats, 0 without spread); ``key`` (e.g. the block's first row)
        picks the MC-dropout random stream."""
        seed = self.seed * SEED_MIXER + int(key)
        out = self._predictor.predict(np.ascontiguousarray(patches), self.batch_size, seed=seed)
        return out["probs"].astype(np.float32), out["mutual_info"].astype(np.float32)

    def __call__(self, patches: np.ndarray, key: int = 0) -> np.ndarray:
        """Probabilities (N, K) float32 of :meth:`predict`."""
        return self.predict(patches, key)[0]


def _file_fingerprint(path: Path) -> str:
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{int(st.st_mtime)}"


def _predict_block(scene: SceneReader, grid: OutputGrid, predictor: MapPredictor,
                   chunk: tuple[int, int, int, int], max_cloud_share: float,
                   num_classes: int) -> dict[str, np.ndarray]:
    """Read one chunk's pixels and predict its windows. Returns probs (r, c, K) float32 (NaN where
    not valid), valid / nodata / cloud (r, c) bool, cloud_share (r, c) float32 (masked share of
    each window's pixels) and, with MC dropout or an ensemble, mutual_info (r, c) float32 (NaN where
    not valid)."""
    from rasterio.windows import Window

    row, col, h, w = chunk_pixels(grid, chunk)
    block = scene.read_block(Window(col, row, w, h))
    patches, nodata = window_patches(block.reflectance, block.nodata, grid.stride)
    n_r, n_c = nodata.shape
    cloud_share = (window_counts(block.cloud & ~block.nodata, grid.stride, n_r, n_c)
                   / float(PATCH_SIZE * PATCH_SIZE)).astype(np.float32)
    cloud = ~nodata & (cloud_share > max_cloud_share)
    valid = ~nodata & ~cloud
    probs = np.full((n_r, n_c, num_classes), np.nan, dtype=np.float32)
    mi = np.full((n_r, n_c), np.nan, dtype=np.float32)
    if valid.any():
        # MC-dropout stream per chunk, from its first window in the scene's full grid
        key = (grid.row0 + chunk[0]) * 65_536 + grid.col0 + chunk[2]
        probs[valid], mi[valid] = predictor.predict(patches[valid], key=key)
    out = {"probs": probs, "valid": valid, "nodata": nodata, "cloud": cloud, "cloud_share": cloud_share}
    return {**out, "mutual_info": mi} if predictor.has_spread else out


def _load_predictor(checkpoints: Sequence[Path], temperature: float | Literal["auto"], mc: int,
                    batch_size: int, trust: bool = False) -> tuple[MapPredictor, int, list[float]]:
    """(predictor, number of classes, temperatures) of an ensemble of checkpoints (``trust``: load
    pickles that need full unpickling, :func:`lczldl.models.io.load_model`)."""
    temps = [resolve_temperature(Path(c), temperature) for c in checkpoints]
    models = [load_model(Path(c), trust=trust) for c in checkpoints]
    num_classes = int(getattr(models[0], "model_kwargs", {}).get("num_classes", 10))
    for c, m in zip(checkpoints, models, strict=True):
        k = int(getattr(m, "model_kwargs", {}).get("num_classes", num_classes))
        if k != num_classes:
            raise RunError(f"{c}: model has {k} classes, the first checkpoint has {num_classes}; "
                           "an ensemble needs the same classes")
        in_ch = int(getattr(m, "model_kwargs", {}).get("in_channels", len(SO2SAT_BANDS)))
        if in_ch != len(SO2SAT_BANDS):
            raise SceneError(f"{c}: model expects {in_ch} bands, the scene gives {len(SO2SAT_BANDS)} "
                             f"({', '.join(SO2SAT_BANDS)})")
    predictor = MapPredictor([m.to(memory_format=torch.channels_last) for m in models], temps,
                             mc_passes=mc, batch_size=batch_size)
    return predictor, num_classes, temps


def _classes_of(predictor: MapPredictor) -> list[int]:
    """LCZ ids of the ensemble's class indices (every member's must agree)."""
    found = [model_classes(m) for m in predictor.models]
    if any(c != found[0] for c in found):
        raise RunError(f"the models name different LCZ ({found}); an ensemble needs the same classes",
                       params=("checkpoints",))
    return found[0]


def _map_grid(scene: SceneReader, stride: int, area: Aoi | None) -> tuple[OutputGrid, dict | None, list[str]]:
    """The grid to map (the whole scene, or the cells of the area of interest), the AOI record and
    warnings."""
    grid = output_grid(scene.width, scene.height, scene.transform, stride)
    if area is None:
        return grid, None, []
    t, w, h = scene.transform, scene.width, scene.height
    scene_bounds = (t.c, t.f + h * t.e, t.c + w * t.a, t.f)
    sub, bounds, beyond = aoi_grid(area, grid, scene.crs, scene_bounds)
    record = {"label": area.label, "crs": area.crs, "bounds": list(area.bounds),
              "bounds_scene_crs": list(bounds), "beyond_scene": beyond,
              "rows": [sub.row0, sub.row0 + sub.rows], "cols": [sub.col0, sub.col0 + sub.cols]}
    warnings = [f"{area.label} reaches beyond the scene; only the part inside is mapped"] if beyond else []
    return sub, record, warnings


def _chunk_results(out: Path, blocks: list[tuple[int, int, int, int]], stats: dict) -> \
        Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray | None]]:
    """Saved chunks for the writer (chunk, probs, valid, mutual information or None), counting
    windows into ``stats`` on the way."""
    for b, chunk in enumerate(blocks):
        with np.load(map_block_path(out, b)) as z:
            probs, valid = z["probs"], z["valid"]
            mi = z["mutual_info"] if "mutual_info" in z.files else None
            stats["windows_predicted"] += int(valid.sum())
            stats["windows_nodata"] += int(z["nodata"].sum())
            stats["windows_cloud"] += int(z["cloud"].sum())
            share = z["cloud_share"][~z["nodata"]]
            stats["cloud_share_sum"] += float(share.sum())
            stats["windows_with_data"] += int(share.size)
        yield chunk, probs, valid, mi


def model_threshold(checkpoints: Sequence[Path], settings: MapsConfig) -> ConformalThreshold | None:
    """The threshold of ``settings.conformal_set`` that a single model file carries (lczldl
    export-weights) for the probabilities this map makes: the run's method "mc_dropout" with MC
    passes, "temperature" with temperature auto (the file's fitted T), "plain" at temperature 1;
    None for an ensemble, another temperature, a file without thresholds or without that set."""
    if settings.conformal_set is None or len(checkpoints) != 1 or not is_weights_file(Path(checkpoints[0])):
        return None
    if settings.mc_passes > 0:
        method = "mc_dropout"
    elif settings.temperature == "auto":
        method = "temperature"
    elif float(settings.temperature) == 1.0:
        method = "plain"
    else:
        return None
    found = ((read_weights_meta(Path(checkpoints[0])).get("conformal") or {}).get(method) or {}).get(
        settings.conformal_set)
    if not isinstance(found, dict) or found.get("qhat") is None:
        return None
    return ConformalThreshold(str(found["score"]), float(found["level"]), float(found["qhat"]))


def predict_scene(checkpoints: Sequence[Path], scene: Path | Sequence[Path], out: Path,
                  settings: MapsConfig | None = None, *, bbox: Sequence[float] | None = None,
                  aoi: Path | None = None, conformal: ConformalThreshold | None = None,
                  progress: bool = True, max_blocks: int | None = None,
                  say: Callable[[str], None] | None = None, trust_checkpoint: bool = False) -> dict:
    """Write an LCZ map with uncertainty for ``scene`` into ``out`` (see module docstring).

    ``settings``: stride, MC passes, temperature, chunk and batch sizes, cloud masking, a file's band
    order and radiometry (default: :class:`MapsConfig`'s defaults); ``scene`` and the settings'
    ``bands``, ``scale``, ``offset``, ``cloud_classes``: as :func:`open_scene`. ``bbox`` (WEST,
    SOUTH, EAST, NORTH in degrees) or ``aoi`` (GeoJSON) limit the map to the windows whose output
    cells overlap the area. ``conformal``: a threshold that adds the ``set_size`` band to
    uncertainty.tif (it must have been calibrated on the same fused probabilities: the same
    checkpoints, temperature and MC passes); None: the one a single model file carries for
    ``settings.conformal_set`` (:func:`model_threshold`), if any. ``say`` receives what is read
    and masked (lines; warnings start with "warning:") once every input is validated. ``max_blocks`` stops after that many new chunks (used
    to test resuming). ``trust_checkpoint``: load checkpoints that need full unpickling (they can
    run code). Returns the provenance dict (``complete`` False when stopped early).
    """
    settings = _DEFAULTS if settings is None else settings
    bands, cloud_classes, area = check_map_arguments(checkpoints, settings, bbox, aoi)
    with open_scene(scene, bands=bands, scale=settings.scale, offset=settings.offset,
                    cloud_classes=cloud_classes, allow_resolution=settings.allow_resolution) as reader:
        grid, record, warnings = _map_grid(reader, settings.stride, area)
        predictor, num_classes, temps = _load_predictor(checkpoints, settings.temperature, settings.mc_passes,
                                                        settings.batch_size, trust_checkpoint)
        conformal = conformal if conformal is not None else model_threshold(checkpoints, settings)
        classes = _classes_of(predictor)
        warnings = [*reader.metadata.warnings, *warnings]
        for line in describe_scene(reader, grid, record) + [f"warning: {w}" for w in warnings]:
            if say is not None:
                say(line)
        stride = settings.stride
        recorded = {"stride": stride, "mc": settings.mc_passes, "temperatures": temps,
                    "max_cloud_share": float(settings.max_cloud_share),
                    "block_rows": settings.block_rows or default_block(stride),
                    "block_cols": settings.block_cols or default_block(stride),
                    "classes": classes, "classes_note": scope_note(classes),
                    "filter_sigma_m": settings.filter_sigma_m, "conformal": conformal}
        return _run(reader, grid, record, warnings, predictor, num_classes, [Path(c) for c in checkpoints],
                    Path(out), recorded, progress, max_blocks)


def _open_partial(out: Path, partial: Path, state: dict) -> None:
    """Keep ``partial``'s saved chunks when they were made with the same ``state``, else start over."""
    state_path = partial / MAP_PARTIAL_STATE
    if partial.exists():
        try:
            same = json.loads(state_path.read_text()) == json.loads(json.dumps(state))
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(partial)
    partial.mkdir(exist_ok=True)
    atomic_write_json(state_path, state)
    # a killed run's temporary files; a new map replaces an old one only when complete
    for name in (*MAP_GEOTIFFS, *(map_sidecar(n).name for n in MAP_CLASS_GEOTIFFS), MAP_STAC_ITEM):
        remove_temporaries(out / name)


def _run(reader: SceneReader, grid: OutputGrid, area: dict | None, warnings: list[str], predictor: MapPredictor,
         num_classes: int, checkpoints: list[Path], out: Path, settings: dict, progress: bool,
         max_blocks: int | None) -> dict:
    """Predict the missing chunks, then (when all are there) write the outputs and predict.json."""
    out.mkdir(parents=True, exist_ok=True)
    partial = out / MAP_PARTIAL
    blocks = chunks(grid, settings["block_rows"], settings["block_cols"])
    m = reader.metadata
    chunk_settings = {k: v for k, v in settings.items() if k not in ("filter_sigma_m", "conformal")}
    state = {"format": CHUNK_FORMAT, "scene": reader.fingerprint(),
             "checkpoints": [_file_fingerprint(c) for c in checkpoints], **chunk_settings, "offsets": m.offsets, "scales": m.scales, "cloud_mask": m.cloud_mask,
             "cloud_classes": list(m.cloud_classes), "grid": [grid.rows, grid.cols, grid.row0, grid.col0]}
    _open_partial(out, partial, state)
    todo = [b for b in range(len(blocks)) if not map_block_path(out, b).exists()]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("map"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7.0f} windows/s"), TimeRemainingColumn()]
    t0, done_windows, new_blocks = time.perf_counter(), 0, 0
    n_windows = grid.rows * grid.cols
    with Progress(*columns, disable=not progress, transient=False) as bar:
        size = {b: (r1 - r0) * (c1 - c0) for b, (r0, r1, c0, c1) in enumerate(blocks)}
        task = bar.add_task("map", total=n_windows, rate=0.0,
                            completed=n_windows - sum(size[b] for b in todo))
        for b in todo:
            if max_blocks is not None and new_blocks >= max_blocks:
                break
            res = _predict_block(reader, grid, predictor, blocks[b], settings["max_cloud_share"], num_classes)
            with atomic_path(map_block_path(out, b), suffix=".npz") as tmp:
                np.savez(tmp, **res)
            new_blocks += 1
            done_windows += size[b]
            bar.update(task, advance=size[b], rate=done_windows / max(time.perf_counter() - t0, 1e-9))
    elapsed = time.perf_counter() - t0
    complete = all(map_block_path(out, b).exists() for b in range(len(blocks)))
    record = {
        "complete": complete, "scene": m.source, "scene_kind": m.kind, "product_id": m.product_id,
        "level": m.level, "processing_baseline": m.processing_baseline, "radiometry": m.radiometry(),
        "offsets": m.offsets, "scales": m.scales, "cloud_mask": m.cloud_mask,
        "cloud_classes": list(m.cloud_classes), "max_cloud_share": settings["max_cloud_share"],
        "files": m.files, "aoi": area, "checkpoints": [str(c) for c in checkpoints],
        "stride_px": grid.stride, "pixel_size": [grid.transform.a, grid.transform.e], "crs": str(reader.crs),
        "rows": grid.rows, "cols": grid.cols, "mc_passes": settings["mc"], "temperatures": settings["temperatures"],
        "windows": n_windows, "windows_per_second_this_call": done_windows / elapsed if elapsed > 0 else None,
        "classes": settings["classes"], "classes_note": settings["classes_note"],
        "warnings": warnings, "lczldl_version": __version__, "torch_version": torch.__version__,
        "versions": versions(), "sensing_time": m.sensing_time, "filter_sigma_m": settings["filter_sigma_m"],
        "conformal": asdict(settings["conformal"]) if settings["conformal"] is not None else None,
    }
    if not complete:
        return record
    sha = [file_sha256(c) for c in checkpoints]
    stats = dict.fromkeys(("windows_predicted", "windows_nodata", "windows_cloud", "windows_with_data"), 0)
    stats["cloud_share_sum"] = 0.0
    tags = geotiff_tags(reader, checkpoints, sha, settings)
    if settings["classes_note"]:  # a model naming only some LCZ (the authors' 10 urban classes)
        tags[CLASSES_NOTE_TAG] = settings["classes_note"]
    try:
        bands = write_map(out, grid, reader.crs, num_classes, _chunk_results(out, blocks, stats), tags, m.source,
                          filter_sigma_m=settings["filter_sigma_m"], mutual_information=predictor.has_spread,
                          conformal=settings["conformal"], note=settings["classes_note"])
    except SceneError:
        shutil.rmtree(partial)
        raise
    origin = reader.origin[0] if len(reader.origin) == 1 else None
    record.update(window_stats(stats, n_windows), checkpoint_sha256=sha,
                  scene_sha256=file_sha256(origin) if origin and origin.stat().st_size < SHA256_MAX_BYTES else None)
    record["bands"] = bands
    atomic_write_json(out / MAP_RECORD, record)
    write_stac_item(out, record, grid, reader.crs, num_classes)
    shutil.rmtree(partial)
    return record
