"""Owns finding the files of a Sentinel-2 product (``.SAFE`` folder, its ``.zip``, a folder or list
of per-band files) and reading its ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` radiometry.

Layouts (ESA product specification, compact naming since 2016):
- L1C: ``GRANULE/L1C_*/IMG_DATA/T{tile}_{time}_B02.jp2`` (every band at its native resolution),
  cloud mask ``GRANULE/L1C_*/QI_DATA/MSK_CLASSI_B00.jp2`` from processing baseline 04.00, the vector
  ``MSK_CLOUDS_B00.gml`` before (:mod:`lczldl.maps.cloudgml`).
- L2A: ``GRANULE/L2A_*/IMG_DATA/R10m/T{tile}_{time}_B02_10m.jp2``, ``R20m/..._B05_20m.jp2``,
  ``R20m/..._SCL_20m.jp2``, ``R60m/...``; a band present at several resolutions is taken at the
  finest (B02 from R10m, B05 from R20m). Level-2Ap products (baselines 02.05-02.07, 2017-2018)
  name their band files ``L2A_T34VFJ_{time}_B02_10m.jp2`` and their metadata elements
  ``L2A_BOA_QUANTIFICATION_VALUE``, ``PRODUCT_URI_2A``, ``IMAGE_FILE_2A``.
- The metadata file name is matched case-insensitively (``MTD_MSIL2a.xml`` occurs).
- Zips are read member by member through GDAL's ``/vsizip/`` (nothing is extracted).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lczldl.errors import SceneError
from lczldl.maps.cloudgml import GML_NAME, CloudPolygons, parse_cloud_gml
from lczldl.maps.radiometry import S2_BAND_IDS, SO2SAT_BANDS

#: metadata file name -> product level (matched case-insensitively: :func:`mtd_level`)
MTD_LEVELS = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}
#: element names per level: (quantification, offset)
RADIOMETRY_ELEMENTS = {"L1C": ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET"),
                       "L2A": ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET")}
#: other names of an element in Level-2Ap products (baselines 02.05-02.07)
L2AP_NAMES = {"BOA_QUANTIFICATION_VALUE": "L2A_BOA_QUANTIFICATION_VALUE", "PRODUCT_URI": "PRODUCT_URI_2A"}
#: the processing baseline from which products carry an additive offset
OFFSET_BASELINE = (4, 0)
#: a band file: ``..._B02.jp2``, ``..._B8A_20m.jp2``, ``..._SCL_20m.jp2``, ``B02.tif``
BAND_FILE_RE = re.compile(r"(?:^|_)(B0[1-9]|B1[0-2]|B8A|SCL)(?:_(\d+)m)?\.(?:jp2|tiff?)$", re.IGNORECASE)
CLASSI_NAME = "MSK_CLASSI_B00.jp2"


@dataclass(frozen=True)
class ProductMetadata:
    """Radiometry and identity read from a product's MTD_MSIL1C.xml / MTD_MSIL2A.xml."""

    metadata_file: str
    level: str                          # "L1C" or "L2A"
    product_id: str | None              # PRODUCT_URI without ".SAFE"
    processing_baseline: str | None     # e.g. "05.09"
    quantification: float               # QUANTIFICATION_VALUE / BOA_QUANTIFICATION_VALUE
    offsets: dict[str, float] = field(default_factory=dict)  # band -> RADIO/BOA_ADD_OFFSET; {} before 04.00
    sensing_time: str | None = None     # PRODUCT_START_TIME (ISO 8601)
    scales: dict[str, float] = field(default_factory=dict)   # band -> its own divisor (STAC raster:bands)

    def offset(self, band: str) -> float:
        """The additive offset (DN) of ``band``: 0 for products without offsets."""
        return self.offsets.get(band, 0.0) if self.offsets else 0.0

    def scale(self, band: str) -> float:
        """The divisor of ``band``: its own, else the quantification value."""
        return self.scales.get(band, self.quantification)


@dataclass(frozen=True)
class ProductFiles:
    """Where a product's pieces are: GDAL paths (``/vsizip/...`` inside zips)."""

    source: str                          # what the user gave
    kind: str                            # "safe", "safe-zip" or "band-files"
    bands: dict[str, str]                # So2Sat band -> GDAL path
    metadata: ProductMetadata | None = None
    mask: str | None = None              # GDAL path of the cloud mask raster
    mask_kind: str | None = None         # "SCL", "MSK_CLASSI" or "MSK_CLOUDS" (polygons in mask_shapes)
    mask_note: str = ""                  # why no mask, when there is none
    zip_path: Path | None = None
    mask_shapes: CloudPolygons | None = None
    origin: tuple[Path, ...] = ()        # local files behind the paths (beyond the bands and mask)


def mtd_level(name: str) -> str | None:
    """The product level of a metadata file name, any case (``MTD_MSIL2a.xml`` -> "L2A"), else None."""
    return {k.upper(): v for k, v in MTD_LEVELS.items()}.get(name.upper())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _baseline_tuple(text: str) -> tuple[int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)\s*$", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_product_xml(data: bytes, source: str) -> ProductMetadata:
    """Parse MTD_MSIL1C.xml / MTD_MSIL2A.xml bytes (``source`` names the file in errors)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SceneError(f"{source}: not readable XML ({exc}); re-download the product") from None
    root_name = _local(root.tag)
    level = {"Level-1C_User_Product": "L1C", "Level-2A_User_Product": "L2A"}.get(root_name)
    if level is None:
        raise SceneError(f"{source}: root element {root_name!r} is not a Sentinel-2 Level-1C/2A user "
                         "product (MTD_MSIL1C.xml / MTD_MSIL2A.xml)")
    elements = list(root.iter())

    def text(name: str) -> str | None:
        for wanted in (name, L2AP_NAMES.get(name)):
            for el in elements:
                if _local(el.tag) == wanted and el.text and el.text.strip():
                    return el.text.strip()
        return None

    quant_name, offset_name = RADIOMETRY_ELEMENTS[level]
    quant_text = text(quant_name)
    if quant_text is None:
        raise SceneError(f"{source}: no {quant_name} element, so digital numbers cannot be turned into "
                         "reflectance; re-download the product (or give its band files with scale and offset)",
                         params=("scale", "offset"))
    try:
        quantification = float(quant_text)
    except ValueError:
        quantification = float("nan")
    if not quantification > 0:
        raise SceneError(f"{source}: {quant_name} is {quant_text!r}, not a positive number; re-download the product")
    offsets: dict[str, float] = {}
    for el in elements:
        if _local(el.tag) != offset_name:
            continue
        try:
            band = S2_BAND_IDS[int(el.attrib["band_id"])]
            value = float((el.text or "").strip())
        except (KeyError, ValueError, IndexError):
            raise SceneError(f"{source}: malformed {offset_name} {ET.tostring(el, encoding='unicode').strip()!r}; "
                             "expected band_id 0..12 and a number") from None
        if band in offsets:
            raise SceneError(f"{source}: {offset_name} given twice for band_id {S2_BAND_IDS.index(band)} ({band})")
        offsets[band] = value
    baseline = text("PROCESSING_BASELINE")
    base = _baseline_tuple(baseline or "")
    if not offsets and base is not None and base >= OFFSET_BASELINE:
        raise SceneError(f"{source}: processing baseline {baseline} products carry {offset_name} (-1000) but "
                         "none is listed; the metadata is incomplete, re-download the product")
    missing = [b for b in SO2SAT_BANDS if offsets and b not in offsets]
    if missing:
        raise SceneError(f"{source}: no {offset_name} for {', '.join(missing)} "
                         f"(band_id {', '.join(str(S2_BAND_IDS.index(b)) for b in missing)})")
    uri = text("PRODUCT_URI")
    return ProductMetadata(metadata_file=source, level=level,
                           product_id=uri.removesuffix(".SAFE") if uri else None,
                           processing_baseline=baseline, quantification=quantification, offsets=offsets,
                           sensing_time=text("PRODUCT_START_TIME"))


def pick_band_files(names: Iterable[str], where: str) -> dict[str, str]:
    """Band -> file among ``names`` (paths); a band at several resolutions is taken at the finest
    (``_10m`` before ``_20m``; no suffix = native). Two files for one band and resolution -> error."""
    found: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        m = BAND_FILE_RE.search(os.path.basename(name))
        if m:
            res = int(m.group(2)) if m.group(2) else 0
            found.setdefault(m.group(1).upper(), []).append((res, name))
    out = {}
    for band, items in found.items():
        items.sort()
        if len(items) > 1 and items[0][0] == items[1][0]:
            raise SceneError(f"{where}: two files for {band} ({os.path.basename(items[0][1])}, "
                             f"{os.path.basename(items[1][1])}); keep one product's files per folder")
        out[band] = items[0][1]
    return out


def _require_bands(picked: dict[str, str], where: str) -> dict[str, str]:
    missing = [b for b in SO2SAT_BANDS if b not in picked]
    if missing:
        raise SceneError(f"{where}: no file for band {', '.join(missing)} (looked for names like "
                         f"T32UPU_20230615T103631_{missing[0]}.jp2 or ..._{missing[0]}_20m.jp2); "
                         "the product is incomplete, re-download it")
    return {b: picked[b] for b in SO2SAT_BANDS}


def _select_product(members: Sequence[str], where: str) -> tuple[str, str, dict[str, str], str | None]:
    """From a SAFE's member paths (relative, '/'-separated): (metadata member, level, band members,
    cloud-mask member or None)."""
    mtds = [m for m in members if mtd_level(m.rsplit("/", 1)[-1]) and m.count("/") <= 1]
    if len(mtds) != 1:
        raise SceneError(f"{where}: {'no' if not mtds else 'several'} MTD_MSIL1C.xml / MTD_MSIL2A.xml at the "
                         "product root; pass an unmodified .SAFE folder or its .zip")
    mtd = mtds[0]
    level = mtd_level(mtd.rsplit("/", 1)[-1])
    prefix = mtd[: len(mtd) - len(mtd.rsplit("/", 1)[-1])]
    granule_re = re.compile(re.escape(prefix) + r"GRANULE/([^/]+)/(IMG_DATA|QI_DATA)/")
    granules = sorted({m.group(1) for m in map(granule_re.match, members) if m})
    if len(granules) != 1:
        raise SceneError(f"{where}: {len(granules)} granules under GRANULE/; only single-tile products "
                         "(the compact SAFE naming since December 2016) are supported")
    img = f"{prefix}GRANULE/{granules[0]}/IMG_DATA/"
    picked = pick_band_files([m for m in members if m.startswith(img)], where)
    if level == "L2A":
        mask = picked.get("SCL")
    else:
        qi = f"{prefix}GRANULE/{granules[0]}/QI_DATA/"
        mask = next((qi + n for n in (CLASSI_NAME, GML_NAME) if qi + n in members), None)
    return mtd, level, _require_bands(picked, where), mask


def _mask_fields(level: str, mask: str | None, gml: bytes | None) -> dict:
    """ProductFiles' mask fields; ``gml``: the bytes of an MSK_CLOUDS_B00.gml ``mask``."""
    if mask is not None and mask.endswith(GML_NAME):
        return {"mask": mask, "mask_kind": "MSK_CLOUDS", "mask_shapes": parse_cloud_gml(gml or b"", mask)}
    if mask is not None:
        return {"mask": mask, "mask_kind": "SCL" if level == "L2A" else "MSK_CLASSI"}
    if level == "L2A":
        return {"mask_note": "the product has no SCL layer"}
    return {"mask_note": f"the product has neither QI_DATA/{CLASSI_NAME} nor QI_DATA/{GML_NAME}"}


def find_safe_folder(path: Path) -> ProductFiles:
    """A .SAFE folder -> its files and metadata."""
    members = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    mtd, level, bands, mask = _select_product(members, str(path))
    meta = parse_product_xml((path / mtd).read_bytes(), str(path / mtd))
    gml = (path / mask).read_bytes() if mask is not None and mask.endswith(GML_NAME) else None
    return ProductFiles(source=str(path), kind="safe", metadata=meta,
                        bands={b: str(path / m) for b, m in bands.items()},
                        **_mask_fields(level, None if mask is None else str(path / mask), gml))


def find_safe_zip(path: Path) -> ProductFiles:
    """A zipped .SAFE -> /vsizip/ paths of its members (reads only the zip's directory and the XML)."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(n for n in zf.namelist() if not n.endswith("/"))
            mtd, level, bands, mask = _select_product(members, str(path))
            data = zf.read(mtd)
            gml = zf.read(mask) if mask is not None and mask.endswith(GML_NAME) else None
    except (zipfile.BadZipFile, OSError) as exc:
        raise SceneError(f"{path}: cannot read the zip ({exc}); re-download the product") from None
    meta = parse_product_xml(data, f"{path}!{mtd}")
    vsi = f"/vsizip/{path.resolve().as_posix()}/"
    return ProductFiles(source=str(path), kind="safe-zip", metadata=meta, zip_path=path,
                        bands={b: vsi + m for b, m in bands.items()},
                        **_mask_fields(level, None if mask is None else vsi + mask, gml))


def find_band_files(paths: Sequence[Path]) -> ProductFiles:
    """A folder of per-band files (searched recursively) or a list of them -> band files; an SCL
    file among them becomes the cloud mask. No metadata: radiometry comes from ``scale`` / ``offset``."""
    if len(paths) == 1 and paths[0].is_dir():
        where = str(paths[0])
        names = sorted(str(p) for p in paths[0].rglob("*") if p.is_file())
    else:
        where = ", ".join(str(p) for p in paths) if len(paths) <= 3 else f"{paths[0]} and {len(paths) - 1} more"
        for p in paths:
            if not p.is_file():
                raise SceneError(f"{p}: band file not found; pass existing files")
            if not BAND_FILE_RE.search(p.name):
                raise SceneError(f"{p}: no band in the file name (expected ..._B02.jp2, ..._B8A_20m.jp2, "
                                 "B02.tif, ...); name the files after their bands")
        names = [str(p) for p in paths]
    picked = pick_band_files(names, where)
    bands = _require_bands(picked, where)
    for path in bands.values():
        product = next((p for p in Path(path).resolve().parents if is_safe_folder(p)), None)
        if product is not None:
            raise SceneError(f"{path} lies inside the product {product}; pass that .SAFE folder itself, so that "
                             "its metadata sets the radiometry")
    scl = picked.get("SCL")
    return ProductFiles(source=where, kind="band-files", bands=bands, mask=scl,
                        mask_kind="SCL" if scl else None,
                        mask_note="" if scl else "no SCL file among the band files")


def is_safe_folder(path: Path) -> bool:
    """A folder holding MTD_MSIL1C.xml or MTD_MSIL2A.xml (any case) at its root."""
    return path.is_dir() and any(p.is_file() and mtd_level(p.name) for p in path.iterdir())
