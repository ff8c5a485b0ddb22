"""Owns reading a Sentinel-2 scene for mapping: :func:`open_scene` turns a product (.SAFE folder or
.zip, a STAC Item, per-band files, or one stacked GeoTIFF) into a reader of 10 m windows of
reflectance in So2Sat band order.

Conventions
- The grid is B02's (10 m). Bands on other grids (the 20 m B05 B06 B07 B8A B11 B12, the 20 m SCL,
  the 60 m MSK_CLASSI) are resampled onto it *while reading a window*, with nearest neighbour: the
  Sentinel-2 grids are nested (a 20 m pixel is exactly 2 x 2 10 m pixels), so nearest copies each
  20 m digital number unchanged into its four 10 m pixels - no value is invented or smoothed, the
  radiometry stays exact, and masks stay categorical (docs/maps.md weighs it against bilinear).
  Rasterio reads the window of the coarse file with ``out_shape`` and ``Resampling.nearest``; no
  tile is ever read whole.
- reflectance = (DN + offset) / scale (:mod:`lczldl.maps.radiometry`): from the product's
  MTD_MSIL1C.xml / MTD_MSIL2A.xml for SAFE input; from ``scale`` / ``offset`` otherwise. Integer
  data without a known scale is refused; float data without ``scale`` is taken as reflectance.
- No-data: DN 0 of a product band (or a file's nodata value, or a non-finite value) in any band.
- Pixel sizes: each band must have Sentinel-2's (10 m B02 B03 B04 B08, 20 m B05 B06 B07 B8A B11
  B12; a stacked GeoTIFF 10 m) unless ``allow_resolution``.
- The vector clouds of L1C before baseline 04.00 (``MSK_CLOUDS_B00.gml``, opaque and cirrus) are
  rasterised onto each window read (pixel centres inside a polygon).
- Which window gives which map pixel: :mod:`lczldl.maps.grid`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds

from lczldl.config import MapsConfig
from lczldl.constants import PATCH_SIZE
from lczldl.errors import SceneError
from lczldl.maps.cloudgml import CloudPolygons
from lczldl.maps.radiometry import (
    CLASSI_CLOUD_BANDS,
    NATIVE_RESOLUTION_M,
    SCL_CLASS_NAMES,
    SO2SAT_BANDS,
    check_resolution,
    classi_cloud_mask,
    describe_radiometry,
    nodata_mask,
    scl_cloud_mask,
    to_reflectance,
)
from lczldl.maps.safe import (
    ProductFiles,
    find_band_files,
    find_safe_folder,
    find_safe_zip,
    is_safe_folder,
    mtd_level,
)
from lczldl.maps.stac_input import find_stac_item, is_stac_item

#: float data whose 99th percentile exceeds this is not reflectance (digital numbers need a scale)
MAX_PLAUSIBLE_REFLECTANCE = 2.0


@dataclass(frozen=True)
class BandSource:
    """One So2Sat band: which file and band index hold it and how its values become reflectance."""

    band: str
    path: str
    index: int            # 1-based band index in the file
    offset: float
    scale: float
    nodata: float | None


@dataclass(frozen=True)
class SceneMetadata:
    """What was read and how: recorded in predict.json and the output GeoTIFF tags."""

    source: str
    kind: str                            # "safe", "safe-zip", "stac-item", "band-files", "geotiff"
    level: str                           # "L1C", "L2A" or "unknown"
    product_id: str | None
    processing_baseline: str | None
    offsets: dict[str, float]            # So2Sat band -> offset (DN) used
    scales: dict[str, float]             # So2Sat band -> divisor used
    cloud_mask: str                      # what masks clouds, or "none (why)"
    cloud_classes: tuple[int, ...]       # SCL classes masked (L2A / SCL input)
    files: dict[str, str]                # band (and "mask") -> file
    warnings: tuple[str, ...] = ()
    sensing_time: str | None = None      # ISO 8601, from the product's metadata or STAC Item

    def radiometry(self) -> str:
        """One line: the conversion used (per band when bands differ)."""
        pairs = {(self.offsets[b], self.scales[b]) for b in SO2SAT_BANDS}
        if len(pairs) == 1:
            return describe_radiometry(*pairs.pop())
        return "; ".join(f"{b}: {describe_radiometry(self.offsets[b], self.scales[b])}" for b in SO2SAT_BANDS)


@dataclass
class SceneBlock:
    """One window of a scene: ``reflectance`` (10, h, w) float32 (NaN where ``nodata``; observed
    values where ``cloud``), ``nodata`` and ``cloud`` (h, w) bool."""

    reflectance: np.ndarray
    nodata: np.ndarray
    cloud: np.ndarray


@dataclass
class SceneReader:
    """A scene open for reading windows; use as a context manager (or call :meth:`close`)."""

    sources: list[BandSource]
    metadata: SceneMetadata
    crs: object
    transform: Affine
    width: int
    height: int
    mask_path: str | None = None
    mask_kind: str | None = None          # "SCL", "MSK_CLASSI" or "MSK_CLOUDS" (polygons: mask_shapes)
    origin: tuple[Path, ...] = ()         # files on disk behind the paths (a zip for its members)
    mask_shapes: CloudPolygons | None = None
    _datasets: dict = field(default_factory=dict, repr=False)

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every open file."""
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()

    def _dataset(self, path: str):
        if path not in self._datasets:
            self._datasets[path] = rasterio.open(path)
        return self._datasets[path]

    def _read(self, path: str, indexes: list[int], window: Window) -> np.ndarray:
        """(len(indexes), h, w) native values of ``path`` on the reference grid's ``window``."""
        ds = self._dataset(path)
        if ds.transform == self.transform and (ds.width, ds.height) == (self.width, self.height):
            return ds.read(indexes, window=window)
        src_window = from_bounds(*window_bounds(window, self.transform), transform=ds.transform)
        return ds.read(indexes, window=src_window, out_shape=(len(indexes), int(window.height), int(window.width)),
                       resampling=Resampling.nearest)

    def read_block(self, window: Window) -> SceneBlock:
        """Reflectance, no-data and cloud mask of ``window`` (pixels of the 10 m grid, inside it)."""
        h, w = int(window.height), int(window.width)
        refl = np.empty((len(self.sources), h, w), dtype=np.float32)
        nodata = np.zeros((h, w), dtype=bool)
        groups: dict[str, list[int]] = {}
        for k, s in enumerate(self.sources):
            groups.setdefault(s.path, []).append(k)
        for path, ks in groups.items():
            values = self._read(path, [self.sources[k].index for k in ks], window)
            for k, v in zip(ks, values, strict=True):
                s = self.sources[k]
                nodata |= nodata_mask(v, s.nodata)
                refl[k] = to_reflectance(v, s.offset, s.scale)
        refl[:, nodata] = np.nan
        cloud = np.zeros((h, w), dtype=bool)
        if self.mask_kind == "SCL":
            cloud = scl_cloud_mask(self._read(self.mask_path, [1], window)[0], self.metadata.cloud_classes)
        elif self.mask_kind == "MSK_CLASSI":
            cloud = classi_cloud_mask(self._read(self.mask_path, list(CLASSI_CLOUD_BANDS), window))
        elif self.mask_kind == "MSK_CLOUDS":
            cloud = self._rasterise_clouds(window)
        return SceneBlock(refl, nodata, cloud)

    def _rasterise_clouds(self, window: Window) -> np.ndarray:
        """(h, w) bool: pixel centres of ``window`` inside a cloud polygon."""
        from rasterio.features import rasterize
        from rasterio.windows import transform as window_transform

        h, w = int(window.height), int(window.width)
        left, bottom, right, top = window_bounds(window, self.transform)
        shapes = self.mask_shapes
        near = [p for p, (x0, y0, x1, y1) in zip(shapes.polygons, shapes.bounds, strict=True)
                if x0 < right and x1 > left and y0 < top and y1 > bottom]
        if not near:
            return np.zeros((h, w), dtype=bool)
        return rasterize(((p, 1) for p in near), out_shape=(h, w), transform=window_transform(window, self.transform),
                         fill=0, dtype="uint8").astype(bool)

    def read(self, window: Window) -> np.ndarray:
        """(10, h, w) float32 reflectance in So2Sat band order; NaN at no-data and masked pixels."""
        block = self.read_block(window)
        block.reflectance[:, block.cloud] = np.nan
        return block.reflectance

    def fingerprint(self) -> list[str]:
        """path:size:mtime of every file read (a zip's members by the zip), for resuming."""
        out = []
        for p in sorted(set(self.origin)):
            st = p.stat()
            out.append(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}")
        return out


def _open(path: str, what: str):
    try:
        with warnings.catch_warnings():  # a file without georeferencing is refused below, in one line
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise SceneError(f"{path}: cannot read the {what} as a raster ({exc}); pass a GeoTIFF or JPEG 2000 "
                         "file, a .SAFE folder or its .zip") from None


def _check_grid(ref, ref_name: str, ds, name: str) -> None:
    """``ds`` must share ``ref``'s CRS and cover the same area (any pixel size)."""
    if ds.crs != ref.crs:
        raise SceneError(f"{name}: CRS {ds.crs} differs from {ref_name}'s {ref.crs}; bands of one scene need "
                         "one CRS (reproject the odd file or use the product's own files)")
    tol = 0.5 * abs(ref.transform.a)
    if any(abs(a - b) > tol for a, b in zip(ds.bounds, ref.bounds, strict=True)):
        raise SceneError(f"{name}: covers {tuple(round(v, 1) for v in ds.bounds)}, not {ref_name}'s "
                         f"{tuple(round(v, 1) for v in ref.bounds)}; give files of one tile")


def _check_plausible(reader: SceneReader, where: str) -> None:
    """Refuse (and close ``reader``) float data without a scale whose values are clearly not reflectance."""
    h, w = min(reader.height, 256), min(reader.width, 256)
    block = reader.read_block(Window((reader.width - w) // 2, (reader.height - h) // 2, w, h))
    values = block.reflectance[:, ~block.nodata]
    if values.size and float(np.percentile(values, 99)) > MAX_PLAUSIBLE_REFLECTANCE:
        reader.close()
        raise SceneError(f"{where}: float values up to {float(np.percentile(values, 99)):g} are not reflectance "
                         "(0..~1.5); for digital numbers pass scale (e.g. scale=10000, and offset=-1000 "
                         "for processing baseline 04.00 and later)", params=("scale", "offset"))


def _radiometry(ds, where: str, scale: float | None, offset: float | None) -> tuple[float, float]:
    """(scale, offset) for a file without product metadata."""
    if scale is None:
        if np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            raise SceneError(f"{where}: integer values without scale; say how they become reflectance, "
                             "e.g. scale=10000 (and offset=-1000 for Sentinel-2 processing baseline 04.00 "
                             "and later)", params=("scale", "offset"))
        scale = 1.0
    if not np.isfinite(scale) or scale <= 0:
        raise SceneError(f"scale must be a positive number, got {scale}", params=("scale",))
    if offset is not None and not np.isfinite(offset):
        raise SceneError(f"offset must be a finite number, got {offset}", params=("offset",))
    return float(scale), float(offset or 0.0)


def _open_stacked(path: Path, bands: Sequence[str] | None, scale: float | None,
                  offset: float | None, allow_resolution: bool) -> SceneReader:
    ds = _open(str(path), "scene")
    try:
        if ds.crs is None:
            raise SceneError(f"{path}: scene has no CRS; georeference it first (e.g. gdal_edit.py -a_srs)")
        if not allow_resolution:
            check_resolution(ds.res, 10.0, "a stacked GeoTIFF's grid", str(path))
        if bands is None:
            if ds.count != len(SO2SAT_BANDS):
                raise SceneError(f"{path}: scene has {ds.count} bands, need {len(SO2SAT_BANDS)} "
                                 f"({', '.join(SO2SAT_BANDS)}, So2Sat order), or name its order with bands",
                                 params=("bands",))
            bands = SO2SAT_BANDS
        elif len(bands) != ds.count:
            raise SceneError(f"{path}: bands names {len(bands)} bands, the file has {ds.count}", params=("bands",))
        s, o = _radiometry(ds, str(path), scale, offset)
        sources = [BandSource(b, str(path), list(bands).index(b) + 1, o, s, ds.nodatavals[list(bands).index(b)])
                   for b in SO2SAT_BANDS]
        meta = SceneMetadata(source=str(path), kind="geotiff", level="unknown", product_id=None,
                             processing_baseline=None, offsets=dict.fromkeys(SO2SAT_BANDS, o),
                             scales=dict.fromkeys(SO2SAT_BANDS, s),
                             cloud_mask="none (a stacked GeoTIFF carries no cloud mask)", cloud_classes=(),
                             files={b: str(path) for b in SO2SAT_BANDS})
        reader = SceneReader(sources, meta, ds.crs, ds.transform, ds.width, ds.height, origin=(path,),
                             _datasets={str(path): ds})
    except BaseException:
        ds.close()
        raise
    if scale is None:
        _check_plausible(reader, str(path))
    return reader


def _open_product(files: ProductFiles, scale: float | None, offset: float | None,
                  cloud_classes: tuple[int, ...], allow_resolution: bool) -> SceneReader:
    meta = files.metadata
    if meta is not None and (scale is not None or offset is not None):
        raise SceneError(f"{meta.metadata_file} sets the radiometry of {files.source}; drop scale and offset",
                         params=("scale", "offset"))
    datasets: dict = {}

    def get(path: str, what: str):
        if path not in datasets:
            datasets[path] = _open(path, what)
        return datasets[path]

    try:
        ref = get(files.bands["B02"], "B02 file")
        if ref.crs is None:
            raise SceneError(f"{files.bands['B02']}: B02 has no CRS; give georeferenced band files")
        sources = []
        for band, path in files.bands.items():
            ds = get(path, f"{band} file")
            if not allow_resolution:
                check_resolution(ds.res, NATIVE_RESOLUTION_M[band], band, path)
            _check_grid(ref, "B02", ds, f"{band} ({path})")
            if meta is not None:
                s, o, nd = meta.scale(band), meta.offset(band), 0.0
            else:
                s, o = _radiometry(ds, path, scale, offset)
                nd = ds.nodata if ds.nodata is not None else (0.0 if np.issubdtype(np.dtype(ds.dtypes[0]),
                                                                                    np.integer) else None)
            sources.append(BandSource(band, path, 1, o, s, nd))
        mask_desc, classes = _mask_description(files, cloud_classes)
        mask_path = files.mask if cloud_classes else None      # None where there is no mask too
        if mask_path is not None and files.mask_kind == "MSK_CLOUDS":
            epsg = files.mask_shapes.epsg if files.mask_shapes else None
            if epsg is not None and ref.crs.to_epsg() != epsg:
                raise SceneError(f"{mask_path}: cloud polygons in EPSG:{epsg}, the bands in {ref.crs}; "
                                 "give files of one product")
        elif mask_path is not None:
            _check_grid(ref, "B02", get(mask_path, "cloud mask"), f"cloud mask ({mask_path})")
        level = meta.level if meta else "unknown"
        warnings = []
        if level == "L2A":
            warnings.append("Level-2A (bottom-of-atmosphere) reflectance: Sen2LCZ-Net was trained on So2Sat "
                            "LCZ42's Level-1C (top-of-atmosphere) cloud-free composites, so expect shifted "
                            "predictions; prefer the L1C product of the same date")
        smeta = SceneMetadata(
            source=files.source, kind=files.kind, level=level, product_id=meta.product_id if meta else None,
            processing_baseline=meta.processing_baseline if meta else None,
            offsets={s.band: s.offset for s in sources}, scales={s.band: s.scale for s in sources},
            cloud_mask=mask_desc, cloud_classes=classes,
            files={**files.bands, **({"mask": mask_path} if mask_path else {})}, warnings=tuple(warnings),
            sensing_time=meta.sensing_time if meta else None)
        origin = (files.zip_path,) if files.zip_path else files.origin or tuple(Path(p) for p in smeta.files.values())
        reader = SceneReader(sources, smeta, ref.crs, ref.transform, ref.width, ref.height, mask_path=mask_path,
                             mask_kind=files.mask_kind if mask_path else None, origin=origin,
                             mask_shapes=files.mask_shapes if mask_path else None, _datasets=datasets)
    except BaseException:
        for ds in datasets.values():
            ds.close()
        raise
    if meta is None and scale is None:
        _check_plausible(reader, files.source)
    return reader


def _mask_description(files: ProductFiles, cloud_classes: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    if files.mask is None:
        return f"none ({files.mask_note})", ()
    if files.mask_kind == "SCL":
        if not cloud_classes:
            return "none (--cloud-classes none)", ()
        names = ", ".join(f"{c} {SCL_CLASS_NAMES[c]}" for c in cloud_classes)
        return f"SCL classes {names}", cloud_classes
    if not cloud_classes:
        return "none (--cloud-classes none)", ()
    if files.mask_kind == "MSK_CLOUDS":
        n = len(files.mask_shapes.polygons) if files.mask_shapes else 0
        return f"MSK_CLOUDS_B00.gml opaque clouds and cirrus ({n} polygons)", ()
    return "MSK_CLASSI_B00 opaque clouds and cirrus", ()


def open_scene(path: Path | str | Sequence[Path | str], *, bands: Sequence[str] | None = None,
               scale: float | None = None, offset: float | None = None,
               cloud_classes: Sequence[int] = tuple(MapsConfig().cloud_classes),
               allow_resolution: bool = False) -> SceneReader:
    """Open a scene for mapping; raises SceneError (one line) for unusable input.

    ``path``: a .SAFE folder or its .zip (radiometry from the product's metadata), a STAC Item
    (``.json``; :mod:`lczldl.maps.stac_input`), a folder or list
    of per-band files (``..._B02.jp2``, ``..._B8A_20m.jp2``, ``B02.tif``; radiometry from ``scale`` /
    ``offset``), or one stacked GeoTIFF (So2Sat band order, or the order ``bands`` names).
    ``bands``: product band names (:func:`lczldl.maps.radiometry.parse_band_list`). ``cloud_classes``:
    SCL classes masked in L2A input (default: :class:`lczldl.config.MapsConfig`'s); empty = no cloud
    mask (L1C's MSK_CLASSI too). ``allow_resolution``: map bands whose pixel size is not
    Sentinel-2's instead of refusing them.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    if not paths:
        raise SceneError("no scene given; pass a .SAFE folder, .zip, band files or a GeoTIFF")
    for p in paths:
        if not p.exists():
            raise SceneError(f"{p}: scene not found; pass an existing .SAFE folder, .zip, band files or GeoTIFF")
    classes = tuple(cloud_classes)
    if len(paths) == 1 and mtd_level(paths[0].name):
        raise SceneError(f"{paths[0]}: pass the .SAFE folder that holds this metadata file, not the file")
    if len(paths) == 1 and paths[0].suffix.upper() == ".SAFE" and not is_safe_folder(paths[0]):
        raise SceneError(f"{paths[0]}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml at its root; the product is incomplete "
                         "(re-download it) or of the pre-2017 multi-tile format, which is not supported")
    if bands is not None and (len(paths) > 1 or paths[0].is_dir() or paths[0].suffix.lower() in (".zip", ".json")):
        raise SceneError("bands names the band order of one stacked GeoTIFF; product folders, zips and band "
                         "files are named by their file names", params=("bands",))
    allow = bool(allow_resolution)
    if len(paths) > 1:
        reader = _open_product(find_band_files(paths), scale, offset, classes, allow)
    elif is_safe_folder(paths[0]):
        reader = _open_product(find_safe_folder(paths[0]), scale, offset, classes, allow)
    elif paths[0].is_dir():
        reader = _open_product(find_band_files(paths), scale, offset, classes, allow)
    elif paths[0].suffix.lower() == ".zip":
        reader = _open_product(find_safe_zip(paths[0]), scale, offset, classes, allow)
    elif is_stac_item(paths[0]):
        reader = _open_product(find_stac_item(paths[0]), scale, offset, classes, allow)
    else:
        reader = _open_stacked(paths[0], bands, scale, offset, allow)
    t = reader.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        reader.close()
        raise SceneError(f"{reader.metadata.source}: the grid is rotated or flipped ({tuple(t)[:6]}); "
                         "warp it to a north-up grid first")
    if reader.width < PATCH_SIZE or reader.height < PATCH_SIZE:
        reader.close()
        raise SceneError(f"{reader.metadata.source}: scene is {reader.width}x{reader.height} px, smaller than "
                         f"one {PATCH_SIZE}x{PATCH_SIZE} window")
    return reader
