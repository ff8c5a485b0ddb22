"""The map in the form LCZ users take it: COG layout, band layout and names, the official colour table
and class names, the published Gaussian filter (hand-made cases, a brute-force cross-check, block
borders), uncertainty layers, and the STAC Item validated offline against the shipped schemas."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from lczldl.config import MapsConfig
from lczldl.maps.grid import OutputGrid
from lczldl.maps.lczfilter import class_kernels, filter_strips
from lczldl.maps.outputs import ConformalThreshold, write_map
from lczldl.maps.predict import predict_scene

SCHEMAS = Path(__file__).resolve().parents[1] / "resources" / "stac_schemas"
X0, Y0 = 600000.0, 5300040.0
#: the global LCZ map's / LCZ Generator's palette, LCZ 1..17 (Demuzere et al. 2022; WUDAPT)
OFFICIAL = ["8c0000", "d10000", "ff0000", "bf4d00", "ff6600", "ff9955", "faee05", "bcbcbc", "ffccaa",
            "555555", "006a00", "00aa00", "648525", "b9db79", "000000", "fbf7ae", "6a6aff"]
#: (radius m, sigma m) of LCZ 1..17 in the published filter (Demuzere et al. 2020), typed from the paper's code
PUBLISHED = {1: (200, 100), 2: (300, 150), 3: (300, 150), 4: (300, 150), 5: (300, 150), 6: (300, 150),
             7: (300, 150), 8: (500, 250), 9: (300, 150), 10: (500, 250), 11: (200, 75), 12: (200, 75),
             13: (200, 75), 14: (200, 75), 15: (300, 150), 16: (200, 75), 17: (50, 25)}


def brute_force_filter(lcz: np.ndarray, pixel_m: float, num_classes: int = 10) -> np.ndarray:
    """Direct 2-D sums: for every pixel and class, the Gaussian-weighted share of its (2r+1)^2
    neighbourhood in that class (weights normalised over the full square, zero outside the map);
    the highest wins, ties to the lower class; no data stays 0."""
    rows, cols = lcz.shape
    best = np.zeros((rows, cols))
    out = np.zeros((rows, cols), np.uint8)
    for k in range(1, num_classes + 1):
        radius, sigma = PUBLISHED[k]
        r, s = int(radius // pixel_m), sigma / pixel_m
        w = {(dy, dx): np.exp(-(dy * dy + dx * dx) / (2 * s * s)) for dy in range(-r, r + 1) for dx in range(-r, r + 1)}
        total = sum(w.values())
        score = np.zeros((rows, cols))
        for i in range(rows):
            for j in range(cols):
                score[i, j] = sum(v for (dy, dx), v in w.items()
                                  if 0 <= i + dy < rows and 0 <= j + dx < cols and lcz[i + dy, j + dx] == k) / total
        better = score > best
        best[better], out[better] = score[better], k
    out[lcz == 0] = 0
    return out


def _filtered(lcz: np.ndarray, strip_rows: int, pixel_m: float = 100.0) -> np.ndarray:
    return np.concatenate([f for _, _, f in filter_strips(lcz, class_kernels(10, pixel_m), strip_rows)])


def test_filter_hand_made_case_across_a_strip_border():
    """LCZ 2 everywhere, a 3 x 3 block and a 5 x 5 block of LCZ 6; at 100 m both classes use radius
    3 px and sigma 1.5 px: g(x) = exp(-x^2 / 4.5) sums to 3.6943 over x = -3..3. The 3 x 3 block's
    centre keeps ((1 + 2 * 0.8007) / 3.6943)^2 = 0.496 < 1/2 of its weight: the block vanishes. The
    5 x 5 block keeps its centre (0.859) and edges (e.g. 0.635 * 0.927 = 0.589) but loses its corners
    (0.635^2 = 0.404). Strips of 10 rows put a strip border through the 5 x 5 block."""
    g = np.exp(-np.arange(-3, 4) ** 2 / 4.5)
    assert g.sum() == pytest.approx(3.6943, abs=1e-4)
    assert ((1 + 2 * g[4]) / g.sum()) ** 2 == pytest.approx(0.4958, abs=1e-4)
    assert ((g[3] + g[4] + g[5] + g[6]) / g.sum()) ** 2 == pytest.approx(0.4036, abs=1e-4)
    lcz = np.full((16, 12), 2, np.uint8)
    lcz[3:6, 3:6] = 6
    lcz[9:14, 4:9] = 6
    expected = np.full((16, 12), 2, np.uint8)
    expected[9:14, 4:9] = 6
    for r, c in [(9, 4), (9, 8), (13, 4), (13, 8)]:
        expected[r, c] = 2
    for strip in (10, 16, 1, 3):
        np.testing.assert_array_equal(_filtered(lcz, strip), expected, err_msg=f"strip {strip}")
    np.testing.assert_array_equal(brute_force_filter(lcz, 100.0), expected)


def test_filter_matches_brute_force_for_any_strip_size_with_nodata():
    rng = np.random.default_rng(3)
    # blobs of several classes (different kernel sizes: LCZ 1 r=2, LCZ 8/10 r=5, LCZ 6 r=3) and no data
    lcz = np.kron(rng.choice([1, 6, 8, 10], size=(5, 6)), np.ones((4, 3), np.int64)).astype(np.uint8)
    noise = rng.random(lcz.shape) < 0.2
    lcz[noise] = rng.choice([1, 2, 6, 8, 10], size=noise.sum())
    lcz[7:9, 4:11] = 0
    expected = brute_force_filter(lcz, 100.0)
    assert (expected != lcz).any() and (expected[lcz == 0] == 0).all()
    for strip in (1, 4, 7, 20):
        np.testing.assert_array_equal(_filtered(lcz, strip), expected, err_msg=f"strip {strip}")
    # one sigma for every class (radius 2 sigma): 0 is no smoothing
    kernels0 = class_kernels(10, 100.0, 0.0)
    np.testing.assert_array_equal(np.concatenate([f for *_, f in filter_strips(lcz, kernels0, 5)]), lcz)


def _validator(monkeypatch):
    """pystac's JSON-schema validator with the shipped extension schemas, and no network: any schema
    it would fetch raises."""
    import pystac.stac_io
    from pystac.validation import JsonSchemaSTACValidator

    def offline(self, source, *args, **kwargs):
        raise AssertionError(f"validation tried to read {source}")

    monkeypatch.setattr(pystac.stac_io.DefaultStacIO, "read_text", offline)
    validator = JsonSchemaSTACValidator()
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        validator.schema_cache[schema["$id"]] = schema
    return validator


def _categories(aux: Path) -> dict[int, list[str]]:
    root = ET.parse(aux).getroot()
    return {int(b.get("band")): [c.text or "" for c in b.iter("Category")] for b in root.iter("PAMRasterBand")}


def test_map_files_read_back(products, checkpoint, tmp_path, monkeypatch):
    from pystac.validation import validate_dict

    out = tmp_path / "map"
    rec = predict_scene([checkpoint], products[("L1C", "05.09")], out, MapsConfig(cloud_classes=[]), progress=False)
    with rasterio.open(out / "lcz.tif") as src:
        lcz, tags = src.read(), src.tags()
        assert (src.count, src.dtypes[0], src.nodata) == (3, "uint8", 0)
        assert src.descriptions == ("lcz", "lcz_filter", "lcz_probability")
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        cmap = src.colormap(1)                          # from the sidecar (GDAL reads band 1's there)
    with rasterio.open(out / "probability.tif") as src:
        prob = src.read()
    with rasterio.open(out / "uncertainty.tif") as src:
        assert src.descriptions == ("entropy",) and src.dtypes[0] == "float32"
        entropy = src.read(1)
    assert cmap[0] == (0, 0, 0, 0)
    for k in range(1, 11):
        assert cmap[k] == (*(int(OFFICIAL[k - 1][i:i + 2], 16) for i in (0, 2, 4)), 255), k
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(out / "lcz_filter.tif") as src:   # embedded in the file itself
            assert src.count == 1 and src.descriptions == ("lcz_filter",)
            assert src.colormap(1)[6] == (0xff, 0x99, 0x55, 255)
            filt = src.read(1)
        with rasterio.open(out / "lcz.tif") as src, pytest.raises(ValueError):
            src.colormap(1)                                  # lcz.tif's table lives in its sidecar
    names = _categories(out / "lcz.tif.aux.xml")
    assert set(names) == {1, 2} and names[1][1] == "LCZ 1 Compact high-rise" and names[2][10] == "LCZ 10 Heavy industry"
    assert _categories(out / "lcz_filter.tif.aux.xml")[1] == names[1]
    # values: argmax, modal probability in %, entropy, and the filter of the argmax map
    assert prob.shape == (10, 17, 17) and not np.isnan(prob).any()
    np.testing.assert_array_equal(lcz[0], prob.argmax(0) + 1)
    np.testing.assert_array_equal(lcz[2], np.rint(100 * prob.max(0)).astype(np.uint8))
    np.testing.assert_allclose(entropy, -(prob * np.log(prob)).sum(0), rtol=1e-5)
    np.testing.assert_array_equal(lcz[1], brute_force_filter(lcz[0], 100.0))
    np.testing.assert_array_equal(filt, lcz[1])
    assert tags["LCZ_FILTER_SIGMA_M"] == "published" and tags["SENSING_TIME"] == "2023-06-15T10:36:29.024Z"
    # the STAC Item: valid offline (core from pystac, extensions from the test tree), and what it says
    item = json.loads((out / "stac_item.json").read_text())
    validated = validate_dict(item, validator=_validator(monkeypatch))
    assert "https://stac-extensions.github.io/classification/v2.0.0/schema.json" in validated
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in validated
    props = item["properties"]
    assert props["datetime"] == "2023-06-15T10:36:29.024000Z" and props["lczldl:datetime_source"] == "source"
    assert props["proj:code"] == "EPSG:32632" and props["proj:shape"] == [17, 17]
    assert props["proj:transform"] == [100.0, 0.0, X0 + 110, 0.0, -100.0, Y0 - 110]
    assert props["lczldl:source"]["product_id"] == rec["product_id"]
    assert props["lczldl:checkpoints"][0]["sha256"] == rec["checkpoint_sha256"][0]
    assert props["lczldl:version"] == rec["lczldl_version"]
    west, south, east, north = item["bbox"]
    assert 10.3 < west < east < 10.4 and 47.8 < south < north < 47.9      # UTM 32N x = 600 km, y = 5300 km
    assets = item["assets"]
    assert assets["lcz"]["roles"] == ["data"] and "visual" in assets["lcz_filter"]["roles"]
    assert assets["preview"]["roles"] == ["overview"] and assets["record"]["href"] == "./predict.json"
    assert [b["name"] for b in assets["lcz"]["bands"]] == ["lcz", "lcz_filter", "lcz_probability"]
    classes = assets["lcz"]["bands"][0]["classification:classes"]
    assert [c["value"] for c in classes] == list(range(11)) and classes[0]["nodata"] is True
    assert [c["color_hint"].lower() for c in classes[1:]] == OFFICIAL[:10]
    assert classes[10]["name"] == "heavy_industry" and classes[10]["title"] == "LCZ 10 Heavy industry"
    assert any(link["rel"] == "derived_from" for link in item["links"])
    # the validator does check: a colour that is no hex triple is refused
    classes[3]["color_hint"] = "orange"
    with pytest.raises(Exception, match="orange|color_hint|does not match"):
        validate_dict(item, validator=_validator(monkeypatch))


def test_filtered_map_does_not_depend_on_the_chunk_size(products, checkpoint, tmp_path):
    maps = {}
    for rows, cols in [(None, None), (4, 5)]:
        out = tmp_path / f"map{rows}"
        predict_scene([checkpoint], products[("L2A", "05.09")], out, MapsConfig(block_rows=rows, block_cols=cols),
                      progress=False)
        with rasterio.open(out / "lcz.tif") as src:
            maps[rows] = src.read()
    np.testing.assert_array_equal(maps[4], maps[None])
    assert (maps[4][0] == 0).any()                        # the cloud block is no data, and stays so
    np.testing.assert_array_equal(maps[4][1], brute_force_filter(maps[4][0], 100.0))


def test_uncertainty_bands_mutual_information_and_conformal_set_size(tmp_path):
    rows, cols = 20, 30
    grid = OutputGrid(rows=rows, cols=cols, stride=10, transform=Affine(100, 0, X0, 0, -100, Y0))
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 0.5), size=(rows, cols)).astype(np.float32)
    valid = np.ones((rows, cols), bool)
    valid[:3, :4] = False
    probs[~valid] = np.nan
    mi = rng.random((rows, cols)).astype(np.float32)
    blocks = [((0, 10, 0, cols), probs[:10], valid[:10], mi[:10]), ((10, rows, 0, cols), probs[10:], valid[10:], mi[10:])]
    # LAC at threshold 0.7: the set holds the classes with 1 - p <= 0.7, i.e. p >= 0.3
    names = write_map(tmp_path, grid, "EPSG:32632", 10, blocks, {}, "test", mutual_information=True,
                      conformal=ConformalThreshold("lac", 0.9, 0.7))
    assert names["uncertainty.tif"] == ["entropy", "mutual_information", "set_size"]
    with rasterio.open(tmp_path / "uncertainty.tif") as src:
        assert src.descriptions == ("entropy", "mutual_information", "set_size")
        ent, got_mi, size = src.read()
    expected = np.where(valid, (np.nan_to_num(probs) >= 0.3).sum(-1), np.nan)
    np.testing.assert_array_equal(size, expected)
    assert set(np.unique(size[valid])) <= {0.0, 1.0, 2.0, 3.0} and (size[valid] == 0).any()
    np.testing.assert_array_equal(got_mi, np.where(valid, mi, np.nan))
    assert np.isnan(ent[~valid]).all() and not np.isnan(ent[valid]).any()


def test_mc_dropout_adds_mutual_information(products, checkpoint, tmp_path):
    predict_scene([checkpoint], products[("L1C", "05.09")], tmp_path / "mc", MapsConfig(stride=32, mc_passes=3),
                  progress=False)
    with rasterio.open(tmp_path / "mc" / "uncertainty.tif") as src:
        assert src.descriptions == ("entropy", "mutual_information")
        ent, mi = src.read()
    valid = ~np.isnan(ent)
    assert valid.any() and (mi[valid] >= 0).all() and (mi[valid] > 0).any() and (mi[valid] <= ent[valid] + 1e-6).all()
