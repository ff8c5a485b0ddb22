"""A map made with named weights (the authors' 10-class model) says that it assigns every window one
of LCZ 1-10: in predict.json, the GeoTIFF tags, the preview's legend and on the terminal; a model
of all 17 LCZ says nothing of the kind."""

from __future__ import annotations

import json

import numpy as np
import rasterio
import torch

from lczldl.cli.main import main as cli_main
from lczldl.models.classes import lcz_codes, scope_note
from lczldl.models.io import save_model
from lczldl.models.sen2lcz import Sen2LCZ


def _spy_preview(monkeypatch) -> list:
    """Record the note each preview is drawn with (the real preview is still written)."""
    import lczldl.maps.outputs as outputs

    seen, real = [], outputs.write_preview

    def spy(*args, note=None, **kwargs):
        seen.append(note)
        return real(*args, note=note, **kwargs)

    monkeypatch.setattr(outputs, "write_preview", spy)       # the name write_map calls
    return seen


def test_lcz_codes_and_the_note_by_hand() -> None:
    assert lcz_codes(range(1, 11)) == "1-10" and lcz_codes(range(11, 18)) == "A-G"
    assert lcz_codes([1, 3, 4, 10, 11, 17]) == "1, 3-4, 10, A, G"
    assert scope_note(range(1, 18)) is None
    assert scope_note(range(1, 11)) == ("10-class model (LCZ 1-10): every window is assigned one of LCZ 1-10; "
                                        "LCZ A-G are never predicted")


def test_map_with_named_weights_says_it_names_lcz_1_to_10(mirror, scene_tif, tmp_path, monkeypatch, capsys):
    seen = _spy_preview(monkeypatch)
    out = tmp_path / "map"
    cli_main(["predict", "--weights", "authors-dist", "--scene", str(scene_tif), "--out", str(out),
              "--stride", "32"])
    note = scope_note(range(1, 11))
    rec = json.loads((out / "predict.json").read_text())
    assert rec["classes"] == list(range(1, 11)) and rec["classes_note"] == note
    assert rec["windows_predicted"] == 9
    with rasterio.open(out / "lcz.tif") as src:
        assert src.tags()["LCZ_CLASSES_NOTE"] == note
        lcz = src.read(1)
    assert set(np.unique(lcz).tolist()) <= set(range(0, 11)) and lcz.max() >= 1
    with rasterio.open(out / "probability.tif") as src:
        assert src.count == 10 and src.tags()["LCZ_CLASSES_NOTE"] == note
    assert seen == [note] and (out / "preview.png").stat().st_size > 0
    assert f"note: {note}" in capsys.readouterr().out


def test_map_with_a_17_class_model_has_no_note(scene_tif, tmp_path, monkeypatch) -> None:
    seen = _spy_preview(monkeypatch)
    torch.manual_seed(0)
    model = save_model(Sen2LCZ(num_classes=17, depth=5, width=2), tmp_path / "all.safetensors")
    out = tmp_path / "map"
    cli_main(["predict", "--checkpoint", str(model), "--scene", str(scene_tif), "--out", str(out),
              "--stride", "32"])
    rec = json.loads((out / "predict.json").read_text())
    assert rec["classes"] == list(range(1, 18)) and rec["classes_note"] is None
    with rasterio.open(out / "lcz.tif") as src:
        assert "LCZ_CLASSES_NOTE" not in src.tags()
    assert seen == [None]


def test_a_model_file_with_thresholds_gives_the_set_size_band(scene_tif, tmp_path) -> None:
    """A weights file carrying the plain LAC 90 % threshold: uncertainty.tif gets set_size, equal
    to the number of classes with 1 - p <= qhat recomputed from probability.tif (an independent
    route from the saved probabilities); with temperature 2 (not what the threshold was calibrated
    for) or --conformal-set none there is no set_size."""
    torch.manual_seed(0)
    qhat = 0.92
    conformal = {"plain": {"lac_90": {"score": "lac", "level": 0.9, "qhat": qhat}},
                 "temperature": {"lac_90": {"score": "lac", "level": 0.9, "qhat": 0.5}}}
    model = save_model(Sen2LCZ(num_classes=10, depth=5, width=2), tmp_path / "m.safetensors",
                       meta={"conformal": conformal})
    out = tmp_path / "map"
    cli_main(["predict", "--checkpoint", str(model), "--scene", str(scene_tif), "--out", str(out), "--stride", "32"])
    with rasterio.open(out / "uncertainty.tif") as src:
        names = list(src.descriptions)
        sizes = src.read(names.index("set_size") + 1)
    with rasterio.open(out / "probability.tif") as src:
        probs = src.read().astype(np.float64)                                   # (K, rows, cols)
    valid = np.isfinite(sizes)
    assert valid.sum() == 9
    expected = ((1.0 - probs) <= qhat).sum(axis=0)
    assert np.array_equal(sizes[valid], expected[valid])
    assert json.loads((out / "predict.json").read_text())["conformal"]["qhat"] == qhat
    for extra in (["--temperature", "2"], ["--conformal-set", "none"]):
        other = tmp_path / ("map" + extra[-1])
        cli_main(["predict", "--checkpoint", str(model), "--scene", str(scene_tif), "--out", str(other),
                  "--stride", "32", *extra])
        with rasterio.open(other / "uncertainty.tif") as src:
            assert "set_size" not in src.descriptions
