"""open_scene on synthetic products: exact reflectance on both processing baselines and levels, 20 m
bands on the 10 m grid, zip = folder, per-band files, stacked GeoTIFFs, cloud masks."""

from __future__ import annotations

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
