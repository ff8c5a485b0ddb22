"""open_scene on synthetic products: exact reflectance on both processing baselines and levels, 20 m
bands on the 10 m grid, zip = folder, per-band files, stacked GeoTIFFs, cloud masks (SCL, MSK_CLASSI,
the GML polygons); the real-product gaps: Level-2Ap, metadata name case, pixel sizes, STAC Items."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from lczldl.errors import SceneError
from lczldl.maps.scene import open_scene

SO2SAT = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
FULL = Window(0, 0, 192, 192)


@pytest.mark.parametrize("level", ["L1C", "L2A"])
@pytest.mark.parametrize("baseline, dn_b02, dn_b05", [("05.09", 2234, 3345), ("03.01", 1234, 2345)])
def test_reflectance_is_exact_at_10m_and_20m_pixels(products, level, baseline, dn_b02, dn_b05):
    safe = products[(level, baseline)]
    granule = next((safe / "GRANULE").iterdir()) / "IMG_DATA"
    # the files hold the planted digital numbers: reflectance x 10000 plus 1000 from baseline 04.00
    b02 = next(granule.rglob("*_B02.jp2" if level == "L1C" else "*_B02_10m.jp2"))
    b05 = next(granule.rglob("*_B05.jp2" if level == "L1C" else "*_B05_20m.jp2"))
    with rasterio.open(b02) as src:
        assert src.read(1)[10, 20] == dn_b02 and src.res == (10.0, 10.0)
    with rasterio.open(b05) as src:
        assert src.read(1)[7, 9] == dn_b05 and src.res == (20.0, 20.0)
    with open_scene(safe) as scene:
        assert (scene.width, scene.height, scene.crs.to_epsg()) == (192, 192, 32632)
        assert scene.transform == from_origin(600000.0, 5300040.0, 10, 10)
        meta = scene.metadata
        assert meta.level == level and meta.processing_baseline == baseline
        assert set(meta.offsets.values()) == ({-1000.0} if baseline == "05.09" else {0.0})
        assert set(meta.scales.values()) == {10000.0}
        x = scene.read(Window(8, 4, 40, 24))             # rows 4..27, cols 8..47
        assert x.shape == (10, 24, 40) and x.dtype == np.float32
        assert x[0, 10 - 4, 20 - 8] == np.float32(0.1234)  # B02 at its 10 m pixel (10, 20)
        # B05's 20 m pixel (7, 9) covers 10 m rows 14-15, cols 18-19, and nothing else
        b05_10m = x[3, 14 - 4:16 - 4, 18 - 8:20 - 8]
        assert (b05_10m == np.float32(0.2345)).all()
        assert x[3, 14 - 4, 20 - 8] != np.float32(0.2345) and x[3, 13 - 4, 18 - 8] != np.float32(0.2345)


def test_whole_scene_matches_the_generated_reflectance(products, s2):
    values = s2.reflectance_x10000()
    expected = np.stack([s2.upsample(values[b], b) for b in SO2SAT]).astype(np.float32) / np.float32(10000)
    for key in [("L1C", "05.09"), ("L2A", "05.09"), ("L2A", "03.01")]:
        with open_scene(products[key], cloud_classes=()) as scene:
            np.testing.assert_array_equal(scene.read(FULL), expected, err_msg=str(key))


def test_zip_reads_like_the_folder(products):
    with open_scene(products["zip"]) as z, open_scene(products[("L1C", "05.09")]) as f:
        assert z.metadata.kind == "safe-zip" and f.metadata.kind == "safe"
        assert all(p.startswith("/vsizip/") for p in z.metadata.files.values())
        assert (z.metadata.product_id, z.metadata.offsets, z.metadata.cloud_mask) == \
               (f.metadata.product_id, f.metadata.offsets, f.metadata.cloud_mask)
        np.testing.assert_array_equal(z.read(FULL), f.read(FULL))
        assert z.fingerprint() != f.fingerprint() and len(z.fingerprint()) == 1


def test_band_files_need_scale_and_then_match_the_product(products, tmp_path):
    inside = next((products[("L2A", "05.09")] / "GRANULE").iterdir()) / "IMG_DATA"
    with pytest.raises(SceneError, match="lies inside the product .*SAFE; pass that .SAFE folder itself"):
        open_scene(inside, scale=10000)                  # the product's own metadata must set radiometry
    img = shutil.copytree(inside, tmp_path / "bands")   # R10m/, R20m/, R60m/ of per-band files
    with pytest.raises(SceneError, match="integer values without scale; .* e.g. scale=10000") as exc:
        open_scene(img)                                  # the library names its parameter, not a flag
    assert exc.value.params == ("scale", "offset")
    with open_scene(products[("L2A", "05.09")], cloud_classes=()) as safe:
        expected = safe.read(FULL)
    # the folder (R10m/R20m/R60m searched, finest resolution wins) and an explicit file list
    with open_scene(img, scale=10000, offset=-1000, cloud_classes=()) as folder:
        assert folder.metadata.kind == "band-files" and folder.metadata.level == "unknown"
        assert "_B02_10m" in folder.metadata.files["B02"] and "_B05_20m" in folder.metadata.files["B05"]
        np.testing.assert_array_equal(folder.read(FULL), expected)
    with open_scene(img, scale=10000, offset=-1000) as folder_scl:     # its SCL_20m file masks clouds
        assert folder_scl.metadata.cloud_mask.startswith("SCL classes 1 saturated")
        assert folder_scl.read_block(FULL).cloud.sum() == 36 * 36
    files = [folder.metadata.files[b] for b in SO2SAT]
    with open_scene(files, scale=10000, offset=-1000) as listed:
        assert listed.metadata.cloud_mask.startswith("none")
        np.testing.assert_array_equal(listed.read(FULL), expected)


def test_per_band_cogs(products, s2, tmp_path):
    values = s2.reflectance_x10000()
    for band in SO2SAT:
        res = s2.RESOLUTION[band]
        with rasterio.open(tmp_path / f"{band}.tif", "w", driver="COG", width=192 * 10 // res,
                           height=192 * 10 // res, count=1, dtype="uint16", crs="EPSG:32632",
                           transform=from_origin(600000.0, 5300040.0, res, res)) as dst:
            dst.write(values[band].astype(np.uint16), 1)
    with open_scene(tmp_path, scale=10000) as cogs, open_scene(products[("L1C", "03.01")], cloud_classes=()) as safe:
        np.testing.assert_array_equal(cogs.read(FULL), safe.read(FULL))


def _stack(path, data, dtype, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=dtype, crs="EPSG:32632", transform=from_origin(600000.0, 5300040.0, 10, 10),
                       nodata=nodata) as dst:
        dst.write(data.astype(dtype))
    return path


def test_stacked_geotiffs(products, s2, tmp_path):
    with open_scene(products[("L1C", "05.09")], cloud_classes=()) as safe:
        expected = safe.read(FULL)
    # integer DN: refused without scale, exact with it
    stack = s2.write_stack(tmp_path / "dn.tif", "05.09")
    with pytest.raises(SceneError, match="integer values without scale"):
        open_scene(stack)
    with open_scene(stack, scale=10000, offset=-1000) as scene:
        np.testing.assert_array_equal(scene.read(FULL), expected)
    # another band order, named with bands
    order = ("B04", "B03", "B02", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
    with open_scene(s2.write_stack(tmp_path / "bgr.tif", "05.09", bands=order), bands=order, scale=10000,
                    offset=-1000) as scene:
        np.testing.assert_array_equal(scene.read(FULL), expected)
    # float reflectance needs no option; float DNs without scale are refused, not guessed
    with open_scene(_stack(tmp_path / "refl.tif", expected, "float32")) as scene:
        assert scene.metadata.radiometry() == "reflectance = DN / 1"
        np.testing.assert_array_equal(scene.read(FULL), expected)
    with pytest.raises(SceneError, match="not reflectance"):
        open_scene(_stack(tmp_path / "fdn.tif", expected * 10000, "float32"))


def test_cloud_masks(products, s2):
    r0, r1, c0, c1 = s2.CLOUD_BLOCK_10M
    block = np.zeros((192, 192), bool)
    block[r0:r1, c0:c1] = True
    # L1C before 04.00: the GML polygons, rasterised (the opaque one has a one-60 m-pixel hole)
    gml_block = block.copy()
    h0, h1, k0, k1 = s2.HOLE_10M
    gml_block[h0:h1, k0:k1] = False
    for key, expected in [(("L2A", "05.09"), block), (("L2A", "03.01"), block), (("L1C", "05.09"), block),
                          (("L1C", "03.01"), gml_block)]:
        with open_scene(products[key]) as scene:
            got = scene.read_block(FULL)
            np.testing.assert_array_equal(got.cloud, expected, err_msg=str(key))
            assert not got.nodata.any()
            # read() hides masked pixels as NaN; read_block keeps the observed values for the model
            x = scene.read(FULL)
            assert np.isnan(x[:, expected]).all() and not np.isnan(x[:, ~expected]).any()
            assert not np.isnan(got.reflectance).any()
    with open_scene(products[("L1C", "03.01")]) as old:
        assert old.metadata.cloud_mask == "MSK_CLOUDS_B00.gml opaque clouds and cirrus (2 polygons)"
        # a window beside the clouds rasterises nothing; one across the hole's edge exactly the hole
        assert not old.read_block(Window(0, 0, 40, 40)).cloud.any()
        part = old.read_block(Window(70, 50, 20, 20)).cloud               # rows 50..69, cols 70..89
        np.testing.assert_array_equal(part, gml_block[50:70, 70:90])
    # a configurable class list: water (6) only -> the water patch, not the clouds
    r0, r1, c0, c1 = s2.OTHER_BLOCK_10M
    water = np.zeros((192, 192), bool)
    water[r0:r1, c0 + 12:c1 - 12] = True                 # the generator's 20 m columns c0/2+6 .. c1/2-6
    with open_scene(products[("L2A", "05.09")], cloud_classes=(6,)) as scene:
        np.testing.assert_array_equal(scene.read_block(FULL).cloud, water)
        assert scene.metadata.cloud_mask == "SCL classes 6 water"


def test_nodata_dn0(s2, tmp_path):
    safe = s2.write_product(tmp_path, "L1C", "05.09", nodata_cols=8)
    with open_scene(safe) as scene:
        got = scene.read_block(FULL)
        assert got.nodata[:, -8:].all() and not got.nodata[:, :-8].any()
        assert np.isnan(got.reflectance[:, :, -8:]).all()


# ---------------------------------------------------------------- real-product gaps (issue 22)

def test_level_2ap_products_are_read(s2, tmp_path):
    """Baselines 02.05-02.07: L2A_BOA_QUANTIFICATION_VALUE, PRODUCT_URI_2A, IMAGE_FILE_2A and band files
    L2A_T32UPU_..._B02_10m.jp2; the same reflectance as the generator's values, DN / 10000."""
    safe = s2.write_product(tmp_path, "L2A", "02.07", l2ap=True)
    mtd = (safe / "MTD_MSIL2A.xml").read_text()
    assert "<L2A_BOA_QUANTIFICATION_VALUE" in mtd and "<PRODUCT_URI_2A>" in mtd and "<IMAGE_FILE_2A>" in mtd
    assert "<BOA_QUANTIFICATION_VALUE" not in mtd and "<PRODUCT_URI>" not in mtd
    values = s2.reflectance_x10000()
    expected = np.stack([s2.upsample(values[b], b) for b in SO2SAT]).astype(np.float32) / np.float32(10000)
    with open_scene(safe, cloud_classes=()) as scene:
        m = scene.metadata
        assert (m.level, m.processing_baseline, m.product_id) == ("L2A", "02.07", safe.name.removesuffix(".SAFE"))
        assert set(m.offsets.values()) == {0.0} and set(m.scales.values()) == {10000.0}
        assert all("/L2A_T32UPU_" in f for f in m.files.values())
        np.testing.assert_array_equal(scene.read(FULL), expected)
    with open_scene(safe) as scene:                     # its SCL (L2A_..._SCL_20m.jp2) masks the clouds
        assert scene.metadata.cloud_mask.startswith("SCL classes") and scene.read_block(FULL).cloud.sum() == 36 * 36


def test_metadata_file_name_in_any_case(s2, tmp_path):
    safe = s2.write_product(tmp_path, "L2A", "05.09", mtd_name="MTD_MSIL2a.xml")
    assert not (safe / "MTD_MSIL2A.xml").exists()
    with open_scene(safe) as scene, open_scene(s2.write_product(tmp_path / "ref", "L2A", "05.09")) as ref:
        assert scene.metadata.level == "L2A" and scene.metadata.offsets == ref.metadata.offsets
        np.testing.assert_array_equal(scene.read(FULL), ref.read(FULL))
    with pytest.raises(SceneError, match="pass the .SAFE folder that holds this metadata file"):
        open_scene(safe / "MTD_MSIL2a.xml")


def test_pixel_sizes_other_than_sentinel2s_are_refused(s2, tmp_path):
    # a whole tile downsampled: 1098 m pixels for the 10 m bands (2196 m for the 20 m ones)
    safe = s2.write_product(tmp_path / "coarse", "L1C", "05.09", pixel_factor=109.8)
    with pytest.raises(SceneError, match=r"B02 has 1098 m pixels, not Sentinel-2's 10 m") as exc:
        open_scene(safe)
    assert exc.value.params == ("allow_resolution",)
    with open_scene(safe, allow_resolution=True) as scene:
        assert scene.transform.a == pytest.approx(1098.0)
    # band files: a 20 m band delivered at 10 m (B05 repeated 2 x 2) is refused too
    values = s2.reflectance_x10000()
    bands = tmp_path / "bands"
    bands.mkdir()
    for band in SO2SAT:
        res = 10 if band == "B05" else s2.RESOLUTION[band]
        data = s2.upsample(values[band], band) if band == "B05" else values[band]
        with rasterio.open(bands / f"{band}.tif", "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                           count=1, dtype="uint16", crs="EPSG:32632",
                           transform=from_origin(600000.0, 5300040.0, res, res)) as dst:
            dst.write(data[None].astype(np.uint16))
    with pytest.raises(SceneError, match=r"B05 has 10 m pixels, not Sentinel-2's 20 m"):
        open_scene(bands, scale=10000)
    # a stacked GeoTIFF at 20 m
    with rasterio.open(tmp_path / "s20.tif", "w", driver="GTiff", width=96, height=96, count=10, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(600000.0, 5300040.0, 20, 20)) as dst:
        dst.write(np.full((10, 96, 96), 0.1, np.float32))
    with pytest.raises(SceneError, match="a stacked GeoTIFF's grid has 20 m pixels"):
        open_scene(tmp_path / "s20.tif")
    with open_scene(tmp_path / "s20.tif", allow_resolution=True) as scene:
        assert scene.width == 96


@pytest.mark.parametrize("style", ["earth-search", "planetary-computer"])
def test_stac_items_read_like_the_product(products, s2, tmp_path, style):
    """Items in the public collections' shapes, pointing at local per-band COGs: Earth Search's keys
    (blue ... scl) with raster:bands scale 0.0001 / offset -0.1, the Planetary Computer's (B02 ... SCL)
    with the processing baseline only; both give the product's reflectance and SCL mask."""
    item = s2.write_stac_scene(tmp_path / style, style, "L2A", "05.09")
    doc = json.loads(item.read_text())
    keys = {"earth-search": "blue", "planetary-computer": "B02"}[style]
    assert keys in doc["assets"] and ("raster:bands" in doc["assets"][keys]) == (style == "earth-search")
    with open_scene(products[("L2A", "05.09")]) as safe, open_scene(item) as scene:
        m = scene.metadata
        assert (m.kind, m.level, m.processing_baseline) == ("stac-item", "L2A", "05.09")
        assert set(m.offsets.values()) == {-1000.0} and set(m.scales.values()) == {10000.0}
        assert m.sensing_time == "2023-06-15T10:36:29.024000Z"
        assert m.cloud_mask == safe.metadata.cloud_mask
        a, b = scene.read_block(FULL), safe.read_block(FULL)
        np.testing.assert_array_equal(a.reflectance, b.reflectance)
        np.testing.assert_array_equal(a.cloud, b.cloud)
        assert len(scene.fingerprint()) == 12               # the Item and its 11 local files
    # before baseline 04.00 no offset, from the baseline alone
    old = s2.write_stac_scene(tmp_path / f"{style}_old", style, "L2A", "03.01", raster_bands=False)
    with open_scene(old) as scene:
        assert set(scene.metadata.offsets.values()) == {0.0}


def test_stac_items_refused_in_one_line(s2, tmp_path):
    item = s2.write_stac_scene(tmp_path / "pc", "planetary-computer", "L2A", "05.09")
    doc = json.loads(item.read_text())

    def variant(name, change):
        d = json.loads(json.dumps(doc))
        change(d)
        path = tmp_path / "pc" / f"{name}.json"
        path.write_text(json.dumps(d))
        return path

    cases = {
        "no s2:processing_baseline": variant("nobase", lambda d: d["properties"].pop("s2:processing_baseline")),
        "no asset for B11": variant("nob11", lambda d: d["assets"].pop("B11")),
        "scheme 'ftp'": variant("ftp", lambda d: d["assets"]["B02"].update(href="ftp://host/B02.tif")),
        "not a GeoTIFF or JPEG 2000": variant("exe", lambda d: d["assets"]["B02"].update(href="./run.sh")),
        "not found": variant("gone", lambda d: d["assets"]["B02"].update(href="./missing/B02.tif")),
    }
    for words, path in cases.items():
        with pytest.raises(SceneError, match=words):
            open_scene(path)
    with pytest.raises(SceneError, match="drop scale and offset"):
        open_scene(item, scale=10000)
