"""Owns the area of interest of a map: ``bbox`` (WEST, SOUTH, EAST, NORTH in longitude/latitude) or
``aoi`` (a GeoJSON file), turned into bounds in the scene's CRS and then into the output cells to map.
An area's label names it as the command line gives it (``--bbox ...``, ``--aoi FILE``), in messages
and in predict.json.

- A GeoJSON AOI is its bounding box: the box around every coordinate of every geometry. Its CRS is
  longitude/latitude (RFC 7946) unless the file carries the older ``"crs"`` member (as QGIS writes
  for projected layers), which is honoured.
- Bounds are reprojected with rasterio (PROJ), densifying the edges, so the box in the scene CRS
  encloses the whole lon/lat box.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform_bounds

from lczldl.errors import SceneError
from lczldl.maps.grid import OutputGrid, cells_in_bounds, sub_grid

LONLAT = "EPSG:4326"


@dataclass(frozen=True)
class Aoi:
    """An area of interest: ``bounds`` (left, bottom, right, top) in ``crs``; ``label`` for messages."""

    bounds: tuple[float, float, float, float]
    crs: str
    label: str


def bbox_aoi(values: Sequence[float]) -> Aoi:
    """``bbox`` (WEST, SOUTH, EAST, NORTH in degrees) -> Aoi; refuses swapped or impossible values."""
    if len(values) != 4:
        raise SceneError(f"bbox needs 4 numbers WEST SOUTH EAST NORTH (degrees), got {len(values)}",
                         params=("bbox",))
    west, south, east, north = (float(v) for v in values)
    label = f"--bbox {west:g} {south:g} {east:g} {north:g}"
    if not (-180 <= west < east <= 180):
        raise SceneError(f"{label}: need -180 <= WEST < EAST <= 180 (longitudes; boxes across the "
                         "antimeridian are not supported)")
    if not (-90 <= south < north <= 90):
        raise SceneError(f"{label}: need -90 <= SOUTH < NORTH <= 90 (latitudes)")
    return Aoi((west, south, east, north), LONLAT, label)


def _coordinates(obj) -> Iterator[tuple[float, float]]:
    if isinstance(obj, list | tuple) and len(obj) >= 2 and all(isinstance(v, int | float) for v in obj[:2]):
        yield float(obj[0]), float(obj[1])
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _coordinates(item)


def _geometries(obj) -> Iterator[dict]:
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "FeatureCollection":
        for feature in obj.get("features") or []:
            yield from _geometries(feature)
    elif kind == "Feature":
        if obj.get("geometry"):
            yield from _geometries(obj["geometry"])
    elif kind == "GeometryCollection":
        for geometry in obj.get("geometries") or []:
            yield from _geometries(geometry)
    elif kind is not None:
        yield obj


def geojson_aoi(path: Path) -> Aoi:
    """The bounding box of every geometry in a GeoJSON file (its CRS: lon/lat, or its ``crs`` member)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SceneError(f"{path}: aoi file not found", params=("aoi",)) from None
    except (OSError, ValueError) as exc:
        raise SceneError(f"{path}: aoi is not readable GeoJSON ({exc})", params=("aoi",)) from None
    points = [p for g in _geometries(doc) for p in _coordinates(g.get("coordinates"))]
    if not points:
        raise SceneError(f"{path}: no coordinates in the GeoJSON; draw the area of interest as a polygon")
    crs = LONLAT
    name = ((doc.get("crs") or {}).get("properties") or {}).get("name") if isinstance(doc, dict) else None
    if name:
        try:
            crs = CRS.from_user_input(name).to_string()
        except CRSError:
            raise SceneError(f"{path}: unknown crs {name!r}; save the GeoJSON in longitude/latitude") from None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    bounds = (min(xs), min(ys), max(xs), max(ys))
    if bounds[0] == bounds[2] or bounds[1] == bounds[3]:
        raise SceneError(f"{path}: the area of interest has no extent ({bounds}); draw a polygon")
    return Aoi(bounds, crs, f"--aoi {path}")


def aoi_grid(aoi: Aoi, grid: OutputGrid, scene_crs, scene_bounds: tuple[float, float, float, float]) -> \
        tuple[OutputGrid, tuple[float, float, float, float], bool]:
    """The part of the full ``grid`` whose cells overlap ``aoi``: (sub-grid, AOI bounds in the scene
    CRS, whether the AOI reaches beyond the scene). SceneError when no window lies in it."""
    bounds = transform_bounds(CRS.from_user_input(aoi.crs), scene_crs, *aoi.bounds, densify_pts=21)
    i0, i1, j0, j1 = cells_in_bounds(grid, bounds)
    if i0 >= i1 or j0 >= j1:
        ll = transform_bounds(scene_crs, CRS.from_user_input(LONLAT), *scene_bounds, densify_pts=21)
        raise SceneError(f"{aoi.label}: no map window lies inside it; the scene covers longitude "
                         f"{ll[0]:.4f}..{ll[2]:.4f}, latitude {ll[1]:.4f}..{ll[3]:.4f} - pick a box inside")
    beyond = (bounds[0] < scene_bounds[0] or bounds[1] < scene_bounds[1] or bounds[2] > scene_bounds[2]
              or bounds[3] > scene_bounds[3])
    return sub_grid(grid, i0, i1, j0, j1), tuple(bounds), beyond
