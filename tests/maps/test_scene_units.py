"""Pure pieces of the scene reader: MTD XML radiometry, band-file picking, band names, DN ->
reflectance, the map grid (AOI cells, chunks), AOI parsing, overview levels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from pydantic import ValidationError

from lczldl.config import MapsConfig
from lczldl.errors import SceneError
from lczldl.maps.aoi import bbox_aoi, geojson_aoi
from lczldl.maps.grid import OutputGrid, cells_in_bounds, chunk_pixels, chunks, output_grid, sub_grid
from lczldl.maps.predict import window_counts
from lczldl.maps.radiometry import (
    check_cloud_classes,
    normalise_band,
    parse_band_list,
    to_reflectance,
)
from lczldl.maps.safe import parse_product_xml, pick_band_files


def _xml(s2, level, baseline, **kw):
    return s2.mtd_xml(level, baseline, s2.product_name(level, baseline), [], **kw).encode()


def test_product_xml_radiometry_on_both_baselines(s2):
    new = parse_product_xml(_xml(s2, "L1C", "05.09"), "MTD_MSIL1C.xml")
    assert (new.level, new.processing_baseline, new.quantification) == ("L1C", "05.09", 10000.0)
    assert new.product_id == "S2B_MSIL1C_20230615T103629_N0509_R008_T32UPU_20230615T112233"
    assert new.offset("B02") == -1000.0 and new.offset("B8A") == -1000.0 and len(new.offsets) == 13
    old = parse_product_xml(_xml(s2, "L1C", "03.01"), "MTD_MSIL1C.xml")
    assert old.offsets == {} and old.offset("B02") == 0.0
    l2a = parse_product_xml(_xml(s2, "L2A", "05.09"), "MTD_MSIL2A.xml")
    assert (l2a.level, l2a.quantification, l2a.offset("B12")) == ("L2A", 10000.0, -1000.0)
    assert parse_product_xml(_xml(s2, "L2A", "02.14"), "MTD_MSIL2A.xml").offsets == {}


def test_product_xml_refuses_what_it_cannot_trust(s2):
    good = _xml(s2, "L1C", "05.09").decode()
    cases = {
        "no QUANTIFICATION_VALUE": _xml(s2, "L1C", "05.09", quantification=False).decode(),
        "not a positive number": good.replace(">10000</QUANTIFICATION_VALUE>", ">0</QUANTIFICATION_VALUE>"),
        "none is listed": good.replace("RADIO_ADD_OFFSET", "OTHER_OFFSET"),
        "malformed RADIO_ADD_OFFSET": good.replace('band_id="3">-1000<', 'band_id="3">n/a<'),
        "given twice": good.replace('band_id="3"', 'band_id="2"'),
        "no RADIO_ADD_OFFSET for B05": good.replace('<RADIO_ADD_OFFSET band_id="4">-1000</RADIO_ADD_OFFSET>', ""),
        "not a Sentinel-2": good.replace("Level-1C_User_Product", "Level-1B_User_Product"),
        "not readable XML": good[:200],
    }
    for words, text in cases.items():
        with pytest.raises(SceneError, match=words):
            parse_product_xml(text.encode(), "MTD_MSIL1C.xml")
    # an L2A's L1C-style element does not count
    l2a = _xml(s2, "L2A", "05.09", quantification=False).decode().replace(
        "<AOT_QUANTIFICATION_VALUE", "<QUANTIFICATION_VALUE>10000</QUANTIFICATION_VALUE><AOT_QUANTIFICATION_VALUE")
    with pytest.raises(SceneError, match="no BOA_QUANTIFICATION_VALUE"):
        parse_product_xml(l2a.encode(), "MTD_MSIL2A.xml")


def test_pick_band_files_takes_the_finest_resolution():
    names = ["R60m/T_B02_60m.jp2", "R10m/T_B02_10m.jp2", "R20m/T_B02_20m.jp2", "R20m/T_B05_20m.jp2",
             "R60m/T_B05_60m.jp2", "R10m/T_TCI_10m.jp2", "R20m/T_SCL_20m.jp2", "R60m/T_SCL_60m.jp2",
             "L1C/T32UPU_20230615T103629_B8A.jp2", "cog/B11.tif", "notes.txt"]
    got = pick_band_files(names, "x")
    assert got == {"B02": "R10m/T_B02_10m.jp2", "B05": "R20m/T_B05_20m.jp2", "SCL": "R20m/T_SCL_20m.jp2",
                   "B8A": "L1C/T32UPU_20230615T103629_B8A.jp2", "B11": "cog/B11.tif"}
    with pytest.raises(SceneError, match="two files for B02"):
        pick_band_files(["a/T_B02.jp2", "b/T_B02.tif"], "x")


def test_band_names_and_classes():
    assert [normalise_band(n) for n in ("B2", "b02", "S2_B02", "2", "B8a", "8A", "B12")] == \
           ["B02", "B02", "B02", "B02", "B8A", "B8A", "B12"]
    for bad in ("B13", "B00", "red", "B8B"):
        with pytest.raises(SceneError, match="not a Sentinel-2 band"):
            normalise_band(bad)
    order = parse_band_list(MapsConfig(bands="B4,B3,B2,B8,B5,B6,B7,B8A,B11,B12,B01").bands)
    assert order[:3] == ("B04", "B03", "B02") and len(order) == 11
    with pytest.raises(SceneError, match="bands names B02 more than once") as exc:
        parse_band_list("B02,B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12".split(","))
    assert exc.value.params == ("bands",)
    assert check_cloud_classes(MapsConfig(cloud_classes="9, 8,3,9").cloud_classes) == (3, 8, 9)
    assert MapsConfig(cloud_classes="none").cloud_classes == [] and MapsConfig(cloud_classes="").cloud_classes == []
    with pytest.raises(SceneError, match=r"cloud_classes: \[12\] are not SCL classes"):
        check_cloud_classes([3, 12])
    with pytest.raises(ValidationError, match="SCL class numbers"):
        MapsConfig(cloud_classes="clouds")


def test_to_reflectance_values():
    dn = np.array([1, 1000, 1001, 2234, 11000, 65535], dtype=np.uint16)
    np.testing.assert_array_equal(to_reflectance(dn, -1000, 10000),
                                  np.array([-0.0999, 0.0, 0.0001, 0.1234, 1.0, 6.4535], dtype=np.float32))
    np.testing.assert_array_equal(to_reflectance(dn, 0, 10000),
                                  np.array([0.0001, 0.1, 0.1001, 0.2234, 1.1, 6.5535], dtype=np.float32))


def test_cells_in_bounds_and_sub_grid():
    # 192 px scene at 10 m, stride 10: cell j spans x = 110 + 100 j .. 210 + 100 j from the origin
    grid = output_grid(192, 192, Affine(10, 0, 0, 0, -10, 0), 10)
    assert (grid.rows, grid.cols) == (17, 17) and grid.transform == Affine(100, 0, 110, 0, -100, -110)
    assert cells_in_bounds(grid, (370, -880, 950, -410)) == (3, 8, 2, 9)       # y = -410 is a cell edge
    assert cells_in_bounds(grid, (370, -880, 950, -409)) == (2, 8, 2, 9)
    assert cells_in_bounds(grid, (-5000, -90000, 90000, 5000)) == (0, 17, 0, 17)  # clipped to the grid
    i0, i1, j0, j1 = cells_in_bounds(grid, (5000, -880, 6000, -410))
    assert j0 >= j1                                                            # none: east of the scene
    sub = sub_grid(grid, 3, 8, 2, 9)
    assert (sub.rows, sub.cols, sub.row0, sub.col0) == (5, 7, 3, 2)
    assert sub.transform == Affine(100, 0, 310, 0, -100, -410)
    assert chunk_pixels(sub, (0, 5, 0, 7)) == (30, 20, 72, 92)


def test_chunks_cover_the_grid_once():
    grid = OutputGrid(rows=11, cols=7, stride=10, transform=Affine.identity())
    cover = np.zeros((11, 7), int)
    for r0, r1, c0, c1 in chunks(grid, 4, 3):
        cover[r0:r1, c0:c1] += 1
    assert (cover == 1).all() and len(chunks(grid, 4, 3)) == 3 * 3


def test_window_counts_match_brute_force():
    rng = np.random.default_rng(3)
    mask = rng.random((75, 83)) < 0.1
    got = window_counts(mask, 7, 7, 8)
    for i in range(7):
        for j in range(8):
            assert got[i, j] == mask[i * 7:i * 7 + 32, j * 7:j * 7 + 32].sum()


def test_aoi_parsing(tmp_path):
    assert bbox_aoi([11.4, 48.0, 11.7, 48.25]).bounds == (11.4, 48.0, 11.7, 48.25)
    with pytest.raises(SceneError, match="SOUTH < NORTH"):
        bbox_aoi([11.4, 48.3, 11.7, 48.25])
    path = tmp_path / "city.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[11.5, 48.1], [11.6, 48.1], [11.6, 48.2], [11.5, 48.1]]],
            [[[11.4, 48.0], [11.45, 48.05], [11.4, 48.05], [11.4, 48.0]]]]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [11.7, 48.15]}}]}))
    aoi = geojson_aoi(path)
    assert aoi.bounds == (11.4, 48.0, 11.7, 48.2) and aoi.crs == "EPSG:4326"
    path.write_text(json.dumps({"type": "Polygon", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::32632"}}, "coordinates": [[[1, 2], [3, 2], [3, 5], [1, 2]]]}))
    assert geojson_aoi(path).bounds == (1, 2, 3, 5) and geojson_aoi(path).crs == "EPSG:32632"
    path.write_text("{not json")
    with pytest.raises(SceneError, match="not readable GeoJSON"):
        geojson_aoi(path)
