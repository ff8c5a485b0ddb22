"""Owns the STAC Item that catalogues a map (``stac_item.json`` beside it; pystac writes it).

- geometry / bbox: the map's footprint in longitude/latitude (edges densified); ``proj:*`` (the
  projection extension v2.0.0): its CRS code, shape, transform and bbox in that CRS;
- datetime: the sensing time of the source product (its metadata or STAC Item); when the source
  says none (a GeoTIFF without metadata) the time the map was made, flagged by
  ``lczldl:datetime_source``;
- assets with roles: ``lcz`` / ``lcz_filter`` (data; the filtered map also visual), ``uncertainty``,
  ``probability`` (data), ``preview`` (overview), ``record`` (metadata); each GeoTIFF lists its bands
  (STAC 1.1 ``bands``), and the class maps list every class code, name and colour (the
  classification extension v2.0.0, ``classification:classes``);
- provenance: a ``derived_from`` link to the source, and ``lczldl:*`` properties naming the source
  product, checkpoints (with SHA-256), settings and the lczldl version.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lczldl.constants import LCZ_CODES, LCZ_COLORS, LCZ_NAMES
from lczldl.fileio import atomic_write_text, dumps_json
from lczldl.layout import (
    MAP_LCZ,
    MAP_LCZ_FILTER,
    MAP_PREVIEW,
    MAP_PROBABILITY,
    MAP_RECORD,
    MAP_STAC_ITEM,
    MAP_UNCERTAINTY,
)
from lczldl.maps.grid import OutputGrid

#: band descriptions of the map's bands in the STAC Item
BAND_TEXT = {
    "lcz": "LCZ of the most probable class (argmax), 0 = no data",
    "lcz_filter": "Gaussian-filtered LCZ (the LCZ Generator's / global map's filter), 0 = no data",
    "lcz_probability": "probability of the most probable class in % (a model probability), 0 = no data",
    "entropy": "predictive entropy (nats)",
    "mutual_information": "mutual information between prediction and members / MC passes (nats)",
    "set_size": "classes in the conformal prediction set",
}


def class_slug(k: int) -> str:
    """Machine name of LCZ ``k`` (1-based) for the classification extension: letters, digits, _."""
    return re.sub(r"[^0-9a-z]+", "_", LCZ_NAMES[k - 1].lower()).strip("_")


def lcz_classes(num_classes: int) -> list[dict]:
    """``classification:classes``: no data (0), then LCZ 1..K with code, name and colour."""
    out = [{"value": 0, "name": "no_data", "description": "no data (clouds, no-data pixels, outside)",
            "nodata": True}]
    for k in range(1, num_classes + 1):
        out.append({"value": k, "name": class_slug(k), "title": f"LCZ {LCZ_CODES[k - 1]} {LCZ_NAMES[k - 1]}",
                    "description": f"Local Climate Zone {LCZ_CODES[k - 1]}",
                    "color_hint": LCZ_COLORS[k - 1].lstrip("#").upper()})
    return out


def footprint(grid: OutputGrid, crs) -> tuple[dict, list[float], list[float]]:
    """(GeoJSON polygon in lon/lat, its bbox, the map's bbox in ``crs``): the edges densified."""
    from rasterio.warp import transform

    t = grid.transform
    left, top = t.c, t.f
    right, bottom = t.c + grid.cols * t.a, t.f + grid.rows * t.e
    n = 21
    xs = np.concatenate([np.linspace(left, right, n), np.full(n, right), np.linspace(right, left, n), np.full(n, left)])
    ys = np.concatenate([np.full(n, top), np.linspace(top, bottom, n), np.full(n, bottom), np.linspace(bottom, top, n)])
    lon, lat = transform(crs, "EPSG:4326", xs.tolist(), ys.tolist())
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [min(lon), min(lat), max(lon), max(lat)]
    return {"type": "Polygon", "coordinates": [ring]}, bbox, [left, bottom, right, top]


def _sensing(record: dict) -> tuple[datetime, str]:
    text = record.get("sensing_time")
    if text:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)), "source"
    return datetime.now(timezone.utc).replace(microsecond=0), "map creation (the source gives no sensing time)"


def stac_item(record: dict, grid: OutputGrid, crs, num_classes: int) -> dict:
    """The STAC Item of a finished map (``record``: its predict.json) as a dict."""
    import pystac
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.projection import ProjectionExtension
    from rasterio.crs import CRS

    geometry, bbox, proj_bbox = footprint(grid, crs)
    when, when_source = _sensing(record)
    name = record.get("product_id") or Path(str(record["scene"]).split(",")[0].strip()).stem
    item = pystac.Item(id=f"lczldl-{name}", geometry=geometry, bbox=bbox, datetime=when, properties={
        "title": f"LCZ map of {name} (lcz-ldl)",
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "lczldl:version": record["lczldl_version"], "lczldl:datetime_source": when_source,
        "lczldl:source": {k: record.get(k) for k in ("scene", "scene_kind", "product_id", "level",
                                                      "processing_baseline", "radiometry", "cloud_mask")},
        "lczldl:checkpoints": [{"path": c, "sha256": h} for c, h in
                               zip(record["checkpoints"], record["checkpoint_sha256"], strict=True)],
        "lczldl:settings": {"stride_px": record["stride_px"], "mc_passes": record["mc_passes"],
                            "temperatures": record["temperatures"], "filter_sigma_m": record["filter_sigma_m"],
                            "max_cloud_share": record["max_cloud_share"], "conformal": record["conformal"]},
    })
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = CRS.from_user_input(crs).to_epsg()
    if epsg is not None:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.wkt2 = CRS.from_user_input(crs).to_wkt()
    proj.shape = [grid.rows, grid.cols]
    proj.transform = [float(v) for v in tuple(grid.transform)[:6]]
    proj.bbox = [float(v) for v in proj_bbox]
    classes = [Classification(c) for c in lcz_classes(num_classes)]
    titles = {MAP_LCZ: "LCZ, filtered LCZ, probability of the LCZ (%)", MAP_LCZ_FILTER: "Filtered LCZ",
              MAP_UNCERTAINTY: "Uncertainty", MAP_PROBABILITY: "Per-class probabilities"}
    roles = {MAP_LCZ: ["data"], MAP_LCZ_FILTER: ["data", "visual"], MAP_UNCERTAINTY: ["data"],
             MAP_PROBABILITY: ["data"]}
    for file, bands in record["bands"].items():
        asset = pystac.Asset(href=f"./{file}", media_type=pystac.MediaType.COG, roles=roles[file],
                             title=titles[file], extra_fields={"bands": [
                                 {"name": b, "description": BAND_TEXT.get(b, f"probability of {b[:-12].upper()}"),
                                  **({"classification:classes": [c.to_dict() for c in classes]}
                                     if b in ("lcz", "lcz_filter") else {})} for b in bands]})
        item.add_asset(file.removesuffix(".tif"), asset)
        if file in (MAP_LCZ, MAP_LCZ_FILTER):
            ClassificationExtension.ext(asset, add_if_missing=True)
    item.add_asset("preview", pystac.Asset(href=f"./{MAP_PREVIEW}", media_type=pystac.MediaType.PNG,
                                           roles=["overview"], title="LCZ, filtered LCZ and entropy"))
    item.add_asset("record", pystac.Asset(href=f"./{MAP_RECORD}", media_type=pystac.MediaType.JSON,
                                          roles=["metadata"], title="predict.json: inputs, settings, checksums"))
    source = record.get("stac_source") or str(Path(str(record["scene"]).split(",")[0].strip()).resolve())
    item.add_link(pystac.Link(rel="derived_from", target=source, title="the Sentinel-2 scene mapped"))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def write_stac_item(out: Path, record: dict, grid: OutputGrid, crs, num_classes: int) -> Path:
    """Write ``out/stac_item.json`` atomically; returns its path."""
    return atomic_write_text(Path(out) / MAP_STAC_ITEM, dumps_json(stac_item(record, grid, crs, num_classes)) + "\n")
