"""Write small synthetic Sentinel-2 products in the real layouts, for the map tests and benchmark.

    python scripts/make_s2_products.py OUT_DIR [--size 192] [--level L1C|L2A] [--baseline 05.09] [--zip]
                                       [--l2ap] [--stac earth-search|planetary-computer]

What a product holds (all deterministic from ``seed``):
- The compact SAFE layout: ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` at the root (the product
  specification's element names: Product_Info/PRODUCT_URI, PROCESSING_LEVEL, PROCESSING_BASELINE,
  Granule_List/IMAGE_FILE; Product_Image_Characteristics/QUANTIFICATION_VALUE and
  Radiometric_Offset_List/RADIO_ADD_OFFSET (L1C), QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE
  and BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET (L2A); offsets only from baseline 04.00), and
  ``GRANULE/{L1C|L2A}_T32UPU_.../IMG_DATA`` with one lossless JPEG 2000 per band (L1C: every band at
  its native 10/20/60 m; L2A: R10m/R20m/R60m with ``_10m`` ... suffixes, B02 also at 20 m as in real
  products, SCL at 20 m).
- Pixel values: :func:`reflectance_x10000` gives reflectance x 10000 per band at its native grid
  (8 x 8 px blocks around So2Sat's band means, never 0); the DN written is that value minus the
  product's offset (value + 1000 from baseline 04.00). Two planted pixels have known values:
  :data:`KNOWN_10M` (B02) and :data:`KNOWN_20M` (B05).
- Clouds: :data:`CLOUD_BLOCK_10M` (rows, cols on the 10 m grid; whole 60 m pixels). L2A: SCL
  quadrants of classes 8, 9, 10 and 3 there; elsewhere vegetation (4) / not vegetated (5), plus a
  dark-area (2), water (6) and snow (11) patch at :data:`OTHER_BLOCK_10M` that the default mask
  keeps. L1C from 04.00: ``QI_DATA/MSK_CLASSI_B00.jp2`` (60 m, band 1 opaque clouds in the block's
  left half, band 2 cirrus in its right half, band 3 snow at OTHER_BLOCK_10M); before 04.00 the
  vector mask ``QI_DATA/MSK_CLOUDS_B00.gml`` (GML 3.2 ``eop:Mask``: an OPAQUE polygon over the
  block's left half with a one-60 m-pixel hole at :data:`HOLE_10M`, a CIRRUS polygon over its right
  half, in the tile's UTM coordinates).
- Level-2Ap (``l2ap=True``, baselines 02.05-02.07): band files ``L2A_T32UPU_..._B02_10m.jp2`` and the
  elements ``L2A_BOA_QUANTIFICATION_VALUE``, ``PRODUCT_URI_2A`` / ``PRODUCT_URI_1C``,
  ``IMAGE_FILE_2A``, processing level ``Level-2Ap``. ``mtd_name`` spells the metadata file otherwise
  (``MTD_MSIL2a.xml``); ``pixel_factor`` multiplies every pixel size (a downsampled product).
- STAC Items (:func:`write_stac_scene`): the bands as per-band COGs beside an Item in the shape of the
  public Sentinel-2 collections (Earth Search: keys blue ... scl with ``raster:bands`` scale and
  offset; Planetary Computer: keys B02 ... SCL without, ``s2:processing_baseline`` only).
JPEG 2000 is written by rasterio's JP2OpenJPEG driver with QUALITY=100, REVERSIBLE=YES (the 5/3
reversible wavelet) and YCC=NO, so digital numbers round-trip exactly (the default is lossy).
"""

from __future__ import annotations

import argparse
import shutil
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SIZE = 192                                     # 10 m pixels per side (divisible by 6: whole 60 m pixels)
ORIGIN = (600000.0, 5300040.0)                 # upper-left corner, EPSG:32632 (UTM 32N)
CRS = "EPSG:32632"
TILE = "T32UPU"
SENSING = "20230615T103629"
RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
              "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
BAND_IDS = tuple(RESOLUTION)                   # band_id 0..12 order of the product metadata
#: reflectance x 10000 planted at (row, col) of the band's native grid
KNOWN_10M = ("B02", (10, 20), 1234)
KNOWN_20M = ("B05", (7, 9), 2345)
CLOUD_BLOCK_10M = (48, 84, 72, 108)            # rows [48, 84), cols [72, 108): 60 m rows 8..14, cols 12..18
HOLE_10M = (60, 66, 78, 84)                    # a hole in the GML's opaque polygon: one 60 m pixel
OTHER_BLOCK_10M = (120, 156, 24, 60)           # dark area / water / snow, never masked by default
MEANS = {"B01": 1300, "B02": 1238, "B03": 1093, "B04": 1011, "B05": 1142, "B06": 1593, "B07": 1815,
         "B08": 1746, "B8A": 1950, "B09": 600, "B10": 30, "B11": 1543, "B12": 1091}
JP2_OPTIONS = dict(driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES", YCC="NO")


def has_offset(baseline: str) -> bool:
    """Products from processing baseline 04.00 on carry the -1000 offset."""
    return tuple(int(v) for v in baseline.split(".")) >= (4, 0)


def reflectance_x10000(size: int = SIZE, seed: int = 0) -> dict[str, np.ndarray]:
    """Band -> (size*10/res)^2 int32 reflectance x 10000 at the band's native grid, >= 1."""
    rng = np.random.default_rng(seed)
    out = {}
    for band, res in RESOLUTION.items():
        n = size * 10 // res
        blocks = rng.integers(-600, 900, size=(-(-n // 8), -(-n // 8)))
        img = MEANS[band] + np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:n, :n]
        img = img + rng.integers(-40, 40, size=(n, n))
        out[band] = np.clip(img, 1, 9000).astype(np.int32)
    band, (r, c), v = KNOWN_10M
    out[band][r, c] = v
    band, (r, c), v = KNOWN_20M
    out[band][r, c] = v
    return out


def dn_arrays(values: dict[str, np.ndarray], baseline: str, nodata_cols: int = 0) -> dict[str, np.ndarray]:
    """Digital numbers (uint16) of a product of ``baseline``: value - offset; the last ``nodata_cols``
    10 m columns (whole coarse pixels) set to 0 = no data."""
    add = 1000 if has_offset(baseline) else 0
    out = {}
    for band, v in values.items():
        dn = (v + add).astype(np.uint16)
        if nodata_cols:
            f = RESOLUTION[band] // 10
            dn[:, dn.shape[1] - -(-nodata_cols // f):] = 0
        out[band] = dn
    return out


def upsample(values: np.ndarray, band: str) -> np.ndarray:
    """A band's native grid -> the 10 m grid by repeating each pixel (20 m -> 2 x 2)."""
    f = RESOLUTION[band] // 10
    return np.repeat(np.repeat(values, f, axis=0), f, axis=1)


def _write_raster(path: Path, data: np.ndarray, res: int, crs: str = CRS, **options) -> None:
    data = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
            path, "w", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=str(data.dtype),
            crs=crs, transform=from_origin(*ORIGIN, res, res), **options) as dst:
        dst.write(data)


def write_jp2(path: Path, data: np.ndarray, res: int, crs: str = CRS, block: int = 64) -> None:
    """Lossless JPEG 2000 of ``data`` ((h, w) or (n, h, w)) on the tile grid at ``res`` m, in JPEG 2000
    tiles of ``block`` px."""
    _write_raster(path, data, res, crs, BLOCKXSIZE=str(block), BLOCKYSIZE=str(block), **JP2_OPTIONS)


def _scl(size: int) -> np.ndarray:
    n = size // 2
    scl = np.where((np.add.outer(np.arange(n), np.arange(n)) // 7) % 2 == 0, 4, 5).astype(np.uint8)
    r0, r1, c0, c1 = (v // 2 for v in CLOUD_BLOCK_10M)
    rm, cm = (r0 + r1) // 2, (c0 + c1) // 2
    scl[r0:rm, c0:cm], scl[r0:rm, cm:c1], scl[rm:r1, c0:cm], scl[rm:r1, cm:c1] = 8, 9, 10, 3
    r0, r1, c0, c1 = (v // 2 for v in OTHER_BLOCK_10M)
    scl[r0:r1, c0:c1] = 2
    scl[r0:r1, c0 + 6:c1] = 6
    scl[r0:r1, c1 - 6:c1] = 11
    return scl


def _classi(size: int) -> np.ndarray:
    n = size // 6
    mask = np.zeros((3, n, n), dtype=np.uint8)
    r0, r1, c0, c1 = (v // 6 for v in CLOUD_BLOCK_10M)
    mask[0, r0:r1, c0:(c0 + c1) // 2] = 1
    mask[1, r0:r1, (c0 + c1) // 2:c1] = 1
    r0, r1, c0, c1 = (v // 6 for v in OTHER_BLOCK_10M)
    mask[2, r0:r1, c0:c1] = 1
    return mask


def clouds_gml(size: int = SIZE) -> str:
    """MSK_CLOUDS_B00.gml text: the OPAQUE (with a hole at HOLE_10M) and CIRRUS polygons of the cloud
    block, in the tile's CRS (corners of 10 m pixels: x = X0 + 10 col, y = Y0 - 10 row)."""
    x0, y0 = ORIGIN
    epsg = CRS.split(":")[1]

    def ring(r0: int, r1: int, c0: int, c1: int) -> str:
        pts = [(c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)]
        return " ".join(f"{x0 + 10 * c:.0f} {y0 - 10 * r:.0f}" for c, r in pts)

    r0, r1, c0, c1 = CLOUD_BLOCK_10M
    cm = (c0 + c1) // 2
    features = []
    for n, (kind, rect, holes) in enumerate([("OPAQUE", (r0, r1, c0, cm), [HOLE_10M]), ("CIRRUS", (r0, r1, cm, c1), [])]):
        interiors = "".join(f"<gml:interior><gml:LinearRing><gml:posList srsDimension=\"2\">{ring(*h)}</gml:posList>"
                            "</gml:LinearRing></gml:interior>" for h in holes)
        features.append(f"""    <eop:MaskFeature gml:id="{kind}.{n}">
      <eop:maskType codeSpace="urn:gs2:S2PDGS:maskType">{kind}</eop:maskType>
      <eop:extentOf>
        <gml:Polygon gml:id="{kind}.{n}.Polygon" srsName="urn:ogc:def:crs:EPSG::{epsg}">
          <gml:exterior><gml:LinearRing><gml:posList srsDimension="2">{ring(*rect)}</gml:posList></gml:LinearRing></gml:exterior>{interiors}
        </gml:Polygon>
      </eop:extentOf>
    </eop:MaskFeature>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="MSK_CLOUDS">
  <gml:boundedBy><gml:Envelope srsName="urn:ogc:def:crs:EPSG::{epsg}"><gml:lowerCorner>{x0:.0f} {y0 - 10 * size:.0f}</gml:lowerCorner><gml:upperCorner>{x0 + 10 * size:.0f} {y0:.0f}</gml:upperCorner></gml:Envelope></gml:boundedBy>
  <eop:maskMembers>
{chr(10).join(features)}
  </eop:maskMembers>
</eop:Mask>
"""


def mtd_xml(level: str, baseline: str, product_uri: str, image_files: list[str],
            quantification: bool = True, l2ap: bool = False) -> str:
    """MTD_MSIL1C.xml / MTD_MSIL2A.xml text with the specification's element names (``l2ap``: the
    Level-2Ap names)."""
    l1c = level == "L1C"
    root = "Level-1C_User_Product" if l1c else "Level-2A_User_Product"
    psd = "User_Product_Level-1C.xsd" if l1c else "User_Product_Level-2A.xsd"
    image_tag = "IMAGE_FILE_2A" if l2ap else "IMAGE_FILE"
    files = "\n".join(f"              <{image_tag}>{f}</{image_tag}>" for f in image_files)
    if l1c:
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>' if quantification else ""
        offs = ("<Radiometric_Offset_List>\n" + "\n".join(
            f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
            + "\n      </Radiometric_Offset_List>") if has_offset(baseline) else ""
    else:
        quant = ("<QUANTIFICATION_VALUES_LIST>\n"
                 + (f'        <{"L2A_" if l2ap else ""}BOA_QUANTIFICATION_VALUE unit="none">10000'
                    f'</{"L2A_" if l2ap else ""}BOA_QUANTIFICATION_VALUE>\n' if quantification else "")
                 + '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
                   '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
                   "      </QUANTIFICATION_VALUES_LIST>")
        offs = ("<BOA_ADD_OFFSET_VALUES_LIST>\n" + "\n".join(
            f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
            + "\n      </BOA_ADD_OFFSET_VALUES_LIST>") if has_offset(baseline) else ""
    uri = (f"<PRODUCT_URI_1C>{product_uri.replace('MSIL2A', 'MSIL1C')}</PRODUCT_URI_1C>\n"
           f"      <PRODUCT_URI_2A>{product_uri}</PRODUCT_URI_2A>") if l2ap else f"<PRODUCT_URI>{product_uri}</PRODUCT_URI>"
    spectral = "\n".join(f'        <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">'
                         f"<RESOLUTION>{RESOLUTION[b]}</RESOLUTION></Spectral_Information>"
                         for i, b in enumerate(BAND_IDS))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/{psd}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2023-06-15T10:36:29.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2023-06-15T10:36:29.024Z</PRODUCT_STOP_TIME>
      {uri}
      <PROCESSING_LEVEL>Level-{level[1:]}{"p" if l2ap else ""}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>2023-06-15T11:22:33.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2B_{SENSING}_032748_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <SENSING_ORBIT_NUMBER>8</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="synthetic" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      {quant}
      {offs}
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def product_name(level: str, baseline: str) -> str:
    """The SAFE folder name, e.g. S2B_MSIL1C_20230615T103629_N0509_R008_T32UPU_20230615T112233.SAFE."""
    return f"S2B_MSI{level}_{SENSING}_N{baseline.replace('.', '')}_R008_{TILE}_20230615T112233.SAFE"


def _resolutions(level: str, band: str) -> list[int]:
    """Grids a band is delivered on: L1C native only; L2A as in R10m/R20m/R60m (B02-B04 at all three,
    B08 at 10 m only, 20 m bands at 20 and 60 m, B01/B09 at 60 m, no B10)."""
    res = RESOLUTION[band]
    if level == "L1C":
        return [res]
    if band == "B10":
        return []
    if band == "B08":
        return [10]
    return [10, 20, 60] if res == 10 else [20, 60] if res == 20 else [60]


def write_product(out_dir: Path, level: str = "L1C", baseline: str = "05.09", *, size: int = SIZE,
                  seed: int = 0, as_zip: bool = False, band_crs: dict[str, str] | None = None,
                  omit: tuple[str, ...] = (), quantification: bool = True, nodata_cols: int = 0,
                  block: int = 64, l2ap: bool = False, mtd_name: str | None = None,
                  pixel_factor: float = 1.0) -> Path:
    """Write a product under ``out_dir``; returns the .SAFE folder (or the .zip with ``as_zip``).
    ``band_crs`` gives some bands another CRS, ``omit`` leaves band files out, ``quantification``
    False drops the quantification element (all for bad-input tests); ``block``: JPEG 2000 tile px;
    ``l2ap``: a Level-2Ap product (level L2A); ``mtd_name``: the metadata file's name;
    ``pixel_factor``: every pixel size times this (a downsampled product)."""
    name = product_name(level, baseline)
    safe = Path(out_dir) / name
    if safe.exists():
        shutil.rmtree(safe)
    granule = safe / "GRANULE" / f"{level}_{TILE}_A032748_{SENSING}"
    dns = dn_arrays(reflectance_x10000(size, seed), baseline, nodata_cols)
    image_files = []
    for band, dn in dns.items():
        res = RESOLUTION[band]
        for r in _resolutions(level, band):
            if band in omit:
                continue
            data = dn if r == res else dn[::r // res, ::r // res]
            rel = (f"IMG_DATA/{TILE}_{SENSING}_{band}" if level == "L1C"
                   else f"IMG_DATA/R{r}m/{'L2A_' if l2ap else ''}{TILE}_{SENSING}_{band}_{r}m")
            write_jp2(granule / f"{rel}.jp2", data, r * pixel_factor, (band_crs or {}).get(band, CRS), block)
            image_files.append(f"GRANULE/{granule.name}/{rel}")
    if level == "L2A":
        scl = f"{'L2A_' if l2ap else ''}{TILE}_{SENSING}_SCL"
        write_jp2(granule / "IMG_DATA" / "R20m" / f"{scl}_20m.jp2", _scl(size), 20 * pixel_factor, block=block)
        write_jp2(granule / "IMG_DATA" / "R60m" / f"{scl}_60m.jp2", _scl(size)[::3, ::3], 60 * pixel_factor,
                  block=block)
    elif has_offset(baseline):
        write_jp2(granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", _classi(size), 60 * pixel_factor, block=block)
    else:
        (granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
        (granule / "QI_DATA" / "MSK_CLOUDS_B00.gml").write_text(clouds_gml(size))
    (safe / (mtd_name or f"MTD_MSI{level}.xml")).write_text(
        mtd_xml(level, baseline, name, image_files, quantification, l2ap=l2ap))
    if not as_zip:
        return safe
    zpath = safe.with_suffix(".zip")
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(safe.rglob("*")):
            zf.write(p, p.relative_to(safe.parent).as_posix())
    shutil.rmtree(safe)
    return zpath


def write_stack(path: Path, baseline: str = "05.09", *, size: int = SIZE, seed: int = 0,
                nodata_cols: int = 0, bands: tuple[str, ...] | None = None) -> Path:
    """The same product's So2Sat bands as one uint16 GeoTIFF of DN on the 10 m grid (20 m bands
    repeated 2 x 2), in So2Sat order or ``bands``' order."""
    order = bands or ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    dns = dn_arrays(reflectance_x10000(size, seed), baseline, nodata_cols)
    _write_raster(Path(path), np.stack([upsample(dns[b], b) for b in order]), 10, driver="GTiff", tiled=True)
    return Path(path)


#: STAC asset keys per style: band -> key
STAC_KEYS = {
    "earth-search": {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
                     "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
                     "SCL": "scl"},
    "planetary-computer": {b: b for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
                                          "SCL")},
}


def write_stac_scene(out_dir: Path, style: str = "earth-search", level: str = "L2A", baseline: str = "05.09", *,
                     size: int = SIZE, seed: int = 0, raster_bands: bool | None = None) -> Path:
    """Per-band COGs (DN at each band's native grid; SCL at 20 m for L2A) and a STAC Item ``item.json``
    pointing at them by relative hrefs, in the shape ``style``'s public Sentinel-2 collection uses;
    ``raster_bands`` (default: Earth Search's yes, Planetary Computer's no) adds ``raster:bands`` with
    scale 0.0001 and offset -0.1 (from baseline 04.00; 0 before). Returns the Item's path."""
    import json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dns = dn_arrays(reflectance_x10000(size, seed), baseline)
    keys = STAC_KEYS[style]
    raster_bands = (style == "earth-search") if raster_bands is None else raster_bands
    assets = {}
    for band, key in keys.items():
        if band == "SCL" and level != "L2A":
            continue
        res = 20 if band == "SCL" else RESOLUTION[band]
        data = _scl(size) if band == "SCL" else dns[band]
        _write_raster(out_dir / f"{band}.tif", data, res, driver="COG")
        asset = {"href": f"./{band}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                 "roles": ["data"], "gsd": res}
        if raster_bands and band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "spatial_resolution": res,
                                      "scale": 0.0001, "offset": -0.1 if has_offset(baseline) else 0.0}]
        assets[key] = asset
    collection = f"sentinel-2-{level.lower()}"
    item = {"type": "Feature", "stac_version": "1.0.0", "id": product_name(level, baseline).removesuffix(".SAFE"),
            "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"] if raster_bands else [],
            "geometry": None, "bbox": None,
            "properties": {"datetime": "2023-06-15T10:36:29.024000Z", "platform": "sentinel-2b",
                           "s2:processing_baseline": baseline, "s2:product_type": f"S2MSI{level[1:]}"},
            "links": [], "assets": assets}
    path = out_dir / "item.json"
    path.write_text(json.dumps(item, indent=2))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("--level", choices=("L1C", "L2A"), default="L1C")
    ap.add_argument("--baseline", default="05.09")
    ap.add_argument("--zip", action="store_true")
    ap.add_argument("--block", type=int, default=64, help="JPEG 2000 tile size (px)")
    ap.add_argument("--l2ap", action="store_true", help="a Level-2Ap product (with --level L2A)")
    ap.add_argument("--stac", choices=tuple(STAC_KEYS), default=None, help="per-band COGs and a STAC Item instead")
    args = ap.parse_args()
    if args.stac:
        print(write_stac_scene(args.out, args.stac, args.level, args.baseline, size=args.size))
        return
    print(write_product(args.out, args.level, args.baseline, size=args.size, as_zip=args.zip,
                        block=args.block, l2ap=args.l2ap))


if __name__ == "__main__":
    main()
