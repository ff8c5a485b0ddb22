"""LCZ maps from synthetic Sentinel-2 products: the same map from a SAFE, its zip, its band files and a
stacked GeoTIFF; clouds as no-data in every output; an area of interest reads only its windows;
tagged, tiled outputs; bad input ends in one line and exit 2 with no final-named outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.io
from affine import Affine
from rasterio.windows import bounds as window_bounds

from lczldl.config import MapsConfig
from lczldl.maps.grid import OutputGrid
from lczldl.maps.outputs import write_map
from lczldl.maps.predict import predict_scene

X0, Y0 = 600000.0, 5300040.0           # the products' upper-left corner (EPSG:32632)
N = 17                                 # windows per side of a 192 px scene at stride 10
FINAL = ("lcz.tif", "lcz_filter.tif", "uncertainty.tif", "probability.tif", "stac_item.json", "preview.png",
         "predict.json")


def _read(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.tags()


def _outputs(out: Path):
    return {name: _read(out / name)[0] for name in FINAL[:4]}


def test_safe_zip_band_files_and_stack_give_the_same_map(products, s2, checkpoint, tmp_path):
    safe = products[("L1C", "05.09")]
    maps = {}
    # cloud masking off: a stacked GeoTIFF has no mask
    # stride 32: 6 x 6 windows tiling the scene, quick
    unmasked, dn = MapsConfig(stride=32, cloud_classes=[]), MapsConfig(stride=32, scale=10000, offset=-1000)
    maps["safe"] = predict_scene([checkpoint], safe, tmp_path / "safe", unmasked, progress=False)
    stack = s2.write_stack(tmp_path / "stack.tif", "05.09")
    maps["stack"] = predict_scene([checkpoint], stack, tmp_path / "stack", dn, progress=False)
    img = shutil.copytree(next((safe / "GRANULE").iterdir()) / "IMG_DATA", tmp_path / "band_files")
    maps["bands"] = predict_scene([checkpoint], img, tmp_path / "bands", dn, progress=False)
    ref = _outputs(tmp_path / "safe")
    assert ref["lcz.tif"].shape == (3, 6, 6) and (ref["lcz.tif"] > 0).all()
    for name in ("stack", "bands"):
        got = _outputs(tmp_path / name)
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{name} {key}")
        assert maps[name]["radiometry"] == "reflectance = (DN - 1000) / 10000"
    assert maps["safe"]["level"] == "L1C" and maps["stack"]["level"] == "unknown"
    # the model does see radiometry: forgetting the -1000 offset changes every probability
    predict_scene([checkpoint], stack, tmp_path / "no_offset", MapsConfig(stride=32, scale=10000), progress=False)
    shifted = _read(tmp_path / "no_offset" / "probability.tif")[0]
    assert np.abs(shifted - ref["probability.tif"]).max() > 1e-4
    # the zip maps like its folder (its clouds read alike: test_scene_reader)
    predict_scene([checkpoint], products["zip"], tmp_path / "zip", unmasked, progress=False)
    zipped = _outputs(tmp_path / "zip")
    for key in zipped:
        np.testing.assert_array_equal(zipped[key], ref[key], err_msg=key)


def _expected_cloud_windows(block: tuple[int, int, int, int], share: float = 0.05) -> np.ndarray:
    """Windows (stride 10) whose overlap with the cloud block exceeds ``share`` of 1024 px."""
    r0, r1, c0, c1 = block
    out = np.zeros((N, N), bool)
    for i in range(N):
        for j in range(N):
            rows = max(0, min(i * 10 + 32, r1) - max(i * 10, r0))
            cols = max(0, min(j * 10 + 32, c1) - max(j * 10, c0))
            out[i, j] = rows * cols / 1024 > share
    return out


@pytest.mark.parametrize("key", [("L2A", "05.09"), ("L1C", "05.09")])
def test_cloud_block_is_nodata_in_every_output_and_nowhere_else(products, s2, checkpoint, tmp_path, key):
    cloudy = _expected_cloud_windows(s2.CLOUD_BLOCK_10M)
    assert 20 < cloudy.sum() < 60                       # the block drops some windows, not all
    rec = predict_scene([checkpoint], products[key], tmp_path / "map", progress=False)
    maps = _outputs(tmp_path / "map")
    for band in range(3):                                # lcz, lcz_filter, lcz_probability
        np.testing.assert_array_equal(maps["lcz.tif"][band] == 0, cloudy)
    np.testing.assert_array_equal(maps["lcz_filter.tif"][0], maps["lcz.tif"][1])
    np.testing.assert_array_equal(np.isnan(maps["probability.tif"]).all(0), cloudy)
    np.testing.assert_array_equal(np.isnan(maps["probability.tif"]).any(0), cloudy)
    np.testing.assert_array_equal(np.isnan(maps["uncertainty.tif"][0]), cloudy)
    assert rec["windows_cloud"] == cloudy.sum() and rec["windows_nodata"] == 0
    assert rec["windows_predicted"] == N * N - cloudy.sum()
    assert rec["cloud_masked_share"] == pytest.approx(cloudy.sum() / (N * N))
    saved = json.loads((tmp_path / "map" / "predict.json").read_text())
    assert saved["cloud_masked_share"] == pytest.approx(cloudy.sum() / (N * N))
    tags = _read(tmp_path / "map" / "lcz.tif")[2]
    assert tags["PROCESSING_LEVEL"] == key[0] and tags["PROCESSING_BASELINE"] == "05.09"
    assert tags["PRODUCT_ID"] == s2.product_name(*key).removesuffix(".SAFE")
    assert tags["OFFSET"] == "-1000" and tags["SCALE"] == "10000"
    assert tags["CHECKPOINTS"] == str(checkpoint) and tags["LCZLDL_VERSION"]
    if key[0] == "L2A":
        assert any("Level-2A" in w for w in rec["warnings"])
        assert "8 cloud medium probability" in tags["CLOUD_MASK"]
    else:
        assert rec["warnings"] == [] and tags["CLOUD_MASK"].startswith("MSK_CLASSI_B00")


def test_aoi_reads_only_its_windows(products, checkpoint, tmp_path, monkeypatch):
    """A box of scene px cols 37..95, rows 41..88 (GeoJSON in the scene CRS): output cells j*10+11 ..
    j*10+21 overlap it for j = 2..8 and i = 3..7 (i = 2's cell ends at row 41, on the edge)."""
    aoi = tmp_path / "aoi.geojson"
    ring = [[X0 + 370, Y0 - 410], [X0 + 950, Y0 - 410], [X0 + 950, Y0 - 880], [X0 + 370, Y0 - 880],
            [X0 + 370, Y0 - 410]]
    aoi.write_text(json.dumps({"type": "FeatureCollection",
                               "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}},
                               "features": [{"type": "Feature", "properties": {},
                                             "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    reads = []
    original = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        reads.append((self.name, window_bounds(kwargs["window"], self.transform)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    rec = predict_scene([checkpoint], products[("L1C", "05.09")], tmp_path / "map", aoi=aoi, progress=False)
    monkeypatch.undo()
    lcz, transform, _ = _read(tmp_path / "map" / "lcz.tif")
    assert lcz.shape == (3, 5, 7)
    assert transform == Affine(100, 0, X0 + 10 * (11 + 20), 0, -100, Y0 - 10 * (11 + 30))
    assert rec["aoi"]["rows"] == [3, 8] and rec["aoi"]["cols"] == [2, 9]
    # one read per file (10 bands + MSK_CLASSI), each exactly the windows' pixels: rows 30..101, cols 20..111
    assert len(reads) == 11 and len({name for name, _ in reads}) == 11
    for name, b in reads:
        np.testing.assert_allclose(b, (X0 + 200, Y0 - 1020, X0 + 1120, Y0 - 300), atol=1e-6, err_msg=name)


def test_cli_bbox_summary_and_level(products, checkpoint, tmp_path, capsys):
    from rasterio.warp import transform, transform_bounds

    from lczldl.cli.main import main

    # a lon/lat box around scene px cols 50..130, rows 60..140
    (w, e), (n, s) = transform("EPSG:32632", "EPSG:4326", [X0 + 500, X0 + 1300], [Y0 - 600, Y0 - 1400])
    bbox = (round(w, 5), round(s, 5), round(e, 5), round(n, 5))
    left, bottom, right, top = transform_bounds("EPSG:4326", "EPSG:32632", *bbox, densify_pts=21)
    # cells overlap the box: j*10 + 11 < px_right and j*10 + 21 > px_left (same for rows)
    px = ((left - X0) / 10, (right - X0) / 10, (Y0 - top) / 10, (Y0 - bottom) / 10)
    j0, j1 = int(np.floor((px[0] - 21) / 10)) + 1, int(np.ceil((px[1] - 11) / 10))
    i0, i1 = int(np.floor((px[2] - 21) / 10)) + 1, int(np.ceil((px[3] - 11) / 10))
    out = tmp_path / "map"
    main(["predict", "--checkpoint", str(checkpoint), "--scene", str(products[("L2A", "05.09")]),
          "--bbox", *map(str, bbox), "--out", str(out)])
    lcz, t, _ = _read(out / "lcz.tif")
    assert lcz.shape == (3, i1 - i0, j1 - j0)
    assert (t.c, t.f) == pytest.approx((X0 + 10 * (11 + 10 * j0), Y0 - 10 * (11 + 10 * i0)))
    printed = capsys.readouterr()
    assert "read: Level-2A (bottom-of-atmosphere) product S2B_MSIL2A" in printed.out
    assert "radiometry: reflectance = (DN - 1000) / 10000; DN 0 = no data" in printed.out
    assert "cloud mask: SCL classes 1 saturated or defective, 3 cloud shadow" in printed.out
    assert "cloud-masked share" in printed.out
    assert printed.err.startswith("warning: Level-2A") and len(printed.err.strip().splitlines()) == 1


def test_l1c_before_0400_masks_the_gml_polygons(products, s2, checkpoint, tmp_path):
    """The vector mask (opaque with a hole, cirrus), rasterised on the 10 m grid, drops the windows
    whose masked share exceeds 5 %, counted pixel by pixel here."""
    mask = np.zeros((192, 192), bool)
    r0, r1, c0, c1 = s2.CLOUD_BLOCK_10M
    mask[r0:r1, c0:c1] = True
    h0, h1, k0, k1 = s2.HOLE_10M
    mask[h0:h1, k0:k1] = False
    cloudy = np.array([[mask[i * 10:i * 10 + 32, j * 10:j * 10 + 32].sum() / 1024 > 0.05 for j in range(N)]
                       for i in range(N)])
    lines = []
    rec = predict_scene([checkpoint], products[("L1C", "03.01")], tmp_path / "m", progress=False, say=lines.append)
    assert lines[2] == "cloud mask: MSK_CLOUDS_B00.gml opaque clouds and cirrus (2 polygons)"
    np.testing.assert_array_equal(_read(tmp_path / "m" / "lcz.tif")[0][0] == 0, cloudy)
    assert rec["windows_cloud"] == cloudy.sum() > 0


def test_resume_over_2d_chunks_with_mc_dropout(products, checkpoint, tmp_path):
    safe = products[("L2A", "05.09")]
    kw = dict(settings=MapsConfig(stride=32, mc_passes=2, block_rows=4, block_cols=3), progress=False)  # 2 x 2 chunks
    predict_scene([checkpoint], safe, tmp_path / "ref", **kw)
    rec = predict_scene([checkpoint], safe, tmp_path / "resumed", max_blocks=3, **kw)
    assert not rec["complete"] and not (tmp_path / "resumed" / "lcz.tif").exists()
    assert len(list((tmp_path / "resumed" / ".partial").glob("block_*.npz"))) == 3
    predict_scene([checkpoint], safe, tmp_path / "resumed", **kw)
    for name, ref in _outputs(tmp_path / "ref").items():
        np.testing.assert_array_equal(_read(tmp_path / "resumed" / name)[0], ref, err_msg=name)


def test_outputs_are_cogs_with_overviews(tmp_path):
    rows = cols = 300                                   # > one 256 px tile: one overview level (x2)
    grid = OutputGrid(rows=rows, cols=cols, stride=10, transform=Affine(100, 0, X0, 0, -100, Y0))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(rows, cols)).astype(np.float32)
    valid = np.ones((rows, cols), bool)
    write_map(tmp_path, grid, "EPSG:32632", 10, [((0, rows, 0, cols), probs, valid, None)], {"PRODUCT_ID": "X"}, "test")
    for name in FINAL[:4]:
        with rasterio.open(tmp_path / name) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.profile["tiled"] and src.profile["blockxsize"] == 256
            assert src.compression.value == "DEFLATE"
            assert src.overviews(1) == [2] and src.tags()["PRODUCT_ID"] == "X"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["lcz.tif", "lcz.tif.aux.xml", "lcz_filter.tif", "lcz_filter.tif.aux.xml", "uncertainty.tif",
         "probability.tif", "preview.png", ".partial"])
    assert not list(tmp_path.glob(".*.tmp"))


def _without_mtd(s2, tmp: Path) -> Path:
    safe = s2.write_product(tmp / "nomtd", "L1C", "05.09")
    (safe / "MTD_MSIL1C.xml").unlink()
    return safe


def _bad_cases(products, s2, tmp: Path) -> dict[str, tuple[list[str], str]]:
    int_tif = s2.write_stack(tmp / "dn.tif", "05.09")
    l1c = str(products[("L1C", "05.09")])
    aoi = tmp / "a.geojson"
    aoi.write_text('{"type": "Polygon", "coordinates": [[[10.4, 47.8], [10.5, 47.8], [10.5, 47.7], [10.4, 47.8]]]}')
    return {
        "missing band": ([str(s2.write_product(tmp / "m", "L1C", "05.09", omit=("B11",)))], "no file for band B11"),
        "no quantification": ([str(s2.write_product(tmp / "q", "L1C", "05.09", quantification=False))],
                              "no QUANTIFICATION_VALUE"),
        "no BOA quantification": ([str(s2.write_product(tmp / "b", "L2A", "03.01", quantification=False))],
                                  "no BOA_QUANTIFICATION_VALUE"),
        "mixed crs": ([str(s2.write_product(tmp / "c", "L1C", "05.09", band_crs={"B05": "EPSG:32633"}))],
                      "differs from B02"),
        "bbox outside": ([l1c, "--bbox", "0", "0", "1", "1"], "no map window lies inside it"),
        "integer without scale": ([str(int_tif)], "integer values without --scale"),
        "scale with a product": ([l1c, "--scale", "10000"], "drop --scale and --offset"),
        "bbox and aoi": ([l1c, "--bbox", "10", "47", "11", "48", "--aoi", str(aoi)], "either --bbox or --aoi"),
        "swapped bbox": ([l1c, "--bbox", "11", "47", "10", "48"], "WEST < EAST"),
        "cloud classes": ([l1c, "--cloud-classes", "8,12"], "not SCL classes"),
        "bands": ([str(int_tif), "--bands", "B02,B03", "--scale", "10000"], "--bands lacks"),
        "missing scene": ([str(tmp / "absent.SAFE")], "not found"),
        "stride 0": ([l1c, "--stride", "0"], "--stride 0: must be greater than or equal to 1"),
        "temperature": ([l1c, "--temperature", "hot"], "--temperature hot: must be 'auto' or a positive number"),
        "cloud share": ([l1c, "--max-cloud-share", "2"], "--max-cloud-share 2.0: must be less than or equal to 1"),
        "auto without metrics": ([l1c, "--temperature", "auto"], "or set --temperature to a number"),
        "SAFE without MTD": ([str(_without_mtd(s2, tmp))], "no MTD_MSIL1C.xml or MTD_MSIL2A.xml"),
        "coarse pixels": ([str(s2.write_product(tmp / "px", "L1C", "05.09", pixel_factor=109.8))],
                          "B02 has 1098 m pixels, not Sentinel-2's 10 m"),
        "coarse pixels hint": ([str(s2.write_product(tmp / "px2", "L1C", "05.09", pixel_factor=109.8))],
                               "or --allow-resolution to map a resampled scene anyway"),
        "filter sigma": ([l1c, "--filter-sigma", "-5"], "--filter-sigma -5: must be 'published' or a number"),
    }


def test_bad_input_ends_in_one_line_exit_2_and_no_outputs(products, s2, checkpoint, tmp_path, capsys):
    from lczldl.cli.main import main

    for name, (args, words) in _bad_cases(products, s2, tmp_path).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        with pytest.raises(SystemExit) as exc:
            main(["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--scene", *args])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert exc.value.code == 2, name
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (name, lines)
        assert captured.out == "", name
        assert not any((out / f).exists() for f in FINAL), name


def test_cli_maps_a_stac_item_like_its_product(products, s2, checkpoint, tmp_path, capsys):
    from lczldl.cli.main import main

    item = s2.write_stac_scene(tmp_path / "es", "earth-search", "L2A", "05.09")
    main(["predict", "--checkpoint", str(checkpoint), "--scene", str(item), "--out", str(tmp_path / "item"),
          "--stride", "32"])
    assert "stac_item.json" in capsys.readouterr().out
    predict_scene([checkpoint], products[("L2A", "05.09")], tmp_path / "safe", MapsConfig(stride=32), progress=False)
    for name in FINAL[:4]:
        np.testing.assert_array_equal(_read(tmp_path / "item" / name)[0], _read(tmp_path / "safe" / name)[0],
                                      err_msg=name)
    rec = json.loads((tmp_path / "item" / "predict.json").read_text())
    assert rec["scene_kind"] == "stac-item" and rec["radiometry"] == "reflectance = (DN - 1000) / 10000"
    out_item = json.loads((tmp_path / "item" / "stac_item.json").read_text())
    assert out_item["properties"]["datetime"] == "2023-06-15T10:36:29.024000Z"
    assert out_item["properties"]["lczldl:source"]["scene_kind"] == "stac-item"
