"""LCZ maps from a synthetic scene: georeference, classes, uncertainty bands, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from pydantic import ValidationError
from rasterio.transform import from_origin

from lczldl.config import MapsConfig
from lczldl.errors import LczldlError, SceneError
from lczldl.maps.predict import predict_scene, window_patches
from lczldl.models.io import save_model
from lczldl.models.sen2lcz import Sen2LCZ

TILE = 64          # px per mosaic tile
GRID = 4           # tiles per side -> 256 x 256 px scene
STRIDE = 16
NODATA = -9999.0
# class index (LCZ id - 1) of each tile, row-major
TILE_CLASSES = np.array([[0, 3, 5, 9],
                         [5, 9, 0, 3],
                         [3, 0, 9, 5],
                         [9, 5, 3, 0]])
# distinct spectra (reflectance, 10 bands) for the four classes used
SPECTRA = {
    0: np.array([.10, .11, .12, .13, .14, .15, .15, .16, .20, .18]),   # compact high-rise: grey
    3: np.array([.06, .08, .07, .12, .25, .30, .32, .33, .20, .12]),   # open high-rise: vegetated
    5: np.array([.04, .07, .05, .10, .30, .38, .42, .43, .22, .11]),   # open low-rise: greener
    9: np.array([.18, .20, .22, .24, .26, .27, .28, .29, .34, .30]),   # heavy industry: bright
}
ORIGIN = (500000.0, 5300000.0)


def _scene_pixels(rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((10, TILE * GRID, TILE * GRID), dtype=np.float32)
    for i in range(GRID):
        for j in range(GRID):
            spec = SPECTRA[int(TILE_CLASSES[i, j])]
            tile = spec[:, None, None] + rng.normal(0, 0.004, (10, TILE, TILE))
            img[:, i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = tile
    return img


def _write_scene(path: Path, img: np.ndarray, crs: str | None = "EPSG:32632", nodata=NODATA) -> Path:
    kwargs = dict(driver="GTiff", width=img.shape[2], height=img.shape[1], count=img.shape[0],
                  dtype=str(img.dtype), transform=from_origin(*ORIGIN, 10, 10), nodata=nodata)
    if crs is not None:
        kwargs["crs"] = crs
    with rasterio.open(path, "w", **kwargs) as dst:
        dst.write(img)
    return path


def _train_tiny_model(img: np.ndarray, rng: np.random.Generator) -> Sen2LCZ:
    """Fit Sen2LCZ-Net on crops that lie inside one tile (a trivially separable task)."""
    torch.manual_seed(0)
    xs, ys = [], []
    for _ in range(512):
        i, j = rng.integers(0, GRID, 2)
        r = i * TILE + rng.integers(0, TILE - 32 + 1)
        c = j * TILE + rng.integers(0, TILE - 32 + 1)
        xs.append(img[:, r:r + 32, c:c + 32])
        ys.append(TILE_CLASSES[i, j])
    x = torch.from_numpy(np.stack(xs))
    y = torch.from_numpy(np.array(ys))
    model = Sen2LCZ(num_classes=10, depth=9, width=8)   # a small Sen2LCZ-Net: fits in a quarter of the time
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _step in range(80):
        idx = torch.from_numpy(rng.integers(0, len(x), 64))
        loss = torch.nn.functional.nll_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    # re-estimate BatchNorm statistics exactly (Keras momentum 0.99 is slow for 80 steps)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        for start in range(0, len(x), 128):
            model(x[start:start + 128])
    for m in bns:
        m.momentum = 0.01
    model.eval()
    return model


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("maps")
    img = _scene_pixels(rng)
    img_nodata = img.copy()
    img_nodata[:, :, -8:] = NODATA          # last 8 columns are nodata
    scene = _write_scene(tmp / "scene.tif", img_nodata)
    model = _train_tiny_model(img, rng)
    ckpt = tmp / "model.pt"
    save_model(model, ckpt)
    return scene, ckpt, tmp


def _read(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.transform, src.crs


def test_map_georeference_classes_and_uncertainty(scene_and_model, tmp_path):
    scene, ckpt, _ = scene_and_model
    out = tmp_path / "map"
    rec = predict_scene([ckpt], scene, out, MapsConfig(stride=STRIDE), progress=False)
    assert rec["complete"]
    for name in ("lcz.tif", "lcz_filter.tif", "uncertainty.tif", "probability.tif", "stac_item.json",
                 "preview.png", "predict.json"):
        assert (out / name).stat().st_size > 0
    assert not (out / ".partial").exists()

    lcz, prof, transform, crs = _read(out / "lcz.tif")
    n = (TILE * GRID - 32) // STRIDE + 1
    assert lcz.shape == (3, n, n) and lcz.dtype == np.uint8
    assert crs.to_epsg() == 32632
    # output pixel = the STRIDE cell centred on the window centre; 10 m scene pixels
    assert transform.a == pytest.approx(10.0 * STRIDE) and transform.e == pytest.approx(-10.0 * STRIDE)
    assert transform.c == pytest.approx(ORIGIN[0] + 10 * (16 - STRIDE / 2))
    assert transform.f == pytest.approx(ORIGIN[1] - 10 * (16 - STRIDE / 2))
    # the centre of output pixel (i, j) is the centre of window (i*STRIDE .. +32, j*STRIDE .. +32)
    x, y = transform @ (2 + 0.5, 3 + 0.5)
    assert x == pytest.approx(ORIGIN[0] + 10 * (2 * STRIDE + 16))
    assert y == pytest.approx(ORIGIN[1] - 10 * (3 * STRIDE + 16))

    lcz, conf = lcz[0], lcz[2]
    starts = np.arange(n) * STRIDE
    width = TILE * GRID
    inside, correct = 0, 0
    for i, r in enumerate(starts):
        for j, c in enumerate(starts):
            if c + 32 > width - 8:                   # window touches the nodata strip
                assert lcz[i, j] == 0
                continue
            ti, tj = r // TILE, c // TILE
            if (r + 31) // TILE == ti and (c + 31) // TILE == tj:   # unambiguous: inside one tile
                inside += 1
                correct += int(lcz[i, j] == TILE_CLASSES[ti, tj] + 1)
    assert inside >= 20
    assert correct / inside >= 0.95

    probs = _read(out / "probability.tif")[0]
    ent = _read(out / "uncertainty.tif")[0][0]
    valid = lcz > 0
    assert probs.shape[0] == 10
    assert np.isnan(probs[:, ~valid]).all() and np.isnan(ent[~valid]).all() and (conf[~valid] == 0).all()
    p = probs[:, valid]
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(ent[valid], -(p * np.log(np.clip(p, 1e-30, None))).sum(0), atol=1e-5)
    np.testing.assert_array_equal(conf[valid], np.rint(100 * p.max(0)))   # lcz_probability, in %
    np.testing.assert_array_equal(lcz[valid], p.argmax(0) + 1)
    meta = json.loads((out / "predict.json").read_text())
    assert meta["stride_px"] == STRIDE and len(meta["checkpoint_sha256"]) == 1


def test_ensemble_and_mc_dropout_and_temperature(scene_and_model, tmp_path):
    scene, ckpt, _ = scene_and_model
    s32 = MapsConfig(stride=32)
    single = predict_scene([ckpt], scene, tmp_path / "a", s32, progress=False)
    assert single["complete"]
    # an ensemble of the same model twice equals the single model
    predict_scene([ckpt, ckpt], scene, tmp_path / "b", s32, progress=False)
    pa = _read(tmp_path / "a" / "probability.tif")[0]
    pb = _read(tmp_path / "b" / "probability.tif")[0]
    np.testing.assert_allclose(pa, pb, atol=1e-6, equal_nan=True)
    # a high temperature flattens the prediction: entropy goes up everywhere
    predict_scene([ckpt], scene, tmp_path / "c", MapsConfig(stride=32, temperature="5"), progress=False)
    ea = _read(tmp_path / "a" / "uncertainty.tif")[0][0]
    ec = _read(tmp_path / "c" / "uncertainty.tif")[0][0]
    ok = ~np.isnan(ea)
    assert (ec[ok] >= ea[ok] - 1e-6).all() and ec[ok].mean() > ea[ok].mean()
    # MC dropout runs, gives valid probabilities, differs from the plain map and is reproducible
    # (seeded per block), also when resumed after a partial run
    mc3 = MapsConfig(stride=32, mc_passes=3)
    predict_scene([ckpt], scene, tmp_path / "d", mc3, progress=False)
    pd = _read(tmp_path / "d" / "probability.tif")[0]
    np.testing.assert_allclose(np.nansum(pd, 0)[ok], 1.0, atol=1e-5)
    assert np.nanmax(np.abs(pd - pa)) > 1e-4
    torch.manual_seed(123)                  # the global RNG state must not matter
    predict_scene([ckpt], scene, tmp_path / "d2", mc3, progress=False)
    np.testing.assert_array_equal(_read(tmp_path / "d2" / "probability.tif")[0], pd)
    rows1 = MapsConfig(stride=32, mc_passes=3, block_rows=1)
    predict_scene([ckpt], scene, tmp_path / "f", rows1, progress=False)
    rec = predict_scene([ckpt], scene, tmp_path / "e", rows1, max_blocks=1, progress=False)
    assert not rec["complete"]
    predict_scene([ckpt], scene, tmp_path / "e", rows1, progress=False)
    np.testing.assert_array_equal(_read(tmp_path / "e" / "probability.tif")[0],
                                  _read(tmp_path / "f" / "probability.tif")[0])


def test_resume_after_stop_gives_identical_map(scene_and_model, tmp_path):
    scene, ckpt, _ = scene_and_model
    ref = tmp_path / "ref"
    rows4 = MapsConfig(stride=STRIDE, block_rows=4)
    predict_scene([ckpt], scene, ref, rows4, progress=False)
    out = tmp_path / "resumed"
    rec = predict_scene([ckpt], scene, out, rows4, max_blocks=2, progress=False)
    assert not rec["complete"]
    assert not (out / "lcz.tif").exists()                      # nothing under the final names
    assert len(list((out / ".partial").glob("block_*.npz"))) == 2
    rec = predict_scene([ckpt], scene, out, rows4, progress=False)
    assert rec["complete"]
    for name in ("lcz.tif", "lcz_filter.tif", "probability.tif", "uncertainty.tif"):
        np.testing.assert_array_equal(_read(ref / name)[0], _read(out / name)[0])


def test_window_patches_invalid_mask_matches_brute_force():
    rng = np.random.default_rng(1)
    pixels = rng.random((2, 70, 90), dtype=np.float32)
    invalid = rng.random((70, 90)) < 0.002
    patches, win_invalid = window_patches(pixels, invalid, 7)
    for i in range(patches.shape[0]):
        for j in range(patches.shape[1]):
            r, c = i * 7, j * 7
            assert win_invalid[i, j] == invalid[r:r + 32, c:c + 32].any()
            np.testing.assert_array_equal(patches[i, j], pixels[:, r:r + 32, c:c + 32])


def _no_final_outputs(out: Path) -> bool:
    return not any((out / n).exists() for n in ("lcz.tif", "lcz_filter.tif", "uncertainty.tif", "probability.tif",
                                                 "stac_item.json", "preview.png"))


def test_bad_scenes(scene_and_model, tmp_path):
    _, ckpt, _ = scene_and_model
    rng = np.random.default_rng(2)
    img = rng.random((10, 64, 64), dtype=np.float32) * 0.3
    cases = {
        "bands": (_write_scene(tmp_path / "b8.tif", img[:8]), "bands"),
        "crs": (_write_scene(tmp_path / "nocrs.tif", img, crs=None), "CRS"),
        "all_nodata": (_write_scene(tmp_path / "nd.tif", np.full_like(img, NODATA)), "nodata"),
    }
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff" * 10)
    cases["unreadable"] = (garbage, "cannot read")
    cases["missing"] = (tmp_path / "absent.tif", "not found")
    for name, (scene, word) in cases.items():
        out = tmp_path / f"out_{name}"
        with pytest.raises(SceneError, match=word):
            predict_scene([ckpt], scene, out, MapsConfig(stride=16), progress=False)
        assert _no_final_outputs(out), name
    with pytest.raises(ValidationError, match="stride"):     # the settings cannot hold a bad value
        MapsConfig(stride=0)


def test_cli_bad_input_exits_2_with_one_line(scene_and_model, tmp_path, capsys):
    from lczldl.cli.main import main

    _, ckpt, _ = scene_and_model
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--checkpoint", str(ckpt), "--scene", str(tmp_path / "absent.tif"),
              "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    assert issubclass(SceneError, LczldlError)


def test_cli_settings_resolve_defaults_config_set_then_typed(tmp_path, monkeypatch):
    """One MapsConfig reaches predict_scene: the file's maps section over the defaults, --set over
    the file, typed options over both."""
    import lczldl.maps.predict as mp
    from lczldl.cli.main import main

    seen = {}
    monkeypatch.setattr(mp, "predict_scene", lambda ckpts, scene, out, settings, **kw: seen.update(
        settings=settings, **kw) or {"windows": 1, "windows_predicted": 1, "windows_cloud": 0,
                                     "windows_nodata": 0, "cloud_masked_share": 0.0, "cloud_pixel_share": 0.0})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("maps:\n  stride: 20\n  mc_passes: 4\n  batch_size: 64\n  cloud_classes: [8, 9]\n"
                   "train:\n  max_epochs: 3\n")            # a study/train YAML with a maps section
    base = ["predict", "--checkpoint", "m.pt", "--scene", "s.tif", "--out", str(tmp_path / "o")]
    main(base)
    assert seen["settings"] == MapsConfig() and seen["bbox"] is None and seen["aoi"] is None
    main([*base, "--config", str(cfg), "--set", "maps.mc_passes=5", "--set", "maps.block_rows=3"])
    s = seen["settings"]
    assert (s.stride, s.mc_passes, s.batch_size, s.block_rows, s.cloud_classes) == (20, 5, 64, 3, [8, 9])
    main([*base, "--config", str(cfg), "--set", "maps.mc_passes=5", "--mc", "2", "--stride", "16",
          "--cloud-classes", "none", "--temperature", "auto", "--scale", "10000", "--bands", "B04,B03"])
    s = seen["settings"]
    assert (s.stride, s.mc_passes, s.cloud_classes, s.temperature, s.scale, s.bands) == \
           (16, 2, [], "auto", 10000.0, ["B04", "B03"])


def test_cli_writes_the_parameters_a_library_error_names_as_flags():
    from lczldl.cli.options import with_flags

    exc = SceneError("/data/scale.tif: integer values without scale; e.g. scale=10000 (and offset=-1000); "
                     "offsets stay", params=("scale", "offset"))
    assert with_flags(exc) == ("/data/scale.tif: integer values without --scale; e.g. --scale 10000 "
                               "(and --offset -1000); offsets stay")
    assert with_flags(SceneError("give either bbox or aoi, not both", params=("bbox", "aoi"))) == \
        "give either --bbox or --aoi, not both"
    assert with_flags(SceneError("scale is not named here")) == "scale is not named here"   # no params
    assert with_flags(SceneError("x: B02 has 1098 m pixels; or allow_resolution to map it anyway",
                                 params=("allow_resolution",))) == \
        "x: B02 has 1098 m pixels; or --allow-resolution to map it anyway"
