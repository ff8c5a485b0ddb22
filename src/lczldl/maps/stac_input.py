"""Owns reading a Sentinel-2 STAC Item (as saved from a STAC API or catalogue) as a scene: its assets
are per-band COGs (local paths, relative to the Item, or URLs GDAL reads: http(s) through
``/vsicurl/``, s3 through ``/vsis3/``). Only reads: nothing an Item names is written or run, and
only raster files (.tif, .tiff, .jp2) are opened.

- Bands: the asset keys of the public Sentinel-2 collections, any case: the product's band names
  (``B02`` ... ``B12``, ``B8A``, ``SCL``; Planetary Computer) or the common names (``blue``,
  ``green``, ``red``, ``rededge1``-``3``, ``nir``, ``nir08``, ``swir16``, ``swir22``, ``scl``;
  Earth Search).
- Radiometry: reflectance = (DN + offset) / scale as for products. From an asset's ``raster:bands``
  (reflectance = DN * s + o) when it gives ``scale``: scale = 1 / s, offset = o / s; else from the
  processing baseline (``s2:processing_baseline``: -1000 from 04.00 on, 0 before; quantification
  10000); refused when neither is there.
- Level: ``s2:product_type`` (S2MSI1C / S2MSI2A) or the collection id (``sentinel-2-l1c`` / ``-l2a``).
  Cloud mask: the SCL asset (L2A), as for products. Sensing time: the Item's ``datetime``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from lczldl.errors import SceneError
from lczldl.maps.radiometry import SO2SAT_BANDS
from lczldl.maps.safe import OFFSET_BASELINE, ProductFiles, ProductMetadata

#: band -> asset keys that hold it (product name first, then the common name)
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "B02": ("B02", "blue"), "B03": ("B03", "green"), "B04": ("B04", "red"), "B05": ("B05", "rededge1"),
    "B06": ("B06", "rededge2"), "B07": ("B07", "rededge3"), "B08": ("B08", "nir"), "B8A": ("B8A", "nir08"),
    "B11": ("B11", "swir16"), "B12": ("B12", "swir22"), "SCL": ("SCL", "scl"),
}
#: file endings of assets that are opened
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: the quantification of Sentinel-2 products (reflectance x 10000)
QUANTIFICATION = 10000.0


def is_stac_item(path: Path) -> bool:
    """A ``.json`` file holding a GeoJSON Feature with ``stac_version`` and ``assets``."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc and "assets" in doc


def gdal_path(href: str, base: Path, where: str) -> tuple[str, Path | None]:
    """(the path GDAL opens, the local file or None) of an asset ``href``; relative hrefs are
    relative to the Item's folder ``base``."""
    url = urlparse(href)
    scheme = url.scheme.lower()
    if scheme in ("http", "https"):
        path, local = f"/vsicurl/{href}", None
    elif scheme == "s3":
        path, local = f"/vsis3/{url.netloc}{url.path}", None
    elif scheme == "file":
        local = Path(unquote(url.path))
        path = str(local)
    elif scheme == "" or len(scheme) == 1:           # a path (or a Windows drive letter)
        local = Path(href) if Path(href).is_absolute() else (base / href)
        path = str(local)
    else:
        raise SceneError(f"{where}: asset href {href!r} has scheme {scheme!r}; only local paths, file://, "
                         "http(s):// and s3:// are read")
    if not url.path.lower().endswith(RASTER_SUFFIXES):
        raise SceneError(f"{where}: asset href {href!r} is not a GeoTIFF or JPEG 2000 file "
                         f"({', '.join(RASTER_SUFFIXES)})")
    if local is not None and not local.is_file():
        raise SceneError(f"{where}: asset file {local} not found; keep the Item beside its files or fix its hrefs")
    return path, local


def _asset(assets: dict, band: str) -> tuple[str, dict] | None:
    lower = {k.lower(): k for k in assets}
    for key in ASSET_KEYS[band]:
        if key.lower() in lower:
            return lower[key.lower()], assets[lower[key.lower()]]
    return None


def _baseline(text: str | None) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return None


def _level(doc: dict) -> str:
    props = doc.get("properties") or {}
    kind = str(props.get("s2:product_type") or "").upper()
    coll = str(doc.get("collection") or "").lower()
    if kind.endswith("1C") or coll.endswith("l1c"):
        return "L1C"
    if kind.endswith("2A") or coll.endswith("l2a"):
        return "L2A"
    return "unknown"


def find_stac_item(path: Path) -> ProductFiles:
    """A STAC Item file -> its band files, SCL mask and radiometry (see the module docstring)."""
    where = str(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    props = doc.get("properties") or {}
    assets = doc.get("assets") or {}
    base = path.resolve().parent
    bands, local, scales, offsets = {}, [], {}, {}
    baseline_text = props.get("s2:processing_baseline")
    base_tuple = _baseline(baseline_text)
    for band in (*SO2SAT_BANDS, "SCL"):
        found = _asset(assets, band)
        if found is None:
            if band == "SCL":
                continue
            raise SceneError(f"{where}: no asset for {band} (looked for keys {' or '.join(ASSET_KEYS[band])}); "
                             "the Item is not a Sentinel-2 Level-1C/2A item with per-band assets")
        key, asset = found
        if "href" not in asset:
            raise SceneError(f"{where}: asset {key!r} has no href")
        bands[band], file = gdal_path(str(asset["href"]), base, f"{where} asset {key!r}")
        if file is not None:
            local.append(file)
        if band == "SCL":
            continue
        raster = (asset.get("raster:bands") or [{}])[0]
        if raster.get("scale") is not None:
            s, o = float(raster["scale"]), float(raster.get("offset") or 0.0)
            if not s > 0:
                raise SceneError(f"{where}: asset {key!r} raster:bands scale {s} is not positive")
            scales[band], offsets[band] = float(f"{1.0 / s:.9g}"), float(f"{o / s:.9g}")
        elif base_tuple is None:
            raise SceneError(f"{where}: asset {key!r} has no raster:bands scale and the Item no "
                             "s2:processing_baseline, so digital numbers cannot be turned into reflectance; "
                             "save the Item with its properties", params=("scale", "offset"))
        else:
            scales[band] = QUANTIFICATION
            offsets[band] = -1000.0 if base_tuple >= OFFSET_BASELINE else 0.0
    meta = ProductMetadata(metadata_file=where, level=_level(doc), product_id=str(doc.get("id") or path.stem),
                           processing_baseline=baseline_text, quantification=QUANTIFICATION, offsets=offsets,
                           sensing_time=props.get("datetime") or props.get("start_datetime"), scales=scales)
    scl = bands.pop("SCL", None)
    return ProductFiles(source=where, kind="stac-item", bands=bands, metadata=meta, mask=scl,
                        mask_kind="SCL" if scl else None,
                        mask_note="" if scl else "the Item has no SCL asset",
                        origin=(path, *local))
