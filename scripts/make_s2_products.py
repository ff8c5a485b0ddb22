"""Write small synthetic Sentinel-2 products in the real layouts, for the map tests and benchmark.

    python scripts/make_s2_products.py OUT_DIR [--size 192] [--level L1C|L2A] [--baseline 05.09] [--zip]

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
  left half, band 2 cirrus in its right half, band 3 snow at OTHER_BLOCK_10M); before 04.00 only
  the old vector mask ``MSK_CLOUDS_B00.gml``.
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


def mtd_xml(level: str, baseline: str, product_uri: str, image_files: list[str],
            quantification: bool = True) -> str:
    """MTD_MSIL1C.xml / MTD_MSIL2A.xml text with the specification's element names."""
    l1c = level == "L1C"
    root = "Level-1C_User_Product" if l1c else "Level-2A_User_Product"
    psd = "User_Product_Level-1C.xsd" if l1c else "User_Product_Level-2A.xsd"
    files = "\n".join(f"              <IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    if l1c:
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>' if quantification else ""
        offs = ("<Radiometric_Offset_List>\n" + "\n".join(
            f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
            + "\n      </Radiometric_Offset_List>") if has_offset(baseline) else ""
    else:
        quant = ("<QUANTIFICATION_VALUES_LIST>\n"
                 + ('        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
                    if quantification else "")
                 + '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
                   '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
                   "      </QUANTIFICATION_VALUES_LIST>")
        offs = ("<BOA_ADD_OFFSET_VALUES_LIST>\n" + "\n".join(
            f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
            + "\n      </BOA_ADD_OFFSET_VALUES_LIST>") if has_offset(baseline) else ""
    spectral = "\n".join(f'        <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">'
                         f"<RESOLUTION>{RESOLUTION[b]}</RESOLUTION></Spectral_Information>"
                         for i, b in enumerate(BAND_IDS))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/{psd}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2023-06-15T10:36:29.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2023-06-15T10:36:29.024Z</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{product_uri}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
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
                  block: int = 64) -> Path:
    """Write a product under ``out_dir``; returns the .SAFE folder (or the .zip with ``as_zip``).
    ``band_crs`` gives some bands another CRS, ``omit`` leaves band files out, ``quantification``
    False drops the quantification element (all for bad-input tests); ``block``: JPEG 2000 tile px."""
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
                   else f"IMG_DATA/R{r}m/{TILE}_{SENSING}_{band}_{r}m")
            write_jp2(granule / f"{rel}.jp2", data, r, (band_crs or {}).get(band, CRS), block)
            image_files.append(f"GRANULE/{granule.name}/{rel}")
    if level == "L2A":
        write_jp2(granule / "IMG_DATA" / "R20m" / f"{TILE}_{SENSING}_SCL_20m.jp2", _scl(size), 20, block=block)
        write_jp2(granule / "IMG_DATA" / "R60m" / f"{TILE}_{SENSING}_SCL_60m.jp2", _scl(size)[::3, ::3], 60, block=block)
    elif has_offset(baseline):
        write_jp2(granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", _classi(size), 60, block=block)
    else:
        (granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
        (granule / "QI_DATA" / "MSK_CLOUDS_B00.gml").write_text('<?xml version="1.0"?>\n<eop:Mask/>\n')
    (safe / f"MTD_MSI{level}.xml").write_text(mtd_xml(level, baseline, name, image_files, quantification))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("--level", choices=("L1C", "L2A"), default="L1C")
    ap.add_argument("--baseline", default="05.09")
    ap.add_argument("--zip", action="store_true")
    ap.add_argument("--block", type=int, default=64, help="JPEG 2000 tile size (px)")
    args = ap.parse_args()
    print(write_product(args.out, args.level, args.baseline, size=args.size, as_zip=args.zip,
                        block=args.block))


if __name__ == "__main__":
    main()
