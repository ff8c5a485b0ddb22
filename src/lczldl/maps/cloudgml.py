"""Owns the vector cloud mask of Level-1C products before processing baseline 04.00:
``GRANULE/*/QI_DATA/MSK_CLOUDS_B00.gml`` (GML 3.2 in an ``eop:Mask``). Pure functions on the file's
bytes (the standard library's XML parser); rasterising is the scene reader's.

Layout (product specification): ``eop:maskMembers/eop:MaskFeature`` elements, each with an
``eop:maskType`` (``OPAQUE`` or ``CIRRUS``) and ``eop:extentOf/gml:Polygon`` (``srsName`` e.g.
``urn:ogc:def:crs:EPSG::32632``) whose ``gml:exterior`` and ``gml:interior`` rings are
``gml:LinearRing/gml:posList`` coordinates (x y pairs in the tile's UTM CRS, ``srsDimension`` 2, or 3
with a height). A product without clouds has a mask with no features.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from lczldl.errors import SceneError

#: mask types that are clouds (every other type is ignored)
CLOUD_MASK_TYPES: tuple[str, ...] = ("OPAQUE", "CIRRUS")
GML_NAME = "MSK_CLOUDS_B00.gml"


@dataclass(frozen=True)
class CloudPolygons:
    """Cloud polygons of one product: GeoJSON-like polygons (x, y in ``epsg``), their mask types
    and bounding boxes (left, bottom, right, top)."""

    polygons: tuple[dict, ...]
    kinds: tuple[str, ...]
    bounds: tuple[tuple[float, float, float, float], ...]
    epsg: int | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ring(pos_list: ET.Element, dim: int, source: str) -> list[tuple[float, float]]:
    try:
        values = [float(v) for v in (pos_list.text or "").split()]
    except ValueError:
        raise SceneError(f"{source}: a gml:posList holds something that is not a number; re-download the "
                         "product") from None
    dim = int(pos_list.attrib.get("srsDimension", dim))
    if dim < 2 or len(values) % dim or len(values) < 3 * dim:
        raise SceneError(f"{source}: a gml:posList of {len(values)} numbers is no ring of {dim}-D points")
    return [(values[i], values[i + 1]) for i in range(0, len(values), dim)]


def _epsg(srs: str | None) -> int | None:
    m = re.search(r"EPSG:(?:[0-9.]*:)?(\d+)$", srs or "")
    return int(m.group(1)) if m else None


def parse_cloud_gml(data: bytes, source: str) -> CloudPolygons:
    """MSK_CLOUDS_B00.gml bytes -> its opaque and cirrus polygons (``source`` names the file in errors)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SceneError(f"{source}: not readable XML ({exc}); re-download the product") from None
    polygons, kinds, bounds, codes = [], [], [], set()
    for feature in (el for el in root.iter() if _local(el.tag) == "MaskFeature"):
        kind = next(((el.text or "").strip().upper() for el in feature.iter() if _local(el.tag) == "maskType"), "")
        if kind not in CLOUD_MASK_TYPES:
            continue
        for poly in (el for el in feature.iter() if _local(el.tag) == "Polygon"):
            code = _epsg(poly.attrib.get("srsName"))
            if code is not None:
                codes.add(code)
            dim = int(poly.attrib.get("srsDimension", 2))
            rings = []
            for part in ("exterior", "interior"):
                for holder in (el for el in poly if _local(el.tag) == part):
                    pos = next((el for el in holder.iter() if _local(el.tag) == "posList"), None)
                    if pos is None:
                        raise SceneError(f"{source}: a gml:{part} ring without gml:posList; re-download the product")
                    rings.append(_ring(pos, dim, source))
            if not rings:
                continue
            xs, ys = [x for x, _ in rings[0]], [y for _, y in rings[0]]
            polygons.append({"type": "Polygon", "coordinates": rings})
            kinds.append(kind)
            bounds.append((min(xs), min(ys), max(xs), max(ys)))
    if len(codes) > 1:
        raise SceneError(f"{source}: polygons in several CRSs ({sorted(codes)}); re-download the product")
    return CloudPolygons(tuple(polygons), tuple(kinds), tuple(bounds), codes.pop() if codes else None)
